"""Plots of a `compare` table: top-1 against a cost, one footing per panel, claimed and measured never on one axis.

Latency and throughput get one panel per footing (device, provider, runtime, precision, batch, threads): a
frontier drawn across a V100 and a microcontroller says nothing. Their y axis is the claimed ImageNet top-1 —
a top-1 measured on your images is another quantity and never stands in for a missing claim. Accuracy gets a
claimed panel and one panel per set of images measured (your top-1 with its 95% interval). Cards that carry the
same file are one point. Only the frontier and your measured points are labelled (adjustText keeps labels
apart); the rest are unlabelled dots, named by hover titles in the report's SVG and in the table beside it.
Measured points carry their 95% interval as an error bar, and axes never span less than a sensible width.
"""
from __future__ import annotations

import re
from pathlib import Path

from zoo.errors import UsageError, brief
from zoo.files import output_file, write_bytes_atomic
from zoo.results.metrics import ACCURACY_METRICS, SPEED_METRICS, metric as metric_of
from zoo.results.ranking import CLAIMED_ACCURACY, front_axes, front_flags

MAX_PANELS = 12
BIG_PANEL = 20  # points in a first panel that earns a row of its own
MIN_SPAN = 0.10  # an axis spans at least 10% of its largest value (never 4.440 to 4.450 ms)


def _one_point_per_file(rows):
    """Rows that carry the same file (same_file_as) become one point named after all of them; its y is the
    claim of whichever has one."""
    if "same_file_as" not in rows or rows["same_file_as"].isna().all():
        return rows
    rows = rows.assign(_group=[
        " = ".join(sorted({i, *(s.split(", ") if isinstance(s, str) else [])})) for i, s in
        zip(rows["id"], rows["same_file_as"])])
    rows = rows.sort_values("top1_pct", ascending=False, na_position="last", kind="stable")
    merged = rows.drop_duplicates("_group").copy()
    shared = merged["_group"].str.contains(" = ", regex=False)
    merged.loc[shared, "label"] = merged.loc[shared, "_group"]
    return merged.drop(columns="_group")


def panels(df, metric: str) -> list[tuple[str, str, object]]:
    """(title, y-axis title, rows) per panel, in the table's footing order: one per footing for latency/fps and
    accuracy; rows without both axes are left out (a card with no claimed top-1 is not placed on a claimed
    axis)."""
    x, _, y = front_axes(metric)
    out = []
    if metric_of(metric).name not in SPEED_METRICS + ACCURACY_METRICS:
        points = df.assign(label=df["id"]).dropna(subset=[x, y])
        return [("", "ImageNet top-1 (%), claimed", _one_point_per_file(points))] if not points.empty else []
    df = df.assign(label=df["id"])
    if y == "top1_pct" and "top1_file_claim_pct" in df:  # a card without a claim, placed at its file's claim
        named = df["top1_pct"].isna() & df["top1_file_claim_pct"].notna()
        df = df.assign(top1_pct=df["top1_pct"].fillna(df["top1_file_claim_pct"]))
        df.loc[named, "label"] = [f"{i} (claim of {by}, same file)" for i, by in
                                  zip(df.loc[named, "id"], df.loc[named, "top1_file_claim_by"])]
    for footing, rows in df.dropna(subset=[x, y]).groupby("footing", sort=False):
        if metric_of(metric).name in ACCURACY_METRICS:
            what = "top-1" if y == "top1_pct" else "top-5"
            y_title = (f"ImageNet {what} (%), claimed on val" if footing == CLAIMED_ACCURACY else
                       f"{what} (%) {footing.split(' · ')[0]}")
        else:
            y_title = "ImageNet top-1 (%), claimed"
        out.append((footing, y_title, _one_point_per_file(rows)))
    return out


def left_out(df, metric: str) -> str | None:
    """A line naming the measured rows no panel can place (no x or no y figure), or None: a measurement is
    never dropped from a plot without a word."""
    x, _, y = front_axes(metric)
    if y == "top1_pct" and "top1_file_claim_pct" in df:
        df = df.assign(top1_pct=df["top1_pct"].fillna(df["top1_file_claim_pct"]))
    measured = df["basis"].astype(str).str.startswith("measured") & ~df["missing"]
    lost = df[measured & (df[x].isna() | df[y].isna())]
    if lost.empty:
        return None
    what = {"macs_m": "MACs", "top1_pct": "claimed top-1"}
    lacks = " or ".join(what.get(c, c) for c in (x, y) if lost[c].isna().any())
    ids = ", ".join(dict.fromkeys(lost["id"]))
    fix = "; `zoo bench ID` counts a card's MACs on its file" if x == "macs_m" and lost[x].isna().any() else ""
    return f"not drawn: {len(lost)} measured row(s) without {lacks} to place them: {brief(ids, 200)}{fix}"


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    """Limits that show every point with room around it and never a span narrower than MIN_SPAN of the value."""
    if log:
        return low / 1.25, high * 1.25
    span = max(high - low, MIN_SPAN * max(abs(high), abs(low), 1e-9))
    middle = (high + low) / 2
    return middle - 0.6 * span, middle + 0.6 * span


def _draw(ax, rows, x: str, higher: bool, y: str, *, adjust, gids: list) -> None:
    """One panel: claimed points hollow, measured ones filled with their interval, the frontier joined."""
    import numpy as np

    measured = rows["basis"].astype(str).str.startswith(("measured", "synthetic"))
    xerr = yerr = None
    if "ci_low" in rows:
        low, high = rows["ci_low"].astype("float64"), rows["ci_high"].astype("float64")
        centre = rows[y if x == "macs_m" else x].astype("float64")
        bars = np.vstack([(centre - low).clip(lower=0).fillna(0), (high - centre).clip(lower=0).fillna(0)])
        if x == "macs_m":
            yerr = bars
        else:
            xerr = bars
    for i, (index, row) in enumerate(rows.iterrows()):
        kind = bool(measured.loc[index])
        style = dict(marker="^", markersize=7, color="tab:red", zorder=4) if kind else \
            dict(marker="o", markersize=5, markerfacecolor="none", markeredgecolor="tab:blue", zorder=3)
        (line,) = ax.plot([row[x]], [row[y]], linestyle="none", **style)
        gid = f"zoo-point-{len(gids)}"
        line.set_gid(gid)
        gids.append((gid, row["label"]))
        if kind and (xerr is not None or yerr is not None):
            ax.errorbar([row[x]], [row[y]], xerr=None if xerr is None else xerr[:, [i]],
                        yerr=None if yerr is None else yerr[:, [i]], fmt="none", ecolor="tab:red", alpha=0.5,
                        lw=1, capsize=2, zorder=3)
    ordered = rows.sort_values(x)
    front = ordered[front_flags(ordered, x, higher, y).to_numpy()]
    if len(front) > 1:
        ax.plot(front[x], front[y], color="tab:green", lw=1.2, zorder=2)
    labelled = rows[measured | rows.index.isin(front.index)]
    texts = [ax.text(r[x], r[y], r["label"], fontsize=7) for _, r in labelled.iterrows()]
    values, top = rows[x].astype("float64"), rows[y].astype("float64")
    span_x, span_y = list(values), list(top)  # the limits hold every point and every error bar
    if "ci_low" in rows:
        bounds = [v for v in rows["ci_low"].astype("float64").tolist() + rows["ci_high"].astype("float64").tolist()
                  if v == v]
        (span_y if x == "macs_m" else span_x).extend(bounds)
    log = bool(min(span_x) > 0 and max(span_x) / min(span_x) > 20)
    if log:
        ax.set_xscale("log")
    ax.set_xlim(*_padded(min(span_x), max(span_x), log))
    ax.set_ylim(*_padded(min(span_y), max(span_y), False))
    ax.grid(True, which="both", alpha=0.3)
    if texts:
        adjust(texts, ax=ax, x=list(values), y=list(top), arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))


def _figure(df, metric: str, title: str | None):
    """The figure of a compare table, and the (gid, name) of every point drawn."""
    import math

    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from adjustText import adjust_text

    x, higher, y = front_axes(metric)
    drawn = panels(df, metric)
    left_out = len(drawn) - MAX_PANELS
    drawn = drawn[:MAX_PANELS]
    if not drawn:
        raise UsageError(f"nothing to plot: no card has both a {y.split('_')[0]} and a {x} figure",
                         "Measure some with `zoo bench`, or pick another --metric")
    # A crowded first panel (the claims at 80 cards) gets the whole first row; the others share rows of three.
    big = len(drawn) > 1 and len(drawn[0][2]) > BIG_PANEL
    rest = len(drawn) - big
    cols = min(3, rest) if rest else 1
    rows_n = big + math.ceil(rest / cols)
    fig = plt.figure(figsize=(6.2 * cols if cols > 1 else 11, (7 if big else 0) + 4.6 * (rows_n - big)
                              if rows_n > 1 or big else 7), dpi=110)
    grid = fig.add_gridspec(rows_n, cols, height_ratios=([1.5] if big else []) + [1] * (rows_n - big))
    axes = ([fig.add_subplot(grid[0, :])] if big else []) + \
        [fig.add_subplot(grid[big + k // cols, k % cols]) for k in range(rest)]
    gids: list = []
    for ax, (footing, y_title, rows) in zip(axes, drawn):
        _draw(ax, rows, x, higher, y, adjust=adjust_text, gids=gids)
        if footing:
            ax.set_title(footing, fontsize=8, wrap=True)
        ax.set_xlabel(metric_of("macs").axis if x == "macs_m" else metric_of(metric).axis, fontsize=8)
        ax.set_ylabel(y_title, fontsize=8)
    legend = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", markeredgecolor="tab:blue",
                     label="claimed by the source"),
              Line2D([], [], marker="^", linestyle="none", color="tab:red", label="measured (yours), 95% interval"),
              Line2D([], [], color="tab:green", label="Pareto frontier (points noise cannot move off it)")]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    spec = metric_of(metric)
    what = spec.name if spec.name in ("latency", "accuracy") else spec.axis.split(" (")[0]
    fig.suptitle(title or (f"MobileNetV2 variants: top-1 against {what if spec.name != 'accuracy' else 'MACs'}"
                           + (", one panel per footing" if spec.name in SPEED_METRICS + ACCURACY_METRICS else "")
                           + (f"\n({left_out} smaller footings left out: pick one with --device)" if left_out > 0
                              else "")), fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig, gids


def render_png(df, metric: str, *, title: str | None = None) -> bytes:
    """The plot of a compare table as PNG bytes; UsageError when no row has both axes."""
    import io

    import matplotlib.pyplot as plt

    fig, _ = _figure(df, metric, title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_svg(df, metric: str, *, title: str | None = None) -> str:
    """The plot as SVG text for the report, each point carrying its card(s) as a hover title."""
    import html
    import io

    import matplotlib.pyplot as plt

    fig, gids = _figure(df, metric, title)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    names = dict(gids)
    svg = re.sub(r'<g id="(zoo-point-\d+)">',
                 lambda m: f'<g id="{m.group(1)}"><title>{html.escape(names[m.group(1)])}</title>', svg)
    return svg[svg.index("<svg"):]  # inline: no XML prolog or doctype


def plot(df, metric: str, path, *, title: str | None = None) -> Path:
    """Accuracy against `metric` as a PNG file, written whole or not at all."""
    path = output_file(path, "--plot")  # PNG bytes at exactly this name, whatever its suffix
    return write_bytes_atomic(path, render_png(df, metric, title=title))  # 0666 less the umask
