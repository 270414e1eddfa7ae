"""Rank cards on one metric in a pandas table, with units in the column names and a Pareto frontier.

Column names carry their units: top1_pct, top5_pct, params_m (millions), macs_m (millions of
multiply-accumulates, normalised whatever the source's FLOPs convention), size_mb (10^6 bytes),
latency_ms, fps (images/s).
"""
from __future__ import annotations

from .errors import UsageError
from .registry import Entry, headline

# metric name -> (column, higher is better)
METRICS = {
    "accuracy": ("top1_pct", True),
    "top5": ("top5_pct", True),
    "latency": ("latency_ms", False),
    "fps": ("fps", True),
    "macs": ("macs_m", False),
    "params": ("params_m", False),
    "size": ("size_mb", False),
}
BASE_COLUMNS = ["id", "source", "width", "resolution", "top1_pct", "top5_pct", "params_m", "macs_m", "size_mb"]


def _device_claim(card: dict, metric: str, device: str | None) -> dict | None:
    """The card's best latency or fps claim, optionally only on devices whose name contains `device`."""
    claims = [c for c in card.get("claims", []) if c["metric"] == metric]
    if device:
        claims = [c for c in claims if device.lower() in c.get("device", "").lower()]
    if not claims:
        return None
    pick = min if metric == "latency_ms" else max
    return pick(claims, key=lambda c: c["value"])


def _row(entry: Entry, metric: str, device: str | None) -> dict:
    card = entry.card
    complexity = card.get("complexity", {})
    artifacts = card.get("artifacts", [])
    size = artifacts[0].get("size_bytes") if artifacts else None
    row = {
        "id": card["id"],
        "source": card["source"],
        "width": card["width"],
        "resolution": card["resolution"],
        "top1_pct": headline(card, "top1"),
        "top5_pct": headline(card, "top5"),
        "params_m": complexity["params"] / 1e6 if complexity.get("params") else None,
        "macs_m": complexity["macs"] / 1e6 if complexity.get("macs") else None,
        "size_mb": size / 1e6 if size else None,
    }
    if metric in ("latency", "fps"):
        claim_metric = "latency_ms" if metric == "latency" else "fps"
        claim = _device_claim(card, claim_metric, device)
        row[claim_metric] = claim["value"] if claim else None
        row["device"] = claim.get("device") if claim else None
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


def compare(entries: list[Entry], metric: str = "accuracy", *, device: str | None = None,
            top: int | None = None, pareto: bool = False):
    """One row per card, best first for `metric`; cards without the metric come last with missing=True."""
    import pandas as pd

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(METRICS)}")
    if device and metric not in ("latency", "fps"):
        raise UsageError("--device applies to latency and fps only",
                         "Use --metric latency or --metric fps with --device")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    column, higher = METRICS[metric]
    columns = BASE_COLUMNS + ([column, "device"] if metric in ("latency", "fps") else [])
    df = pd.DataFrame([_row(e, metric, device) for e in entries], columns=columns)
    df = df.astype({c: "float64" for c in columns if c not in ("id", "source", "device", "resolution")})
    df["resolution"] = df["resolution"].astype("int64")
    # "claimed" now; measured figures from the results store will say "measured".
    df["basis"] = df[column].notna().map({True: "claimed", False: "no figure"})
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
