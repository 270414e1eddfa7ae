"""Plots of a `compare` table: claimed top-1 against a cost, one footing per panel, claimed and measured apart.

Latency and throughput get one panel per footing (device, batch, precision, runtime), never one axis for
all: a frontier drawn across a V100 and a microcontroller says nothing. Only the frontier and the user's
measured points are labelled (`source/name`), placed by adjustText so that labels do not overlap.
"""
from __future__ import annotations

from pathlib import Path

from zoo.errors import UsageError
from zoo.files import output_file, write_bytes_atomic
from zoo.results.ranking import METRICS, SPEED, pareto_front

AXIS_TITLES = {"latency_ms": "latency per batch (ms)", "fps": "throughput (images per second)",
               "macs_m": "multiply-accumulates per image (millions)", "params_m": "parameters (millions)",
               "size_mb": "artifact size on disk (MB)", "flops_g": "FLOPs per image (billions, 2 × MACs)"}
MAX_PANELS = 12


def check_output(path, option: str, *, suffixes: tuple[str, ...] = ()) -> Path:
    """The file an output option names, refused before any work when it cannot be written (zoo.files.output_file:
    a folder, a missing or unwritable folder, a name too long), or, when `suffixes` are given, has another."""
    path = Path(path)
    if suffixes and not path.is_dir() and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: expected a {' or '.join(suffixes)} file name")
    return output_file(path, option)


def _panels(df, metric: str) -> list[tuple[str, object]]:
    """(title, rows) per panel: one per footing for latency/fps (measured ones first, as ranked), else one."""
    column, _ = METRICS[metric]
    if metric in ("accuracy", "top5"):
        column = "macs_m"
    # A card with no claimed top-1 (coral's files) is placed at your measured top-1, where there is one.
    points = df.assign(top1_pct=df["top1_pct"].fillna(df["top1_measured_pct"])).dropna(subset=[column, "top1_pct"])
    if metric not in SPEED:
        return [("", points)] if not points.empty else []
    return [(footing, rows) for footing, rows in points.groupby("footing", sort=False)]


def _draw(ax, rows, column: str, higher: bool, *, adjust) -> None:
    measured = rows["basis"] != "claimed"
    claimed = rows[~measured]
    if not claimed.empty:
        ax.scatter(claimed[column], claimed["top1_pct"], s=40, marker="o", facecolors="none",
                   edgecolors="tab:blue", zorder=3, label="claimed by the source")
    if measured.any():
        ax.scatter(rows[measured][column], rows[measured]["top1_pct"], s=70, marker="^", color="tab:red",
                   zorder=4, label="measured (yours)")
    ordered = rows.sort_values(column)
    front = ordered[pareto_front(ordered, column, higher).to_numpy()]
    if len(front) > 1:
        ax.plot(front[column], front["top1_pct"], color="tab:green", lw=1.2, zorder=2, label="Pareto frontier")
    labelled = rows[measured | rows.index.isin(front.index)]
    texts = [ax.text(r[column], r["top1_pct"], r["id"], fontsize=7) for _, r in labelled.iterrows()]
    values = rows[column]
    if values.min() > 0 and values.max() / values.min() > 20:
        ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if texts:
        ax.margins(x=0.15, y=0.12)
        adjust(texts, ax=ax, x=list(rows[column]), y=list(rows["top1_pct"]),
               arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))


def render_png(df, metric: str, *, title: str | None = None) -> bytes:
    """The plot of a compare table as PNG bytes; UsageError when no row has both axes."""
    import io
    import math

    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt
    from adjustText import adjust_text

    column, higher = METRICS[metric]
    if metric in ("accuracy", "top5"):
        column, higher = "macs_m", False
    panels = _panels(df, metric)
    left_out = len(panels) - MAX_PANELS
    panels = panels[:MAX_PANELS]
    if not panels:
        raise UsageError(f"nothing to plot: no card has both a top-1 and a {column} figure",
                         "Measure some with `zoo bench`, or pick another --metric")
    filled = (df["top1_pct"].isna() & df["top1_measured_pct"].notna()).any()
    y_title = "ImageNet top-1 (%): claimed, else yours" if filled else "ImageNet top-1 (%), claimed"
    cols = min(3, len(panels))
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.2 * cols if cols > 1 else 11, 4.6 * rows_n if cols > 1 else 7),
                             dpi=110, squeeze=False)
    for ax, (footing, rows) in zip(axes.flat, panels):
        _draw(ax, rows, column, higher, adjust=adjust_text)
        if footing:
            ax.set_title(footing, fontsize=9)
        ax.set_xlabel(AXIS_TITLES[column], fontsize=8)
        ax.set_ylabel(y_title, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    what = {"latency_ms": "latency", "fps": "throughput"}.get(METRICS[metric][0], AXIS_TITLES[column].split(" (")[0])
    fig.suptitle(title or (f"MobileNetV2 variants: top-1 against {what}" +
                           (", one panel per device, batch, precision and runtime" if metric in SPEED else "") +
                           (f"\n({left_out} smaller footings left out: pick one with --device)" if left_out > 0 else "")))
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def plot(df, metric: str, path, *, title: str | None = None) -> Path:
    """Accuracy against `metric` as a PNG file, written whole or not at all."""
    path = check_output(path, "--plot")  # PNG bytes at exactly this name, whatever its suffix
    return write_bytes_atomic(path, render_png(df, metric, title=title))  # 0666 less the umask
