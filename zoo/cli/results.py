"""`zoo compare` and `zoo runs`: the results store and the ranked tables."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

import zoo
from zoo.cli.app import app, state
from zoo.cli.render import console, fmt, note, plain_table, print_json, wide_console


class Metric(str, Enum):
    accuracy = "accuracy"
    top5 = "top5"
    latency = "latency"
    fps = "fps"
    macs = "macs"
    flops = "flops"
    params = "params"
    storage = "storage"
    size = "size"


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


HEADERS = {"rank": "#", "id": "id", "source": "source", "width": "width", "resolution": "res",
           "top1_pct": "top-1 %", "top5_pct": "top-5 %", "params_m": "params (M)", "macs_m": "MACs (M)",
           "flops_g": "FLOPs (G, 2×MACs)", "flops_g_reported": "source's FLOPs (G)",
           "flops_convention": "source counts", "size_mb": "size on disk (MB)", "artifact_file": "file",
           "latency_ms": "latency (ms)", "fps": "fps (img/s)", "device": "device", "batch": "batch",
           "precision": "precision", "runtime": "runtime", "threads": "threads", "basis": "basis",
           "pareto": "pareto", "top1_measured_pct": "yours %", "ci95": "95% CI",
           "measured_images": "images", "measured_dataset": "measured on", "verdict": "verdict",
           "latency_ms_claimed": "claimed (ms)", "fps_claimed": "claimed (img/s)", "claimed_device": "claimed on",
           "float_top1_pct": "float %", "int8_top1_pct": "int8 %", "drop_points": "drop",
           "drop_p_value": "McNemar p", "speedup": "speed-up"}
# The compact table's columns per metric (the rest with --wide); measured-beside-claimed ones only once measured.
COMPACT = {"accuracy": ["rank", "id", "top1_pct", "top5_pct", "top1_measured_pct", "ci95", "verdict", "macs_m"],
           "latency": ["rank", "id", "top1_pct", "latency_ms", "basis", "latency_ms_claimed", "pareto"],
           "fps": ["rank", "id", "top1_pct", "fps", "basis", "fps_claimed", "pareto"],
           "macs": ["rank", "id", "top1_pct", "macs_m", "basis", "pareto"],
           "flops": ["rank", "id", "top1_pct", "flops_g", "flops_g_reported", "flops_convention", "pareto"],
           "params": ["rank", "id", "top1_pct", "params_m", "basis", "pareto"],
           "storage": ["rank", "id", "top1_pct", "size_mb", "artifact_file", "basis", "pareto"]}
COMPACT["top5"], COMPACT["size"] = COMPACT["accuracy"], COMPACT["storage"]
# A quantized card against its float parent (zoo eval/bench of an int8 card): columns with --wide and in
# markdown; the compact table prints them in a table of their own below (beside a 44-character derived id
# they would not fit 100 columns).
INT8 = ["float_top1_pct", "int8_top1_pct", "drop_points", "drop_p_value", "speedup"]
WIDE_DROP = ("footing", "missing", "run_id", "reference", "top1_ci95_low", "top1_ci95_high", "measured_card_id")
SPEED_HINT = ("Ranked within each footing (device, batch, precision, runtime), never across them. "
              "To rank on this host: zoo compare --metric {m} --measure; on one device: --device \"rdk x5\" "
              "or --device TARGET.")


def piped() -> bool:
    """Whether stdout is a pipe or file (tables print plain, at full width) rather than a terminal."""
    return not sys.stdout.isatty()


def _cells(df, columns: list[str]):
    """The table's text: numbers to 2 places, '—' for nothing, the 95% interval as low–high."""
    shown = df.copy()
    if "ci95" in columns:
        shown["ci95"] = [f"{lo:.1f}–{hi:.1f}" if lo == lo and hi == hi else "—"
                         for lo, hi in zip(df["top1_ci95_low"], df["top1_ci95_high"])]
    if "top1_measured_pct" in columns:
        # Your top-1 measured on the same file under another card says so with a mark and a note.
        shown["top1_measured_pct"] = [("—" if v != v else f"{v:.2f}" + ("†" if other not in (None, card) else ""))
                                      for v, other, card in zip(df["top1_measured_pct"], df["measured_card_id"],
                                                                df["id"])]
    if "drop_p_value" in columns:
        shown["drop_p_value"] = df["drop_p_value"].map(lambda p: "—" if p != p else f"{p:.3g}")
    if "pareto" in shown:
        shown["pareto"] = shown["pareto"].map({True: "★", False: ""})
    shown = shown[columns].rename(columns=HEADERS)
    for column in shown.columns:
        if shown[column].dtype == "float64":
            digits = 3 if column.startswith(("FLOPs", "source's FLOPs")) else 2
            shown[column] = shown[column].map(lambda v: "—" if v != v else f"{v:.{digits}f}")
    return shown.astype(object).where(shown.notna(), "—")


# Left out, in this order, when a compact table would not fit the terminal (--wide shows them): rich would
# otherwise cut figures and headers short ("top-1…", "1217.2").
DROP_TO_FIT = ("MACs (M)", "top-5 %", "claimed on", "claimed (ms)", "claimed (img/s)", "pareto", "file",
               "source counts", "source's FLOPs (G)")


def _needed_width(pretty) -> int:
    """The narrowest the table prints without cutting anything: ids and figures whole, words wrapped."""
    widths = []
    for column in pretty.columns:
        cells = pretty[column].astype(str)
        if column == "id" or cells.map(_numeric).all():
            widths.append(max([len(column), *cells.str.len()]))
        else:  # a text column wraps at spaces (the verdict to 10)
            words = max([len(w) for cell in cells for w in cell.split()] or [0])
            widths.append(max(len(column), words, 10 if column == "verdict" else 0))
    return sum(widths) + 2 * (len(widths) - 1)


def _fit(pretty, width: int) -> tuple:
    """(the table with low-value columns left out until it fits `width`, the headers left out)."""
    dropped = []
    for header in DROP_TO_FIT:
        if _needed_width(pretty) <= width:
            break
        if header in pretty.columns:
            pretty = pretty.drop(columns=header)
            dropped.append(header)
    return pretty, dropped


def _table(pretty, dim):
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in pretty.columns:
        if column == "id":  # ids stay whole: the other columns wrap first
            table.add_column(column, no_wrap=True, min_width=int(pretty[column].str.len().max()))
        elif pretty[column].map(_numeric).all():  # figures never break; words wrap
            table.add_column(column, justify="right", no_wrap=True)
        else:
            table.add_column(column, justify="left", min_width=10 if column == "verdict" else None)
    for row, is_dim in zip(pretty.itertuples(index=False), dim):
        table.add_row(*[str(v) for v in row], style="dim" if is_dim else None)
    return table


def _print_table(out, pretty, dim, plain: bool) -> list[str]:
    """rich on a terminal (it fits the width, leaving out low-value columns first: returns their headers); the
    hand-rolled plain table for piped output (a pipe keeps the full width, and rich takes seconds on thousands
    of rows)."""
    if plain:
        left = {i for i, c in enumerate(pretty.columns) if not pretty[c].map(_numeric).all()}
        typer.echo(plain_table(list(pretty.columns), pretty.astype(str).values.tolist(), left))
        return []
    pretty, dropped = _fit(pretty, out.width)
    out.print(_table(pretty, dim))
    return dropped


def _numeric(value) -> bool:
    text = str(value).rstrip("†").replace("–", "").replace(".", "")
    return text.isdigit() or text in ("—", "", "★")


def _chosen_columns(df, metric: str, wide: bool) -> list[str]:
    if wide:
        columns = [c for c in df.columns if c not in WIDE_DROP and c != "top1_ci95_low"]
        columns.insert(columns.index("top1_measured_pct") + 1, "ci95")
    else:
        columns = [c for c in COMPACT[metric] if c == "ci95" or c in df.columns]
    columns = [c for c in columns if c not in INT8 or df[c].notna().any()]
    measured_cols = ("top1_measured_pct", "ci95", "verdict", "measured_images", "measured_dataset")
    if df["top1_measured_pct"].isna().all():
        columns = [c for c in columns if c not in measured_cols]
    elif not wide:
        columns = [c for c in columns if c != "top5_pct"]  # room for yours, its interval and the verdict
    if not df["basis"].str.startswith(("measured", "synthetic")).any():
        columns = [c for c in columns if c not in ("latency_ms_claimed", "fps_claimed", "claimed_device")]
    return [c for c in columns if c in df.columns or c == "ci95"]


def _print_int8(out, df, plain: bool) -> None:
    """The quantized cards against their float parents, measured in the same runs (the compact table's int8
    columns, one row per card)."""
    part = df[df[INT8].notna().any(axis=1)]
    if part.empty:
        return
    part = part.groupby("id", sort=False)[INT8].first().reset_index()
    heading = "int8 against its float parent: top-1 on the same images, speed-up = float p50 / int8 p50 here"
    if plain:
        typer.echo(heading)
    else:
        out.print()
        out.print(f"[bold]{heading}[/bold]", highlight=False)
    _print_table(out, _cells(part, ["id"] + INT8), [False] * len(part), plain)


@app.command("compare")
def compare_(
    patterns: Optional[List[str]] = typer.Argument(None, metavar="[PATTERN]...", help="Cards to compare (default: all)."),
    metric: Metric = typer.Option(Metric.accuracy, "--metric", help="What to rank on."),
    device: Optional[str] = typer.Option(None, "--device", help="host, a target name, or TEXT in a claimed device."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show the best N (per footing for latency/fps)."),
    pareto: bool = typer.Option(False, "--pareto", help="Mark the accuracy/metric Pareto frontier."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv, json or markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    wide: bool = typer.Option(False, "--wide", help="Every column, and the cards without a figure."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="Also draw top-1 against the metric."),
    measure: bool = typer.Option(False, "--measure", help="First measure what the comparison lacks (then rank)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="With --measure: images for accuracy."),
    target: Optional[str] = typer.Option(None, "--target", help="With --measure: time latency on this board."),
):
    """Rank cards on one metric, best first; latency and fps only within one footing (device, batch, precision,
    runtime). --measure first measures what the comparison lacks on this host (or --target)."""
    from zoo.cli.render import SweepProgress

    if plot:
        from zoo.results.plots import check_output

        check_output(plot, "--plot")  # before any work: a bad path fails at once
    with SweepProgress(False, quiet=False, lines_to_stderr=True) as progress:
        df = zoo.compare(patterns, metric.value, device=device, top=top, pareto=pareto, measure=measure, data=data,
                         target=target, registries=state["registries"], progress=progress)
    if measure:
        from zoo.cli.render import measure_summary

        measure_summary(df.attrs.get("measured"))
    if plot:
        note(f"drew {zoo.plot(df, metric.value, plot)}")
    if as_json or output is OutputFormat.json:
        print_json(json.loads(df.to_json(orient="records")))
        return
    if output is OutputFormat.csv:
        sys.stdout.write(df.drop(columns=["missing"]).to_csv(index=False))
        return
    speed = metric.value in ("latency", "fps")
    # --wide never squeezes columns into the terminal: it prints every column at full width, like a pipe.
    out = console() if not wide else wide_console()
    missing = int(df["missing"].sum())
    shown_df = df if (wide or not speed) else df[~df["missing"]]
    plain = piped()  # a pipe keeps every column at full width: no rich needed (nor its 0.2 s)
    columns = _chosen_columns(shown_df, metric.value, wide)
    dropped: list[str] = []
    if output is OutputFormat.markdown:
        typer.echo(_cells(shown_df, (["footing"] if speed else []) + columns).to_markdown(index=False))
    elif speed:
        pretty = _cells(shown_df, columns)  # every footing's text at once: 10,000 rows in one pass
        for footing, part in shown_df.groupby(shown_df["footing"].fillna("no figure"), sort=False):
            kinds = ", ".join(dict.fromkeys(part["basis"]))
            device_, batch, precision, runtime = (footing.split(" · ") + [""] * 4)[:4]
            heading = (f"{device_}  batch {batch.removeprefix('batch ')} · {precision} · {runtime}  ({kinds})"
                       if footing != "no figure" else "no figure")
            if plain:
                typer.echo(heading)
            else:
                from rich.markup import escape

                out.print(f"[bold]{escape(heading)}[/bold]", highlight=False)
            section_columns = [c for c in columns if not ((c.endswith("_claimed") or c in INT8) and part[c].isna().all())]
            dropped += _print_table(out, pretty.loc[part.index, [HEADERS.get(c, c) for c in section_columns]],
                                    part["missing"], plain)
            typer.echo("") if plain else out.print()
    else:
        dropped += _print_table(out, _cells(shown_df, columns), shown_df["missing"], plain)
    if dropped:
        note(f"left out to fit {out.width} columns: {', '.join(dict.fromkeys(dropped))} (--wide shows every column)")
    if output is not OutputFormat.markdown and not wide:
        _print_int8(out, shown_df, plain)
    if speed and device is None:
        note(SPEED_HINT.format(m=metric.value))
    if (df["measured_card_id"].notna() & (df["measured_card_id"] != df["id"])).any():
        for card_id, other in df.loc[df["measured_card_id"].notna() & (df["measured_card_id"] != df["id"]),
                                     ["id", "measured_card_id"]].drop_duplicates().itertuples(index=False):
            note(f"† {card_id}: your top-1 was measured on the same file as {other}, not on this card")
    for dataset in df["measured_dataset"].dropna().unique():
        note(f"yours %: top-1 measured on {dataset}; the verdict is about that set, and a set other than "
             "ImageNet val (50,000 images) says so: the bundled ImageNet sample is easier than val.")
    if missing:
        where = "listed last, rank '—'" if (wide or not speed) else "shown with --wide"
        note(f"{missing} card(s) have no {metric.value} figure{' on these footings' if speed else ''}: {where}.")
    if metric.value == "flops":
        note("FLOPs (G, 2×MACs) counts a multiply-accumulate as two FLOPs for every card; the source's own figure "
             "and what it counts (macs or 2x_macs) are beside it.")


@app.command("report")
def report_(
    patterns: Optional[List[str]] = typer.Argument(None, metavar="[PATTERN]...", help="Cards to include (default: all)."),
    out: Path = typer.Option(..., "-o", "--output", metavar="FILE.html", help="The HTML file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print {path, cards, runs}."),
):
    """Write one self-contained HTML report: ranked tables per footing, plots, claimed against measured,
    worst classes, environment and provenance."""
    result = zoo.report(out, patterns, registries=state["registries"])
    if as_json:
        print_json(result)
    else:
        note(f"wrote {result['path']} ({result['cards']} cards, {result['runs']} runs)")


@app.command("runs")
def runs_(
    card: Optional[str] = typer.Option(None, "--card", metavar="ID", help="Only runs of this card id."),
    kind: Optional[str] = typer.Option(None, "--kind", help="eval or bench."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="The newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored runs as JSON."),
):
    """List past eval and bench runs from the results store, newest first."""
    rows = zoo.runs(kind=kind, card=card, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        note("no runs stored yet: `zoo eval ID --data DIR` records one")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    numeric = ("run", "top-1 %", "top-5 %", "n", "p50 ms", "img/s")
    for name in ("run", "when (UTC)", "kind", "card", "top-1 %", "top-5 %", "n", "p50 ms", "img/s", "runtime", "device",
                 "data", "sha256"):
        table.add_column(name, justify="right" if name in numeric else "left")
    for r in rows:
        table.add_row(str(r.id), r.created_at.replace("T", " ")[:19], r.kind, r.card_id, fmt(r.top1), fmt(r.top5),
                      fmt(r.n_images), fmt(r.latency_ms), fmt(r.images_per_s or r.fps, 1),
                      f"{r.runtime} {r.runtime_version}", r.device, (r.dataset_fingerprint or "—")[:12],
                      r.artifact_sha256[:12])
    console().print(table)


