"""Rank cards on one metric in a pandas table: claims next to measurements, and a Pareto frontier.

Column names carry their units: top1_pct, top5_pct, params_m (millions), macs_m (millions of
multiply-accumulates, normalised whatever the source's FLOPs convention), size_mb (10^6 bytes),
latency_ms, fps (images/s).

Measured figures come from the results store (passed in; this module reads nothing): the
latest eval run per card gives top1/top5 *on your data*, shown beside the claim but never
ranked against it (a different dataset). The latest bench run per card gives latency, fps,
counted MACs/params and file size; for those metrics the measurement ranks where there is one
and the claim otherwise, and `basis` says which.
"""
from __future__ import annotations

from .errors import UsageError
from .registry import Entry, headline

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


def _pick(measured, claimed) -> tuple:
    """(value, basis): the measurement where there is one, else the claim."""
    if measured is not None:
        return measured, "measured"
    if claimed is not None:
        return claimed, "claimed"
    return None, "no figure"


def _row(entry: Entry, metric: str, *, claim_device: str | None, use_claims: bool,
         eval_run: dict | None, bench_run: dict | None) -> dict:
    card = entry.card
    complexity = card.get("complexity", {})
    artifacts = card.get("artifacts", [])
    size = artifacts[0].get("size_bytes") if artifacts else None
    evaluated = (eval_run or {}).get("metrics", {})
    timed = (bench_run or {}).get("metrics", {})
    million = lambda v: v / 1e6 if v else None  # noqa: E731
    claimed = {"params_m": million(complexity.get("params")), "macs_m": million(complexity.get("macs")),
               "size_mb": million(size)}
    counted = {"params_m": million(timed.get("params")), "macs_m": million(timed.get("macs")),
               "size_mb": million(timed.get("size_bytes"))}
    row = {
        "id": card["id"], "source": card["source"], "width": card["width"], "resolution": card["resolution"],
        "top1_pct": headline(card, "top1"), "top5_pct": headline(card, "top5"),
        "top1_measured_pct": evaluated.get("top1"), "top5_measured_pct": evaluated.get("top5"),
        "measured_images": evaluated.get("n"),
    }
    column = METRICS[metric][0]
    for key in ("params_m", "macs_m", "size_mb"):
        # The ranked column prefers what was counted on the file; the others show the card's figure.
        row[key], basis = _pick(counted[key], claimed[key]) if key == column else (claimed[key], None)
        if key == column:
            row["basis"] = basis
    if metric in ("latency", "fps"):
        claim_metric = "latency_ms" if metric == "latency" else "fps"
        claim = _device_claim(card, claim_metric, claim_device) if use_claims else None
        measured = None
        if timed:
            measured = timed.get("fps") if metric == "fps" else (timed.get("p50_ms") or timed.get("mean_ms"))
        row[claim_metric], row["basis"] = _pick(measured, claim["value"] if claim else None)
        if measured is not None and timed.get("synthetic_weights"):
            row["basis"] = "measured (synthetic weights)"
        row["device"] = bench_run["device"] if measured is not None else (claim.get("device") if claim else None)
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


def compare(entries: list[Entry], metric: str = "accuracy", *, claim_device: str | None = None,
            use_claims: bool = True, top: int | None = None, pareto: bool = False,
            evals: dict[str, dict] | None = None, benches: dict[str, dict] | None = None):
    """One row per card, best first for `metric`; cards without it come last with missing=True.

    claim_device: keep only latency/fps claims whose device contains this text.
    use_claims: False ranks latency/fps on measurements only (a named host or target).
    evals / benches: the latest eval / bench run per card id, from the results store.
    """
    import pandas as pd

    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}", f"Use one of: {', '.join(METRICS)}")
    if top is not None and top < 1:
        raise UsageError(f"--top must be at least 1, got {top}")
    evals, benches = evals or {}, benches or {}
    column, higher = METRICS[metric]
    rows = [_row(e, metric, claim_device=claim_device, use_claims=use_claims, eval_run=evals.get(e.id),
                 bench_run=benches.get(e.id)) for e in entries]
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


def plot(df, metric: str, path, *, title: str | None = None) -> None:
    """Accuracy against `metric` as a PNG: claimed and measured points marked apart, the frontier joined."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    column, higher = METRICS[metric]
    if metric in ("accuracy", "top5"):
        column, higher = "macs_m", False
    points = df.dropna(subset=[column, "top1_pct"])
    if points.empty:
        raise UsageError(f"nothing to plot: no card has both a top-1 and a {column} figure",
                         "Measure some with `zoo bench`, or pick another --metric")
    fig, ax = plt.subplots(figsize=(11, 7), dpi=120)
    styles = {"claimed": dict(marker="o", facecolors="none", edgecolors="tab:blue", label="claimed"),
              "measured": dict(marker="^", color="tab:red", label="measured here")}
    measured = points["basis"].str.startswith("measured")
    for name, style in styles.items():
        subset = points[measured] if name == "measured" else points[~measured]
        if not subset.empty:
            ax.scatter(subset[column], subset["top1_pct"], s=46, zorder=3, **style)
    for _, row in points.iterrows():
        label = row["id"].split("/", 1)[1] if len(points) > 12 else row["id"]
        ax.annotate(label, (row[column], row["top1_pct"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    front = points.sort_values(column)
    front = front[pareto_front(front, column, higher).to_numpy()]
    if len(front) > 1:
        ax.plot(front[column], front["top1_pct"], color="tab:green", lw=1.2, zorder=2, label="Pareto frontier")
    units = {"latency_ms": "latency per batch (ms, log scale)", "fps": "throughput (images/s, log scale)",
             "macs_m": "MACs (millions, log scale)", "params_m": "parameters (millions, log scale)",
             "size_mb": "artifact size (MB, log scale)"}
    ax.set_xscale("log")
    ax.set_xlabel(units[column])
    ax.set_ylabel("claimed ImageNet-1k top-1 (%)")
    ax.set_title(title or f"MobileNetV2 variants: top-1 against {column}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
