"""Plots of a `compare` table: accuracy against a cost metric, claimed and measured points apart."""
from __future__ import annotations

from zoo.errors import UsageError
from zoo.files import output_file, write_bytes_atomic
from zoo.results.ranking import METRICS, pareto_front


def plot(df, metric: str, path, *, title: str | None = None) -> None:
    """Accuracy against `metric` as a PNG at exactly `path` (checked first, written atomically): claimed and
    measured points marked apart, the frontier joined."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    path = output_file(path, "--plot")
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
    png = io.BytesIO()
    fig.savefig(png, format="png")  # PNG whatever the suffix: matplotlib would add ".png" to a bare name
    plt.close(fig)
    write_bytes_atomic(path, png.getvalue())
