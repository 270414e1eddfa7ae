"""Rank cards on one metric in a pandas table: claims next to measurements, and a Pareto frontier.

Column names carry their units: top1_pct, top5_pct, params_m (millions), macs_m (millions of
multiply-accumulates, normalised whatever the source's FLOPs convention), size_mb (10^6 bytes),
latency_ms, fps (images/s).

Measured figures come from the results store (a results.selection.Selection, passed in; this module
reads nothing): the latest eval run per card gives top1/top5 *on your data*, shown beside the claim
but never ranked against it (a different dataset). The latest bench run per card gives latency, fps,
counted MACs/params and file size; for those metrics the measurement ranks where there is one and
the claim otherwise, and `basis` says which.
"""
from __future__ import annotations

from zoo.cards.index import Entry
from zoo.cards.registry import headline
from zoo.errors import UsageError
from zoo.results.records import Run
from zoo.results.selection import Selection

# metric -> (ranked column, higher is better)
METRICS = {
    "accuracy": ("top1_pct", True),
    "top5": ("top5_pct", True),
    "latency": ("latency_ms", False),
    "fps": ("fps", True),
    "macs": ("macs_m", False),
    "params": ("params_m", False),
    "size": ("size_mb", False),
}
BASE_COLUMNS = ["id", "source", "width", "resolution", "top1_pct", "top5_pct", "top1_measured_pct",
                "top5_measured_pct", "measured_images", "params_m", "macs_m", "size_mb"]


def _device_claim(card: dict, metric: str, device: str | None) -> dict | None:
    """The card's best latency or fps claim, optionally only on devices whose name contains `device`."""
    claims = [c for c in card.get("claims", []) if c["metric"] == metric]
    if device:
        claims = [c for c in claims if device.lower() in c.get("device", "").lower()]
    if not claims:
        return None
    pick = min if metric == "latency_ms" else max
    return pick(claims, key=lambda c: c["value"])


def _measured_or_claimed(measured, claimed) -> tuple:
    """(value, basis): the measurement where there is one, else the claim."""
    if measured is not None:
        return measured, "measured"
    if claimed is not None:
        return claimed, "claimed"
    return None, "no figure"


def _row(entry: Entry, metric: str, *, claim_device: str | None, use_claims: bool,
         eval_run: Run | None, bench_run: Run | None) -> dict:
    card = entry.card
    complexity = card.get("complexity", {})
    artifacts = card.get("artifacts", [])
    size = artifacts[0].get("size_bytes") if artifacts else None
    million = lambda v: v / 1e6 if v else None  # noqa: E731
    claimed = {"params_m": million(complexity.get("params")), "macs_m": million(complexity.get("macs")),
               "size_mb": million(size)}
    counted = {key: million(bench_run.counted(name)) if bench_run else None
               for key, name in (("params_m", "params"), ("macs_m", "macs"), ("size_mb", "size_bytes"))}
    row = {
        "id": card["id"], "source": card["source"], "width": card["width"], "resolution": card["resolution"],
        "top1_pct": headline(card, "top1"), "top5_pct": headline(card, "top5"),
        "top1_measured_pct": eval_run.top1 if eval_run else None,
        "top5_measured_pct": eval_run.top5 if eval_run else None,
        "measured_images": eval_run.n_images if eval_run else None,
    }
    column = METRICS[metric][0]
    for key in ("params_m", "macs_m", "size_mb"):
        # The ranked column prefers what was counted on the file; the others show the card's figure.
        row[key], basis = _measured_or_claimed(counted[key], claimed[key]) if key == column else (claimed[key], None)
        if key == column:
            row["basis"] = basis
    if metric in ("latency", "fps"):
        claim_metric = "latency_ms" if metric == "latency" else "fps"
        claim = _device_claim(card, claim_metric, claim_device) if use_claims else None
        measured = None
        if bench_run:
            measured = bench_run.fps if metric == "fps" else bench_run.latency_ms
        row[claim_metric], row["basis"] = _measured_or_claimed(measured, claim["value"] if claim else None)
        if measured is not None and bench_run.synthetic_weights:
            row["basis"] = "measured (synthetic weights)"
        row["device"] = bench_run.device if measured is not None else (claim.get("device") if claim else None)
        row[f"{claim_metric}_claimed"] = claim["value"] if claim else None
        row["claimed_device"] = claim.get("device") if claim else None
    elif metric in ("accuracy", "top5"):
        row["basis"] = "claimed" if row[column] is not None else "no figure"
    return row


def pareto_front(df, column: str, higher_is_better: bool, accuracy: str = "top1_pct"):
    """Boolean Series: rows no other row beats on both accuracy and the metric."""
    import pandas as pd

    flags = pd.Series(False, index=df.index)
    both = df.dropna(subset=[column, accuracy])
    for i, row in both.iterrows():
        better_metric = both[column] >= row[column] if higher_is_better else both[column] <= row[column]
        strictly = (both[accuracy] > row[accuracy]) | (
            (both[column] > row[column]) if higher_is_better else (both[column] < row[column]))
        dominated = (better_metric & (both[accuracy] >= row[accuracy]) & strictly).any()
        flags[i] = not dominated
    return flags


def compare(entries: list[Entry], metric: str = "accuracy", *, selection: Selection | None = None,
            top: int | None = None, pareto: bool = False):
    """One row per card, best first for `metric`; cards without it come last with missing=True.

    selection: the runs beside each card and how claims rank (results.selection); None: claims only.
    """
    import pandas as pd

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(METRICS)}")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    selection = selection or Selection()
    column, higher = METRICS[metric]
    rows = [_row(e, metric, claim_device=selection.claim_device, use_claims=selection.use_claims,
                 eval_run=selection.evals.get(e.id), bench_run=selection.benches.get(e.id)) for e in entries]
    if metric in ("latency", "fps"):
        claim_column = "latency_ms_claimed" if metric == "latency" else "fps_claimed"
        columns = BASE_COLUMNS + [column, "device", "basis", claim_column, "claimed_device"]
    else:
        columns = BASE_COLUMNS + ["basis"]
    df = pd.DataFrame(rows, columns=columns)
    text = {"id", "source", "device", "basis", "claimed_device", "resolution"}
    df = df.astype({c: "float64" for c in columns if c not in text})
    df["resolution"] = df["resolution"].astype("int64")
    df["measured_images"] = df["measured_images"].astype("Int64")
    df["missing"] = df[column].isna()
    if pareto:
        # For accuracy the cost axis is MACs; otherwise accuracy is traded against the metric itself.
        if metric in ("accuracy", "top5"):
            df["pareto"] = pareto_front(df, "macs_m", False, accuracy=column)
        else:
            df["pareto"] = pareto_front(df, column, higher)
    tiebreak = "top1_pct" if column != "top1_pct" else "top5_pct"
    df = df.sort_values([column, tiebreak, "id"], ascending=[not higher, False, True], na_position="last",
                        kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    df.loc[df["missing"], "rank"] = pd.NA
    df["rank"] = df["rank"].astype("Int64")
    if top is not None:
        df = df.head(top)
    return df.reset_index(drop=True)
