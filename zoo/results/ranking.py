"""Rank cards on one metric in a pandas table, one footing at a time: claims next to measurements, ties named.

Column names carry their units (zoo.results.metrics). A footing is what makes two figures comparable
(zoo.results.selection): for latency and throughput the device, provider, runtime and version, precision, batch
and threads; for accuracy the images and the device. A row is one card on one footing, `footing` names it, and
`rank` counts within it; footings are never ranked against each other. Latency footings measured on this host
come first, then those on a target board, then the claimed ones, the largest first; accuracy's claimed section
comes first, then one section per set of images measured.

Measured figures carry a 95% interval (`ci_low`, `ci_high`: a bench's p50 from its interleaved rounds, an eval's
Wilson interval). Rows whose intervals overlap cannot be told apart: `rank_group` gives the range of ranks a row
could hold ("2–4"; one number when noise cannot move it) and `tie` says so; with --pareto, a star goes only to a
row that no other row could dominate within the noise.

Measured figures come from the results store (a results.selection.Selection, passed in; this module reads
nothing). Beside each claim, "yours" is the largest eval of the chosen images (selection.chosen_folder), with its
interval and a reproduction verdict — shown beside the claim but never ranked against it (other images).
"""
from __future__ import annotations

from zoo.cards.catalog import CARD_COLUMNS, CLAIM_COLUMNS, CardTable
from zoo.errors import UsageError
from zoo.results.metrics import ACCURACY_METRICS, NAMES, SPEED_METRICS, metric as metric_of
from zoo.results.records import Run
from zoo.results.selection import Selection, accuracy_footing, bench_footing, dataset_name

INT8_COLUMNS = ["float_top1_pct", "int8_top1_pct", "drop_points", "drop_ci95_low", "drop_ci95_high", "drop_p_value",
                "speedup", "speedup_ci95_low", "speedup_ci95_high"]
BASE_COLUMNS = ["id", "source", "width", "resolution", "top1_pct", "top5_pct", "top1_measured_pct",
                "top1_ci95_low", "top1_ci95_high", "measured_images", "measured_dataset", "measured_card_id",
                "verdict", "params_m", "macs_m", "size_mb", "converted_mb", *INT8_COLUMNS, "int8_verdict",
                "top1_file_claim_pct", "top1_file_claim_by"]
SPEED_FOOTING = ["footing", "device", "provider", "runtime", "runtime_version", "precision", "batch", "threads"]
ACCURACY_FOOTING = ["footing", "dataset", "dataset_images", "dataset_fingerprint", "device", "precision", "runtime"]
NOISE_COLUMNS = ["ci_low", "ci_high", "rank_group", "tie", "drift", "same_file_as"]
BASIS_ORDER = {"measured here": 0, "synthetic weights": 1, "measured on target": 2, "claimed": 3}
CLAIMED_ACCURACY = "claimed · ImageNet-1k val, as published"
IMAGENET_VAL_IMAGES = 50_000
TOO_FEW_WIDTH_PCT = 10.0  # a 95% interval wider than this cannot tell a reproduction from a miss
HOST_RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert"}


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
    return f"{dataset_name(run)} ({run.n_images} images)"


def speed_label(device, provider, runtime, version, precision, batch, threads) -> str:
    """A latency footing in words: 'Intel Xeon (2 cores) · cpu · onnxruntime 1.32.0 · fp32 · batch 1 · 1 thread'."""
    device, provider, runtime, version, precision, batch, threads = (
        None if v is None or v != v else v for v in (device, provider, runtime, version, precision, batch, threads))
    batch = None if batch is None else int(batch)
    threads = None if threads is None else int(threads)
    parts = [device or "device not stated"]
    if provider:
        parts.append(provider)
    parts.append(" ".join(str(p) for p in (runtime or "runtime not stated", version) if p))
    parts += [precision or "precision not stated", f"batch {batch}" if batch else "batch not stated"]
    if threads is not None or provider:  # a measured footing says its threads; a claim only when it states them
        parts.append("default threads" if threads is None else f"{threads} thread{'s' * (threads != 1)}")
    return " · ".join(parts)


def _counted_is_the_cards_file(run: Run) -> bool:
    """Whether a bench run timed the card's own file (not a conversion of it): its counts describe that file."""
    suffix = (run.artifact_file or "").rsplit(".", 1)[-1].lower()
    return HOST_RUNTIMES.get(suffix) == run.runtime


def _base(table: CardTable, selection: Selection):
    """One row per card: its claims and complexity as columns (vectorised), then, for the few cards with runs,
    what was measured: your top-1 with its interval and verdict, params/MACs counted on the card's own file, and
    the size of a converted file beside the card's."""
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
        "converted_mb": float("nan"), "artifact_file": cards["artifact_file"], "flops_g": 2 * stated("macs") / 1e9,
        "flops_g_reported": numbers["reported_flops_g"], "flops_convention": cards["flops_convention"],
        **{column: float("nan") for column in INT8_COLUMNS},
    })
    base["int8_verdict"] = None
    base = base.astype({c: object for c in ("measured_images", "measured_dataset", "measured_card_id", "verdict",
                                            "int8_verdict")})
    # A card that claims no top-1 may publish the very bytes another card claims one for (coral and Axis): that
    # claim belongs to the file, so a plot can place the card's measured latency on the claimed axis (named so).
    claimed = dict(zip(cards["id"], numbers["top1"]))
    by_sha: dict = {}
    for card_id, sha in zip(table.artifacts["id"], table.artifacts["sha256"]):
        if sha and claimed.get(card_id) == claimed.get(card_id) and claimed.get(card_id):
            by_sha.setdefault(sha, (claimed[card_id], card_id))
    first_sha = dict(zip(reversed(table.artifacts["id"]), reversed(table.artifacts["sha256"])))
    same = [by_sha.get(first_sha.get(i)) if v != v else None for i, v in zip(cards["id"], numbers["top1"])]
    base["top1_file_claim_pct"] = [x[0] if x else float("nan") for x in same]
    base["top1_file_claim_by"] = [x[1] if x else None for x in same]
    measured_by_card: dict[str, list] = {}  # each card's evals, once (not a scan of every eval per card)
    for run in selection.measured:
        measured_by_card.setdefault(run.card_id, []).append(run)
    measured_ids = set(selection.evals) | set(selection.benches) | set(measured_by_card)
    for i in base.index[base["id"].isin(measured_ids)]:
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
        counting_evals = [r for r in [eval_run, *measured_by_card.get(card_id, [])]
                          if r is not None and r.card_id == card_id and r.counted("size_bytes")]  # evals count too
        runs = [r for r in selection.benches.get(card_id, []) if not r.synthetic_weights] + counting_evals
        own = next((r for r in runs if _counted_is_the_cards_file(r)), None)
        if own is not None:  # the card's own file, counted: it beats the card's stated figures
            for column, key in (("params_m", "params"), ("macs_m", "macs")):
                if own.counted(key):
                    base.at[i, column] = own.counted(key) / 1e6
            if own.counted("macs"):
                base.at[i, "flops_g"] = 2 * own.counted("macs") / 1e9
            if own.counted("size_bytes") and base.at[i, "size_mb"] != base.at[i, "size_mb"]:
                base.at[i, "size_mb"] = own.counted("size_bytes") / 1e6
        converted = next((r for r in runs if not _counted_is_the_cards_file(r) and r.counted("size_bytes")), None)
        if converted is not None:
            base.at[i, "converted_mb"] = converted.counted("size_bytes") / 1e6
            if base.at[i, "macs_m"] != base.at[i, "macs_m"] and converted.counted("macs"):
                # a conversion computes what the card's file computes: its MACs fill a card that states none
                base.at[i, "macs_m"] = converted.counted("macs") / 1e6
                base.at[i, "flops_g"] = 2 * converted.counted("macs") / 1e9
        paired_eval = next((r for r in measured_by_card.get(card_id, []) if versus(r)), None)
        paired = next((r for r in selection.benches.get(card_id, []) if versus(r)), None)
        accuracy_run = eval_run if versus(eval_run) else paired_eval
        for column, value in int8_columns(card_id, accuracy_run, paired).items():
            base.at[i, column] = _nan(value)
        words = [v["verdict"] for v in (versus(paired), versus(accuracy_run) if accuracy_run is not None
                                        and accuracy_run.card_id == card_id else {}) if v.get("verdict")]
        base.at[i, "int8_verdict"] = ", ".join(words) or None
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
    """float and int8 top-1 on the same images, the drop in points with its exact 95% interval and McNemar's
    p-value, and the speed-up (float p50 / int8 p50) with its interval over the shared rounds: from the quantized
    card's own runs made beside its parent; None elsewhere."""
    accuracy = versus(eval_run) if eval_run is not None and eval_run.card_id == card_id else {}
    speed = versus(bench_run)
    drop_ci, speed_ci = accuracy.get("drop_ci95") or (None, None), speed.get("speedup_ci95") or (None, None)
    return {"float_top1_pct": accuracy.get("parent_top1"), "int8_top1_pct": accuracy.get("top1"),
            "drop_points": accuracy.get("drop_points"), "drop_ci95_low": drop_ci[0], "drop_ci95_high": drop_ci[1],
            "drop_p_value": accuracy.get("p_value"), "speedup": speed.get("speedup"),
            "speedup_ci95_low": speed_ci[0], "speedup_ci95_high": speed_ci[1]}


def _best_claims(claims, column: str, device: str | None):
    """Each card's best claim per footing (device, batch, precision, runtime); of equal ones, the card's first."""
    mine = claims[claims["metric"] == column]
    if device:
        mine = mine[mine["device"].fillna("").str.lower().str.contains(device.lower(), regex=False)]
    ordered = mine.assign(_value=mine["value"].astype("float64")).sort_values(
        "_value", ascending=column == "latency_ms", kind="stable")
    return ordered.drop_duplicates(["id", "device", "batch", "precision", "runtime"]).drop(columns="_value")


def _drift_words(run: Run) -> str | None:
    """What moved while the run was timed (load, clocks, temperature), or None."""
    moved = ((run.metrics.get("conditions") or {}).get("moved")) or []
    return "; ".join(moved) or None


def _speed_rows(base, claims, metric: str, selection: Selection, precision: dict):
    """One row per card and footing it has a figure on: its measurements, then (unless left out) its claims; a
    card with neither gets one 'no figure' row. Beside a measurement, the card's best claim and its device."""
    import pandas as pd

    column = metric_of(metric).column
    best = _best_claims(claims, column, None)
    best = best.assign(_value=best["value"].astype("float64")).sort_values(
        "_value", ascending=column == "latency_ms", kind="stable").drop_duplicates("id").set_index("id")
    measured = []
    for card_id, runs in selection.benches.items():
        claim = best.loc[card_id] if card_id in best.index else None
        for run in runs:
            device, provider, runtime, version, run_precision, batch, threads = bench_footing(
                run, precision.get((card_id, run.artifact_file)))
            basis = ("synthetic weights" if run.synthetic_weights else
                     "measured on target" if run.device in selection.target_names else "measured here")
            value = run.fps if metric == "fps" else run.latency_ms
            low, high = _speed_interval(run, metric)
            measured.append({"id": card_id, column: value, "basis": basis, "device": device, "provider": provider,
                             "runtime": runtime, "runtime_version": version, "precision": run_precision,
                             "batch": batch, "threads": threads, "run_id": run.id, "ci_low": low, "ci_high": high,
                             "drift": _drift_words(run), "same_file_as": ", ".join(run.metrics.get("same_file_as")
                                                                                     or []) or None,
                             "_run_speedup": versus(run).get("speedup"),
                             f"{column}_claimed": None if claim is None else claim["value"],
                             "claimed_device": None if claim is None else claim["device"]})
    parts = [pd.DataFrame(measured, dtype=object)]
    if selection.use_claims:
        shown = _best_claims(claims, column, selection.claim_device)
        parts.append(shown[["id", "value", "device", "batch", "precision", "runtime", "threads", "reference"]]
                     .rename(columns={"value": column}).assign(basis="claimed"))
    rows = pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=["id", "device"])], ignore_index=True)
    for name in SPEED_FOOTING[1:]:
        if name not in rows:
            rows[name] = None
    rows["footing"] = [speed_label(*key) for key in zip(*(rows[c] for c in SPEED_FOOTING[1:]))] if len(rows) else None
    bare = base.loc[~base["id"].isin(set(rows["id"])), ["id"]].assign(basis="no figure")
    rows = pd.concat([rows, bare], ignore_index=True).merge(base, on="id", how="left")
    if "_run_speedup" in rows:  # a bench row's speed-up is its own run's; a claim row shows the card's
        timed = rows["run_id"].notna()
        rows.loc[timed, "speedup"] = rows.loc[timed, "_run_speedup"].astype("float64")
        rows = rows.drop(columns="_run_speedup")
    return rows


def _speed_interval(run: Run, metric: str) -> tuple:
    """The 95% interval of a bench run's p50 (fps: scaled by the same relative bounds), else (None, None)."""
    interval = run.metrics.get("p50_ci95")
    p50 = run.latency_ms
    if not interval or not p50:
        return None, None
    if metric == "fps" and run.fps:
        return run.fps * p50 / interval[1], run.fps * p50 / interval[0]
    return interval[0], interval[1]


def _accuracy_rows(base, metric: str, selection: Selection, precision: dict):
    """The claimed section (one row per card: its claim, with yours beside it), then one row per card and set
    of images it was measured on (ranked per set, never against the claims)."""
    import pandas as pd

    column = metric_of(metric).column
    claimed = base.assign(basis="claimed", footing=CLAIMED_ACCURACY)
    claimed.loc[claimed[column].isna(), "footing"] = None
    measured = []
    for run in selection.measured:
        fingerprint, name, images, device = accuracy_footing(run)
        low, high = run.metrics.get(f"{metric_of(metric).column.split('_')[0]}_ci95") or (None, None)
        target = run.machine.get("target") is not None or run.device in selection.target_names
        label = f"measured on {name} ({images} images) · {device}"
        measured.append({"id": run.card_id, "top1_pct": run.top1, "top5_pct": run.top5, "ci_low": low,
                         "ci_high": high, "basis": "measured on target" if target else "measured here",
                         "footing": label, "dataset": name, "dataset_images": images,
                         "dataset_fingerprint": fingerprint, "device": device,
                         "precision": run.precision or precision.get((run.card_id, run.artifact_file)) or "fp32",
                         "runtime": run.runtime, "run_id": run.id})
    if not measured:
        return claimed
    rows = pd.DataFrame(measured, dtype=object)
    yours = ("top1_measured_pct", "top1_ci95_low", "top1_ci95_high", "measured_images", "measured_dataset",
             "measured_card_id", "verdict")  # beside a claim only: a measured row is itself yours
    shared = [c for c in base.columns if c not in rows.columns and c not in yours]
    rows = rows.merge(base[["id", *shared]], on="id", how="left")
    return pd.concat([claimed, rows], ignore_index=True)


def _no_device_error(claims, metric: str, selection: Selection) -> UsageError:
    column = metric_of(metric).column
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


def separable_front(df, cost: str, higher_cost_is_better: bool, benefit: str, *, cost_interval=None,
                    benefit_interval=None):
    """Boolean Series: rows that no other row could dominate within the noise — no row is possibly as cheap
    (intervals of the cost overlap or lie lower) and possibly as good (the same for the benefit) while better on
    one of the two. Rows whose intervals overlap both lose their star: noise cannot say which is on the front.
    cost_interval / benefit_interval: (low column, high column), or None for exact figures."""
    import pandas as pd

    flags = pd.Series(False, index=df.index)
    both = df.dropna(subset=[cost, benefit])
    if both.empty:
        return flags
    def bounds(column, interval, flip):
        value = both[column].to_numpy(float)
        if interval is None:
            low = high = value
        else:
            low = both[interval[0]].astype("float64").fillna(both[column]).to_numpy(float)
            high = both[interval[1]].astype("float64").fillna(both[column]).to_numpy(float)
        return (-value, -high, -low) if flip else (value, low, high)

    c, c_lo, c_hi = bounds(cost, cost_interval, higher_cost_is_better)
    b, b_lo, b_hi = bounds(benefit, benefit_interval, False)
    possibly_cheaper = c_lo[:, None] <= c_hi[None, :]      # [j, i]: j possibly as cheap as i
    possibly_better = b_hi[:, None] >= b_lo[None, :]       # [j, i]: j possibly as good as i
    better_somewhere = (c[:, None] < c[None, :]) | (b[:, None] > b[None, :])
    dominated = (possibly_cheaper & possibly_better & better_somewhere).any(axis=0)
    flags.loc[both.index] = ~dominated
    return flags


def rank_groups(values, lows, highs, higher_is_better: bool) -> tuple[list[int], list[int]]:
    """For each row of one footing, the best and worst rank it could hold given every row's 95% interval (a row
    without one is exact): best = 1 + rows certainly better; worst = rows not certainly worse (itself included)."""
    import numpy as np

    v = np.asarray(values, float)
    lo = np.where(np.isnan(np.asarray(lows, float)), v, np.asarray(lows, float))
    hi = np.where(np.isnan(np.asarray(highs, float)), v, np.asarray(highs, float))
    if higher_is_better:  # rank on the negated scale: lower is better throughout
        lo, hi = -hi, -lo
    certainly_better = hi[:, None] < lo[None, :]  # [j, i]: j's whole interval lies below i's
    best = 1 + certainly_better.sum(axis=0)
    worst = len(v) - certainly_better.sum(axis=1)
    return best.tolist(), worst.tolist()


def noise(df) -> list[dict]:
    """Per footing with measured intervals: {footing, rows, pairs, indistinguishable}: how many pairs of rows
    noise cannot separate (their intervals overlap)."""
    out = []
    if "ci_low" not in df:
        return out
    timed = df[df["ci_low"].notna() & ~df["missing"]]
    for footing, rows in timed.groupby("footing", sort=False):
        lo, hi = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
        n = len(rows)
        if n < 2:
            continue
        overlap = (lo[:, None] <= hi[None, :]) & (lo[None, :] <= hi[:, None])
        pairs = n * (n - 1) // 2
        out.append({"footing": footing, "rows": n, "pairs": pairs,
                    "indistinguishable": int((overlap.sum() - n) // 2)})
    return out


def compare(table: CardTable, metric: str = "accuracy", *, selection: Selection | None = None,
            top: int | None = None, pareto: bool = False):
    """One row per card and footing, best first within each footing; cards without the metric come last with
    missing=True. top: the best N per footing.

    table: the cards (zoo.cards.catalog.CardTable); selection: the runs beside each card and how claims rank
    (results.selection); None: claims only.
    """
    import pandas as pd

    if metric not in NAMES:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(NAMES)}")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    selection = selection or Selection()
    spec = metric_of(metric)
    metric = spec.name
    column, higher = spec.column, spec.higher_is_better
    base = _base(table, selection)
    claims = pd.DataFrame(table.claims, columns=list(CLAIM_COLUMNS), dtype=object)
    if metric in SPEED_METRICS:
        df = _speed_rows(base, claims, metric, selection, table.precisions)
    elif metric in ACCURACY_METRICS:
        df = _accuracy_rows(base, metric, selection, table.precisions)
    else:
        df = base
        key = {"macs_m": "macs", "flops_g": "macs", "params_m": "params", "size_mb": "size_bytes"}[column]
        counted = {card_id: next((r for r in runs if not r.synthetic_weights and _counted_is_the_cards_file(r)), None)
                   for card_id, runs in selection.benches.items()}
        df["basis"] = ["measured" if counted.get(i) and counted[i].counted(key) and key != "size_bytes" else "claimed"
                       for i in df["id"]]
    columns = BASE_COLUMNS + ["artifact_file", "flops_g", "flops_g_reported", "flops_convention"]
    if metric in SPEED_METRICS:
        columns += SPEED_FOOTING + [column, "basis", f"{column}_claimed", "claimed_device", "run_id", "reference"]
        columns += NOISE_COLUMNS
    elif metric in ACCURACY_METRICS:
        columns = [c for c in columns if c != column] + ACCURACY_FOOTING + [column, "basis", "run_id"] + \
            NOISE_COLUMNS[:4]
    else:
        columns = [c for c in columns if c != column] + [column, "basis"]
    df = df.reindex(columns=list(dict.fromkeys(columns)))
    df.loc[df[column].isna(), "basis"] = "no figure"
    text = {"id", "source", "basis", "resolution", "measured_dataset", "measured_card_id", "verdict", "artifact_file",
            "flops_convention", "footing", "device", "provider", "precision", "runtime", "runtime_version",
            "claimed_device", "reference", "dataset", "dataset_fingerprint", "rank_group", "drift", "same_file_as",
            "top1_file_claim_by", "int8_verdict"}
    integers = {"measured_images", "batch", "threads", "run_id", "dataset_images"}
    flags = {"tie"}
    df = df.astype({c: "float64" for c in df.columns if c not in text | integers | flags})
    df = df.astype({c: "Int64" for c in df.columns if c in integers} | {c: object for c in df.columns if c in text})
    for c in text & set(df.columns):  # one mark for "nothing" in text columns, as pandas gives from records
        df[c] = df[c].where(df[c].notna(), float("nan"))
    df["resolution"] = df["resolution"].astype("int64")
    df["missing"] = df[column].isna()
    narrowed = selection.claim_device is not None or not selection.use_claims
    if metric in SPEED_METRICS and narrowed and len(table.cards["id"]) and df["missing"].all():
        raise _no_device_error(claims, metric, selection)
    footed = metric in SPEED_METRICS or metric in ACCURACY_METRICS
    group = df["footing"].where(df["footing"].notna(), "") if footed else pd.Series("", index=df.index)
    if pareto:
        df["pareto"] = _pareto(df, group, metric) & ~df["missing"]
    # Footing order. Latency: measured here, synthetic, on a target, claimed; then the biggest. Accuracy: the
    # claims first, then the measured sets, the most images first.
    if footed:
        kind = df["basis"].map({**BASIS_ORDER, "claimed": -1 if metric in ACCURACY_METRICS else 3}).fillna(9)
        images = (pd.to_numeric(df["dataset_images"], errors="coerce").fillna(0) if "dataset_images" in df
                  else pd.Series(0.0, index=df.index))
        stats = pd.DataFrame({"g": group, "kind": kind, "images": images}).groupby("g").agg(
            min=("kind", "min"), size=("kind", "size"), images=("images", "max"))
        df["_footing_order"] = group.map(stats["min"] * 1e12 - stats["images"] * 1e5 - stats["size"]).where(
            ~df["missing"], 1e15)
    else:
        df["_footing_order"] = 0.0
    df["_group"] = group
    tiebreak = "top1_pct" if column != "top1_pct" else "top5_pct"
    df = df.sort_values(["_footing_order", "_group", column, tiebreak, "id"],
                        ascending=[True, True, not higher, False, True], na_position="last", kind="stable")
    df.insert(0, "rank", df.groupby("_group", sort=False).cumcount() + 1)
    df.loc[df["missing"], "rank"] = pd.NA
    df["rank"] = df["rank"].astype("Int64")
    if footed:
        _name_ties(df, column, higher)
    if top is not None:
        df = df[df["rank"].isna() | (df["rank"] <= top)] if footed else df.head(top)
    return df.drop(columns=["_footing_order", "_group"]).reset_index(drop=True)


def _name_ties(df, column: str, higher: bool) -> None:
    """rank_group and tie for every ranked row: the ranks noise leaves it (its interval against the others')."""
    import pandas as pd

    df["rank_group"] = [None if pd.isna(r) else str(int(r)) for r in df["rank"]]
    df["tie"] = False
    ranked = df[~df["missing"]]
    for _, rows in ranked.groupby("_group", sort=False):
        if rows["ci_low"].isna().all():
            continue
        best, worst = rank_groups(rows[column], rows["ci_low"], rows["ci_high"], higher)
        for index, b, w in zip(rows.index, best, worst):
            df.at[index, "rank_group"] = str(b) if b == w else f"{b}–{w}"
            df.at[index, "tie"] = b != w


def front_axes(metric: str) -> tuple[str, bool, str]:
    """(x column, higher x is better, y column) of a metric's front: accuracy against MACs, anything else against
    the claimed top-1."""
    spec = metric_of(metric)
    if spec.name in ACCURACY_METRICS:
        return "macs_m", False, spec.column
    return spec.column, spec.higher_is_better, "top1_pct"


def front_flags(rows, x: str, higher: bool, y: str):
    """Boolean Series: the rows on the Pareto front of y against x. Exact figures (claims) by the O(n log n)
    front; measured ones (with an interval) only where noise could not move them off it (separable_front)."""
    if not ("ci_low" in rows and rows["ci_low"].notna().any()):
        return pareto_front(rows, x, higher, accuracy=y)
    if x == "macs_m":  # accuracy against MACs: the accuracy has the interval
        return separable_front(rows, x, False, y, benefit_interval=("ci_low", "ci_high"))
    return separable_front(rows, x, higher, y, cost_interval=("ci_low", "ci_high"))


def _pareto(df, group, metric: str):
    """Pareto stars within each footing (front_flags)."""
    import pandas as pd

    x, higher, y = front_axes(metric)
    flags = pd.Series(False, index=df.index)
    for _, part in df.groupby(group, sort=False):
        flags.loc[part.index] = front_flags(part, x, higher, y)
    return flags
