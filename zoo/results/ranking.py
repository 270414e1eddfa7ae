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

from zoo.cards.catalog import CARD_COLUMNS, CLAIM_COLUMNS, CardTable
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


def _base(table: CardTable, selection: Selection):
    """One row per card: its claims and complexity as columns (vectorised), then, for the few cards with runs,
    what was measured: your top-1 with its interval and verdict, and params/MACs/size counted on the graph."""
    import pandas as pd

    cards = pd.DataFrame(table.cards, columns=list(CARD_COLUMNS))
    numbers = cards[["top1", "top5", "params", "macs", "reported_flops_g", "size_bytes"]].astype("float64")
    stated = lambda column: numbers[column].where(numbers[column] != 0)  # noqa: E731 -- 0 means not stated
    base = pd.DataFrame({
        "id": cards["id"], "source": cards["source"], "width": cards["width"].astype("float64"),
        "resolution": cards["resolution"], "top1_pct": numbers["top1"], "top5_pct": numbers["top5"],
        "top1_measured_pct": float("nan"), "top1_ci95_low": float("nan"), "top1_ci95_high": float("nan"),
        "measured_images": None, "measured_dataset": None, "measured_card_id": None, "verdict": None,
        "params_m": stated("params") / 1e6, "macs_m": stated("macs") / 1e6, "size_mb": stated("size_bytes") / 1e6,
        "artifact_file": cards["artifact_file"], "flops_g": 2 * stated("macs") / 1e9,
        "flops_g_reported": numbers["reported_flops_g"], "flops_convention": cards["flops_convention"],
        **{column: float("nan") for column in INT8_COLUMNS},
    })
    base = base.astype({c: object for c in ("measured_images", "measured_dataset", "measured_card_id", "verdict")})
    measured = set(selection.evals) | set(selection.benches)
    for i in base.index[base["id"].isin(measured)]:
        card_id = base.at[i, "id"]
        eval_run = selection.evals.get(card_id)
        if eval_run is not None:
            low, high = eval_run.metrics.get("top1_ci95") or [None, None]
            top1 = base.at[i, "top1_pct"]
            base.loc[i, ["top1_measured_pct", "top1_ci95_low", "top1_ci95_high"]] = [
                _nan(eval_run.top1), _nan(low), _nan(high)]
            base.at[i, "measured_images"] = eval_run.n_images
            base.at[i, "measured_dataset"] = dataset_label(eval_run)
            base.at[i, "measured_card_id"] = eval_run.card_id
            base.at[i, "verdict"] = verdict(None if top1 != top1 else float(top1), eval_run)
        counted = next((r for r in selection.benches.get(card_id, []) if not r.synthetic_weights), None)
        if counted is not None:  # the graph's own count beats the card's
            for column, key in (("params_m", "params"), ("macs_m", "macs"), ("size_mb", "size_bytes")):
                if counted.counted(key):
                    base.at[i, column] = counted.counted(key) / 1e6
            if counted.counted("macs"):
                base.at[i, "flops_g"] = 2 * counted.counted("macs") / 1e9
            base.at[i, "artifact_file"] = counted.artifact_file
        paired = next((r for r in selection.benches.get(card_id, []) if versus(r)), None)
        for column, value in int8_columns(card_id, eval_run, paired).items():
            base.at[i, column] = _nan(value)
    return base


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def versus(run: Run | None) -> dict:
    """A quantized card's run against its float parent's in the same run (accuracy_vs_float for an eval,
    speed_vs_float for a bench), else {}."""
    if run is None:
        return {}
    return run.metrics.get("accuracy_vs_float" if run.kind == "eval" else "speed_vs_float") or {}


def int8_columns(card_id: str, eval_run: Run | None, bench_run: Run | None) -> dict:
    """float and int8 top-1 on the same images, the drop in points with McNemar's exact p-value, and the speed-up
    (float p50 / int8 p50): from the quantized card's own runs made beside its parent; None elsewhere."""
    accuracy = versus(eval_run) if eval_run is not None and eval_run.card_id == card_id else {}
    return {"float_top1_pct": accuracy.get("parent_top1"), "int8_top1_pct": accuracy.get("top1"),
            "drop_points": accuracy.get("drop_points"), "drop_p_value": accuracy.get("p_value"),
            "speedup": versus(bench_run).get("speedup")}


def _best_claims(claims, column: str, device: str | None):
    """Each card's best claim per footing (device, batch, precision, runtime); of equal ones, the card's first."""
    mine = claims[claims["metric"] == column]
    if device:
        mine = mine[mine["device"].fillna("").str.lower().str.contains(device.lower(), regex=False)]
    ordered = mine.assign(_value=mine["value"].astype("float64")).sort_values(
        "_value", ascending=column == "latency_ms", kind="stable")
    return ordered.drop_duplicates(["id", "device", "batch", "precision", "runtime"]).drop(columns="_value")


def _speed_rows(base, claims, metric: str, selection: Selection, precision: dict):
    """One row per card and footing it has a figure on: its measurements, then (unless left out) its claims; a
    card with neither gets one 'no figure' row."""
    import pandas as pd

    column = METRICS[metric][0]
    best = _best_claims(claims, column, None)  # beside a measurement: the card's best claim on any footing
    best = best.assign(_value=best["value"].astype("float64")).sort_values(
        "_value", ascending=column == "latency_ms", kind="stable").drop_duplicates("id").set_index("id")
    measured = []
    for card_id, runs in selection.benches.items():
        claim = best.loc[card_id] if card_id in best.index else None
        for run in runs:
            device, batch, run_precision, runtime = bench_footing(run, precision.get((card_id, run.artifact_file)))
            basis = ("synthetic weights" if run.synthetic_weights else
                     "measured on target" if run.device in selection.target_names else "measured here")
            measured.append({"id": card_id, column: run.fps if metric == "fps" else run.latency_ms, "basis": basis,
                             "device": device, "batch": batch, "precision": run_precision, "runtime": runtime,
                             "threads": run.threads, "run_id": run.id, "_run_speedup": versus(run).get("speedup"),
                             f"{column}_claimed": None if claim is None else claim["value"],
                             "claimed_device": None if claim is None else claim["device"]})
    parts = [pd.DataFrame(measured, dtype=object)]
    if selection.use_claims:
        shown = _best_claims(claims, column, selection.claim_device)
        parts.append(shown[["id", "value", "device", "batch", "precision", "runtime", "threads", "reference"]]
                     .rename(columns={"value": column}).assign(basis="claimed"))
    rows = pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=["id", "device"])], ignore_index=True)
    rows["footing"] = [footing_label(*key) for key in
                       zip(rows["device"], rows["batch"], rows["precision"], rows["runtime"])] if len(rows) else None
    bare = base.loc[~base["id"].isin(set(rows["id"])), ["id"]].assign(basis="no figure")
    rows = pd.concat([rows, bare], ignore_index=True).merge(base, on="id", how="left")
    if "_run_speedup" in rows:  # a bench row's speed-up is its own run's; a claim row shows the card's
        timed = rows["run_id"].notna()
        rows.loc[timed, "speedup"] = rows.loc[timed, "_run_speedup"].astype("float64")
        rows = rows.drop(columns="_run_speedup")
    return rows


def _no_device_error(claims, metric: str, selection: Selection) -> UsageError:
    column = METRICS[metric][0]
    devices = sorted({d for d in claims.loc[claims["metric"] == column, "device"] if isinstance(d, str)})
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


def compare(table: CardTable, metric: str = "accuracy", *, selection: Selection | None = None,
            top: int | None = None, pareto: bool = False):
    """One row per card (per card and footing for latency/fps), best first; cards without the metric come
    last with missing=True. top: the best N (per footing for latency/fps).

    table: the cards (zoo.cards.catalog.CardTable); selection: the runs beside each card and how claims rank
    (results.selection); None: claims only.
    """
    import pandas as pd

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(METRICS)}")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    selection = selection or Selection()
    column, higher = METRICS[metric]
    base = _base(table, selection)
    claims = pd.DataFrame(table.claims, columns=list(CLAIM_COLUMNS), dtype=object)
    if metric in SPEED:
        df = _speed_rows(base, claims, metric, selection, table.precisions)
    else:
        df = base
        if metric in ("accuracy", "top5"):
            df["basis"] = "claimed"
        else:
            key = {"macs_m": "macs", "flops_g": "macs", "params_m": "params", "size_mb": "size_bytes"}[column]
            counted = {card_id: next((r for r in runs if not r.synthetic_weights), None)
                       for card_id, runs in selection.benches.items()}
            df["basis"] = ["measured" if counted.get(i) and counted[i].counted(key) else "claimed" for i in df["id"]]
        df.loc[df[column].isna(), "basis"] = "no figure"
    columns = BASE_COLUMNS + ["artifact_file", "flops_g", "flops_g_reported", "flops_convention"]
    if metric in SPEED:
        columns += FOOTING_COLUMNS + [column, "basis", f"{column}_claimed", "claimed_device", "run_id", "reference"]
    else:
        columns = [c for c in columns if c != column] + [column, "basis"]
    df = df.reindex(columns=list(dict.fromkeys(columns)))
    text = {"id", "source", "basis", "resolution", "measured_dataset", "measured_card_id", "verdict", "artifact_file",
            "flops_convention", "footing", "device", "precision", "runtime", "claimed_device", "reference"}
    integers = {"measured_images", "batch", "threads", "run_id"}
    df = df.astype({c: "float64" for c in df.columns if c not in text | integers})
    df = df.astype({c: "Int64" for c in df.columns if c in integers} | {c: object for c in df.columns if c in text})
    for c in text & set(df.columns):  # one mark for "nothing" in text columns, as pandas gives from records
        df[c] = df[c].where(df[c].notna(), float("nan"))
    df["resolution"] = df["resolution"].astype("int64")
    df["missing"] = df[column].isna()
    narrowed = selection.claim_device is not None or not selection.use_claims
    if metric in SPEED and narrowed and len(table.cards["id"]) and df["missing"].all():
        raise _no_device_error(claims, metric, selection)
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
