"""Rank cards on one metric in a pandas table: claims next to measurements, one footing at a time.

Column names carry their units: top1_pct, top5_pct, params_m (millions), macs_m (millions of
multiply-accumulates, normalised whatever the source's FLOPs convention), flops_g (10^9 FLOPs counted as
2 x MACs), size_mb (10^6 bytes on disk), latency_ms (per batch), fps (images/s).

Latency and throughput only mean something on one footing: one device, batch size, precision and runtime.
So for those metrics a row is one card on one footing (a card with claims on two devices has two rows),
`footing` names it, and `rank` counts within it; footings are never ranked against each other. Footings
measured on this host come first, then those measured on a target board, then the claimed ones, the
largest first.

Measured figures come from the results store (a results.selection.Selection, passed in; this module reads
nothing): the latest eval run per card gives top-1/top-5 *on your data* with its 95% interval and a
reproduction verdict, shown beside the claim but never ranked against it (a different dataset).
"""
from __future__ import annotations

from zoo.cards.index import Entry
from zoo.cards.registry import headline
from zoo.errors import UsageError
from zoo.results.records import Run
from zoo.results.selection import Selection, bench_footing

# metric -> (ranked column, higher is better)
METRICS = {
    "accuracy": ("top1_pct", True),
    "top5": ("top5_pct", True),
    "latency": ("latency_ms", False),
    "fps": ("fps", True),
    "macs": ("macs_m", False),
    "flops": ("flops_g", False),
    "params": ("params_m", False),
    "storage": ("size_mb", False),
    "size": ("size_mb", False),  # the older name of storage
}
SPEED = ("latency", "fps")
BASE_COLUMNS = ["id", "source", "width", "resolution", "top1_pct", "top5_pct", "top1_measured_pct",
                "top1_ci95_low", "top1_ci95_high", "measured_images", "measured_dataset", "measured_card_id",
                "verdict", "params_m", "macs_m", "size_mb", "float_top1_pct", "int8_top1_pct", "drop_points",
                "drop_p_value", "speedup"]
INT8_COLUMNS = ["float_top1_pct", "int8_top1_pct", "drop_points", "drop_p_value", "speedup"]
FOOTING_COLUMNS = ["footing", "device", "batch", "precision", "runtime", "threads"]
BASIS_ORDER = {"measured here": 0, "synthetic weights": 1, "measured on target": 2, "claimed": 3}
IMAGENET_VAL_IMAGES = 50_000
TOO_FEW_WIDTH_PCT = 10.0  # a 95% interval wider than this cannot tell a reproduction from a miss


def verdict(claimed: float | None, run: Run | None) -> str | None:
    """Whether the claimed top-1 lies inside the measured 95% interval: reproduced, higher (measured above
    it), lower, or too few images to tell. A set that is not ImageNet val (50,000 images) says so."""
    if run is None or claimed is None or run.top1 is None:
        return None
    low, high = run.metrics.get("top1_ci95") or (None, None)
    if low is None or (run.n_images or 0) < 100 or high - low > TOO_FEW_WIDTH_PCT:
        word = "too few images to tell"
    elif claimed < low:
        word = "higher"
    elif claimed > high:
        word = "lower"
    else:
        word = "reproduced"
    if (run.n_images or 0) != IMAGENET_VAL_IMAGES and word != "too few images to tell":
        word += " (not ImageNet val)"
    return word


def dataset_label(run: Run | None) -> str | None:
    """'imagenet-sample (1000 images)': the folder's name and the count, as the eval saw them."""
    if run is None or not run.dataset:
        return None
    name = str(run.dataset.get("path", "")).rstrip("/").rsplit("/", 1)[-1] or "data"
    return f"{name} ({run.n_images} images)"


def footing_label(device, batch, precision, runtime) -> str:
    return " · ".join([device or "device not stated", f"batch {batch}" if batch else "batch not stated",
                       precision or "precision not stated", runtime or "runtime not stated"])


def _card_columns(entry: Entry, eval_run: Run | None, bench_runs: list[Run]) -> dict:
    card = entry.card
    complexity = card.get("complexity", {})
    artifacts = card.get("artifacts", [])
    million = lambda v: v / 1e6 if v else None  # noqa: E731
    counted = next((r for r in bench_runs if not r.synthetic_weights), None)
    macs = (counted and counted.counted("macs")) or complexity.get("macs")
    top1 = headline(card, "top1")
    ci = (eval_run.metrics.get("top1_ci95") or [None, None]) if eval_run else [None, None]
    return {
        "id": card["id"], "source": card["source"], "width": card["width"], "resolution": card["resolution"],
        "top1_pct": top1, "top5_pct": headline(card, "top5"),
        "top1_measured_pct": eval_run.top1 if eval_run else None,
        "top1_ci95_low": ci[0], "top1_ci95_high": ci[1],
        "measured_images": eval_run.n_images if eval_run else None,
        "measured_dataset": dataset_label(eval_run),
        "measured_card_id": eval_run.card_id if eval_run else None,
        "verdict": verdict(top1, eval_run),
        "params_m": million((counted and counted.counted("params")) or complexity.get("params")),
        "macs_m": million(macs),
        "size_mb": million((counted and counted.counted("size_bytes")) or (artifacts[0].get("size_bytes") if artifacts else None)),
        "artifact_file": (counted.artifact_file if counted else artifacts[0]["file"] if artifacts else None),
        "flops_g": 2 * macs / 1e9 if macs else None,
        "flops_g_reported": complexity.get("reported_flops_g"),
        "flops_convention": complexity.get("flops_convention"),
        **int8_columns(card["id"], eval_run, next((r for r in bench_runs if versus(r)), None)),
    }


def versus(run: Run | None) -> dict:
    """A quantized card's run against its float parent's in the same run (`versus_float`), else {}."""
    return (run.metrics.get("versus_float") or {}) if run is not None else {}


def int8_columns(card_id: str, eval_run: Run | None, bench_run: Run | None) -> dict:
    """float and int8 top-1 on the same images, the drop in points with McNemar's exact p-value, and the speed-up
    (float p50 / int8 p50): from the quantized card's own runs made beside its parent; None elsewhere."""
    accuracy = versus(eval_run) if eval_run is not None and eval_run.card_id == card_id else {}
    return {"float_top1_pct": accuracy.get("parent_top1"), "int8_top1_pct": accuracy.get("top1"),
            "drop_points": accuracy.get("drop_points"), "drop_p_value": accuracy.get("p_value"),
            "speedup": versus(bench_run).get("speedup")}


def _claims(card: dict, claim_metric: str, device: str | None) -> dict[tuple, dict]:
    """The card's best claim per footing (device, batch, precision, runtime)."""
    best: dict[tuple, dict] = {}
    for claim in card.get("claims", []):
        if claim["metric"] != claim_metric or (device and device.lower() not in claim.get("device", "").lower()):
            continue
        key = (claim.get("device"), claim.get("batch"), claim.get("precision"), claim.get("runtime"))
        held = best.get(key)
        if held is None or (claim["value"] < held["value"] if claim_metric == "latency_ms" else claim["value"] > held["value"]):
            best[key] = claim
    return best


def _speed_rows(entry: Entry, metric: str, base: dict, selection: Selection, bench_runs: list[Run]) -> list[dict]:
    """One row per footing this card has a figure on: its measurements, then (unless left out) its claims."""
    column = METRICS[metric][0]
    claims = _claims(entry.card, column, selection.claim_device) if selection.use_claims else {}
    every_claim = _claims(entry.card, column, None)
    best_claim = (min if column == "latency_ms" else max)(every_claim.values(), key=lambda c: c["value"], default=None)
    rows = []
    for run in bench_runs:
        device, batch, precision, runtime = bench_footing(run, entry.card)
        basis = ("synthetic weights" if run.synthetic_weights else
                 "measured on target" if run.device in selection.target_names else "measured here")
        rows.append({**base, column: run.fps if metric == "fps" else run.latency_ms, "basis": basis,
                     "device": device, "batch": batch, "precision": precision, "runtime": runtime,
                     "threads": run.threads, "run_id": run.id, "speedup": versus(run).get("speedup"),
                     f"{column}_claimed": best_claim["value"] if best_claim else None,
                     "claimed_device": best_claim.get("device") if best_claim else None})
    for (device, batch, precision, runtime), claim in claims.items():
        rows.append({**base, column: claim["value"], "basis": "claimed", "device": device, "batch": batch,
                     "precision": precision, "runtime": runtime, "threads": claim.get("threads"),
                     "reference": claim["reference"]})
    for row in rows:
        row["footing"] = footing_label(row["device"], row["batch"], row["precision"], row["runtime"])
    return rows or [{**base, column: None, "basis": "no figure"}]


def _no_device_error(entries: list[Entry], metric: str, selection: Selection) -> UsageError:
    column = METRICS[metric][0]
    devices = sorted({c["device"] for e in entries for c in e.card.get("claims", []) if c["metric"] == column})
    asked = selection.claim_device
    if not selection.use_claims:
        return UsageError(f"no {metric} measured on that device yet",
                          "Measure with `zoo bench ID` (this host) or `zoo bench ID --target NAME`")
    return UsageError(f"no {metric} figure on a device matching {asked!r}",
                      f"Devices with {metric} figures: {'; '.join(devices)}; or host, or a target's name")


def pareto_front(df, column: str, higher_is_better: bool, accuracy: str = "top1_pct"):
    """Boolean Series: rows no other row beats on both accuracy and the metric (vectorised, O(n log n))."""
    import numpy as np
    import pandas as pd

    flags = pd.Series(False, index=df.index)
    both = df.dropna(subset=[column, accuracy])
    if both.empty:
        return flags
    cost = -both[column].to_numpy(float) if higher_is_better else both[column].to_numpy(float)
    acc = both[accuracy].to_numpy(float)
    order = np.lexsort((-acc, cost))  # cheapest first, most accurate first among equal costs
    keep = np.zeros(len(both), bool)
    best_acc, best_cost = -np.inf, None
    for i in order:  # on the front when more accurate than every cheaper row (an exact tie in both is kept)
        if acc[i] > best_acc:
            keep[i], best_acc, best_cost = True, acc[i], cost[i]
        elif acc[i] == best_acc and cost[i] == best_cost:
            keep[i] = True
    flags.loc[both.index] = keep
    return flags


def compare(entries: list[Entry], metric: str = "accuracy", *, selection: Selection | None = None,
            top: int | None = None, pareto: bool = False):
    """One row per card (per card and footing for latency/fps), best first; cards without the metric come
    last with missing=True. top: the best N (per footing for latency/fps).

    selection: the runs beside each card and how claims rank (results.selection); None: claims only.
    """
    import pandas as pd

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(METRICS)}")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    selection = selection or Selection()
    column, higher = METRICS[metric]
    rows = []
    for entry in entries:
        bench_runs = selection.benches.get(entry.id, [])
        base = _card_columns(entry, selection.evals.get(entry.id), bench_runs)
        if metric in SPEED:
            rows += _speed_rows(entry, metric, base, selection, bench_runs)
        else:
            if metric in ("accuracy", "top5"):
                base["basis"] = "claimed" if base[column] is not None else "no figure"
            else:
                key = {"macs_m": "macs", "flops_g": "macs", "params_m": "params", "size_mb": "size_bytes"}[column]
                counted = next((r for r in bench_runs if not r.synthetic_weights), None)
                base["basis"] = ("no figure" if base[column] is None else
                                 "measured" if counted and counted.counted(key) else "claimed")
            rows.append(base)
    columns = BASE_COLUMNS + ["artifact_file", "flops_g", "flops_g_reported", "flops_convention"]
    if metric in SPEED:
        columns += FOOTING_COLUMNS + [column, "basis", f"{column}_claimed", "claimed_device", "run_id", "reference"]
    else:
        columns = [c for c in columns if c != column] + [column, "basis"]
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    text = {"id", "source", "basis", "resolution", "measured_dataset", "measured_card_id", "verdict", "artifact_file",
            "flops_convention", "footing", "device", "precision", "runtime", "claimed_device", "reference"}
    integers = {"measured_images", "batch", "threads", "run_id"}
    df = df.astype({c: "float64" for c in df.columns if c not in text | integers})
    df = df.astype({c: "Int64" for c in df.columns if c in integers} | {c: object for c in df.columns if c in text})
    df["resolution"] = df["resolution"].astype("int64")
    df["missing"] = df[column].isna()
    narrowed = selection.claim_device is not None or not selection.use_claims
    if metric in SPEED and narrowed and len(entries) and df["missing"].all():
        raise _no_device_error(entries, metric, selection)
    group = df["footing"].where(df["footing"].notna(), "") if metric in SPEED else pd.Series("", index=df.index)
    if pareto:
        # For accuracy the cost axis is MACs; otherwise accuracy is traded against the metric, within a footing.
        flags = pd.Series(False, index=df.index)
        for _, part in df.groupby(group, sort=False):
            if metric in ("accuracy", "top5"):
                flags.loc[part.index] = pareto_front(part, "macs_m", False, accuracy=column)
            else:
                flags.loc[part.index] = pareto_front(part, column, higher)
        df["pareto"] = flags & ~df["missing"]
    if metric in SPEED:
        # Footing order: measured here, synthetic, on a target, claimed; then the biggest group; then by name.
        kind = df["basis"].map(BASIS_ORDER).fillna(9)
        stats = pd.DataFrame({"g": group, "kind": kind}).groupby("g")["kind"].agg(["min", "size"])
        df["_footing_order"] = group.map(stats["min"] * 1e6 - stats["size"]).where(~df["missing"], 1e12)
    else:
        df["_footing_order"] = 0.0
    df["_group"] = group
    tiebreak = "top1_pct" if column != "top1_pct" else "top5_pct"
    df = df.sort_values(["_footing_order", "_group", column, tiebreak, "id"],
                        ascending=[True, True, not higher, False, True], na_position="last", kind="stable")
    df.insert(0, "rank", df.groupby("_group", sort=False).cumcount() + 1)
    df.loc[df["missing"], "rank"] = pd.NA
    df["rank"] = df["rank"].astype("Int64")
    if top is not None:
        df = df[df["rank"].isna() | (df["rank"] <= top)] if metric in SPEED else df.head(top)
    return df.drop(columns=["_footing_order", "_group"]).reset_index(drop=True)
