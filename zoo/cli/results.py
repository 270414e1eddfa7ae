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
from zoo.cli.render import console, fmt, note, plain_table, print_json, printable, wide_console


from zoo.results.metrics import ACCURACY_METRICS, NAMES, SPEED_METRICS  # noqa: E402 -- no pandas, cheap

Metric = Enum("Metric", {name: name for name in NAMES}, type=str)


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


HEADERS = {"rank": "#", "rank_group": "#", "id": "id", "source": "source", "width": "width", "resolution": "res",
           "top1_pct": "top-1 %", "top5_pct": "top-5 %", "params_m": "params (M)", "macs_m": "MACs (M)",
           "flops_g": "FLOPs (G, 2×MACs)", "flops_g_reported": "source's FLOPs (G)",
           "flops_convention": "source counts", "size_mb": "card's file (MB)", "converted_mb": "converted (MB)",
           "artifact_file": "file", "latency_ms": "latency (ms)", "fps": "fps (img/s)", "device": "device",
           "batch": "batch", "precision": "precision", "runtime": "runtime", "threads": "threads", "basis": "basis",
           "pareto": "pareto", "top1_measured_pct": "yours %", "ci95": "yours 95% CI", "interval": "95% CI",
           "measured_images": "images", "measured_dataset": "measured on", "verdict": "verdict",
           "claimed_beside": "claimed elsewhere", "drift": "drift",
           "float_top1_pct": "float %", "int8_top1_pct": "int8 %", "drop_points": "drop",
           "drop_p_value": "McNemar p", "speedup": "speed-up"}
# The compact table's columns per metric (the rest with --wide); columns empty in a section are left out there
# (the claimed accuracy section has "yours"; a measured one has its interval).
COMPACT = {"accuracy": ["rank_group", "id", "top1_pct", "interval", "top5_pct", "top1_measured_pct", "ci95",
                        "measured_images", "verdict", "runtime", "precision", "macs_m", "pareto"],
           "top5": ["rank_group", "id", "top5_pct", "interval", "top1_pct", "top1_measured_pct", "ci95",
                    "measured_images", "verdict", "runtime", "precision", "macs_m", "pareto"],
           "latency": ["rank_group", "id", "top1_pct", "latency_ms", "interval", "basis", "claimed_beside", "pareto"],
           "fps": ["rank_group", "id", "top1_pct", "fps", "interval", "basis", "claimed_beside", "pareto"],
           "macs": ["rank", "id", "top1_pct", "macs_m", "basis", "pareto"],
           "flops": ["rank", "id", "top1_pct", "flops_g", "flops_g_reported", "flops_convention", "pareto"],
           "params": ["rank", "id", "top1_pct", "params_m", "basis", "pareto"],
           "storage": ["rank", "id", "top1_pct", "size_mb", "artifact_file", "converted_mb", "basis", "pareto"]}
COMPACT["size"] = COMPACT["storage"]
# A quantized card against its float parent (zoo eval/bench of an int8 card): columns with --wide and in
# markdown; the compact table prints them below, as a table where it fits, else a line per card.
INT8 = ["float_top1_pct", "int8_top1_pct", "drop_points", "drop_p_value", "speedup"]
WIDE_DROP = ("footing", "missing", "run_id", "reference", "top1_ci95_low", "top1_ci95_high", "measured_card_id",
             "ci_low", "ci_high", "rank", "tie", "latency_ms_claimed", "fps_claimed", "claimed_device")
SPEED_HINT = ("Ranked within each footing (device, provider, runtime, precision, batch, threads), never across "
              "them; '2–4': the ranks noise leaves a row. To rank on this host: zoo compare --metric {m} --measure; "
              "on one device: --device \"rdk x5\" or --device TARGET.")


def piped() -> bool:
    """Whether stdout is a pipe or file (tables print plain, at full width) rather than a terminal."""
    return not sys.stdout.isatty()


def _cells(df, columns: list[str]):
    """The table's text: numbers to 2 places, '—' for nothing, the 95% interval as low–high."""
    shown = df.copy()
    if "interval" in columns:  # a measured figure's 95% interval: the bench's p50 or the eval's Wilson
        digits = 3 if "latency_ms" in df and df["latency_ms"].notna().any() else 2
        shown["interval"] = [f"{lo:.{digits}f}–{hi:.{digits}f}" if lo == lo and hi == hi else "—"
                             for lo, hi in zip(df["ci_low"], df["ci_high"])]
    if "claimed_beside" in columns:  # a claim beside a measurement always names its device
        claimed = "latency_ms_claimed" if "latency_ms_claimed" in df else "fps_claimed"
        shown["claimed_beside"] = [f"{v:g} on {d}" if v == v and isinstance(d, str) else f"{v:g}" if v == v else "—"
                                   for v, d in zip(df[claimed], df["claimed_device"])]
    if "rank_group" in columns:
        shown["rank_group"] = [g if isinstance(g, str) else "—" for g in df["rank_group"]]
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
    return _one_line(shown).astype(object).where(shown.notna(), "—")


def _one_line(df):
    """Card text (a claimed device, a runtime...) kept on one line with nothing a terminal acts on: a newline in
    a cell would forge a row (JSON keeps the exact text)."""
    df = df.copy()
    for column in df.columns:
        if df[column].dtype == object:
            df[column] = df[column].map(lambda v: printable(v, lines=False) if isinstance(v, str) else v)
    return df


# Left out, in this order, when a compact table would not fit the terminal (--wide shows them): rich would
# otherwise cut figures and headers short ("top-1…", "1217.2").
# The column a table ranks by is never left out.
DROP_TO_FIT = ("MACs (M)", "precision", "runtime", "top-5 %", "claimed elsewhere", "pareto", "file", "converted (MB)",
               "source counts", "source's FLOPs (G)", "images", "basis", "yours 95% CI", "top-1 %")


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


def _fit(pretty, width: int, ranked: str | None) -> tuple:
    """(the table with low-value columns left out until it fits `width`, the headers left out); `ranked`: the
    header of the column it ranks by, kept."""
    dropped = []
    for header in DROP_TO_FIT:
        if _needed_width(pretty) <= width:
            break
        if header in pretty.columns and header != ranked:
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


def _print_table(out, pretty, dim, plain: bool, ranked: str | None = None) -> list[str]:
    """rich on a terminal (it fits the width, leaving out low-value columns first but never `ranked`: returns
    their headers); the hand-rolled plain table for piped output (a pipe keeps the full width, and rich takes
    seconds on thousands of rows)."""
    if plain:
        left = {i for i, c in enumerate(pretty.columns) if not pretty[c].map(_numeric).all()}
        typer.echo(plain_table(list(pretty.columns), pretty.astype(str).values.tolist(), left))
        return []
    pretty, dropped = _fit(pretty, out.width, ranked)
    out.print(_table(pretty, dim))
    return dropped


def _numeric(value) -> bool:
    text = str(value).rstrip("†").replace("–", "").replace(".", "")
    return text.isdigit() or text in ("—", "", "★")


SOURCES = {"ci95": "top1_measured_pct", "interval": "ci_low", "claimed_beside": ("latency_ms_claimed", "fps_claimed")}


def _has(df, column: str) -> bool:
    """Whether a (possibly derived) column has anything to show in these rows."""
    source = SOURCES.get(column, column)
    names = [source] if isinstance(source, str) else list(source)
    return any(name in df and df[name].notna().any() for name in names)


def _chosen_columns(df, metric: str, wide: bool) -> list[str]:
    ranked = metric_column(metric)
    if wide:
        columns = [c for c in df.columns if c not in WIDE_DROP and c != "top1_ci95_low"]
        columns.insert(columns.index("top1_measured_pct") + 1, "ci95")
        if "ci_low" in df:
            columns.insert(columns.index(ranked) + 1, "interval")
        if "claimed_device" in df:
            columns.insert(columns.index("basis") + 1, "claimed_beside")
        if "rank_group" in df:
            columns = ["rank_group", *[c for c in columns if c != "rank_group"]]
        else:
            columns = ["rank", *columns]
    else:
        columns = [c for c in COMPACT[metric] if c in SOURCES or c in df.columns]
    keep = {"rank", "rank_group", "id", ranked}
    return [c for c in columns if c in keep or (_has(df, c) and (c not in INT8 or wide))]


def metric_column(metric: str) -> str:
    from zoo.results.metrics import metric as metric_of

    return metric_of(metric).column


def _print_int8(out, df, plain: bool) -> None:
    """The quantized cards against their float parents, measured in the same runs: a table where it fits the
    terminal, else one line per card (nothing is ever cut short)."""
    part = df[df[INT8].notna().any(axis=1)]
    if part.empty:
        return
    part = part.groupby("id", sort=False)[INT8].first().reset_index()
    df = df[df["id"].isin(set(part["id"]))]
    heading = "int8 against its float parent: top-1 on the same images, speed-up = float p50 / int8 p50 here"
    if plain:
        typer.echo(heading)
    else:
        out.print()
        out.print(f"[bold]{heading}[/bold]", highlight=False)
    pretty = _cells(part, ["id"] + INT8)
    if plain or _needed_width(pretty) <= out.width:
        _print_table(out, pretty, [False] * len(part), plain)
    else:
        for row in pretty.to_dict("records"):
            out.print("  ".join([row["id"] + ":"] + [f"{h} {str(v).strip()}" for h, v in row.items()
                                                       if h != "id" and v != "—"]),
                      highlight=False, markup=False)
    verdicts = df.loc[df["int8_verdict"].notna(), ["id", "int8_verdict"]].drop_duplicates("id")
    for card_id, words in verdicts.itertuples(index=False):  # the intervals, in words
        (typer.echo if plain else lambda t: out.print(t, highlight=False, markup=False))(f"  {card_id}: {words}")


def _print_runtimes(out, df, plain: bool, metric: str) -> None:
    """The same file on each runtime of this host (the same device, batch and threads), side by side: which
    runtime makes a model fast here (LiteRT's XNNPACK against ONNX Runtime's QDQ kernels for an int8 .tflite).
    Only for cards timed on two runtimes or more; each figure stays ranked in its own footing above."""
    column = metric_column(metric)
    here = df[(df["basis"] == "measured here") & df[column].notna()]
    if here.empty:
        return
    here = here.assign(runtime_label=here["runtime"].astype(str) + " · " + here["precision"].astype(str),
                       threads_label=[f"{int(t)} thread{'s' * (int(t) != 1)}" if t == t and t is not None
                                      else "default threads" for t in here["threads"]])
    digits = 3 if column == "latency_ms" else 1
    for (device, batch, threads), part in here.groupby(["device", "batch", "threads_label"], sort=False):
        several = part.groupby("id")["runtime_label"].nunique()
        part = part[part["id"].isin(several[several > 1].index)]
        if part.empty:
            continue
        cells = {}
        for row in part.itertuples(index=False):
            ci = f" ({row.ci_low:.{digits}f}–{row.ci_high:.{digits}f})" if row.ci_low == row.ci_low else ""
            cells.setdefault(row.id, {})[row.runtime_label] = f"{getattr(row, column):.{digits}f}{ci}"
        import pandas as pd

        table = pd.DataFrame.from_dict(cells, orient="index").fillna("—").reset_index().rename(columns={"index": "id"})
        unit = "p50 ms" if column == "latency_ms" else "img/s"
        heading = (f"one file on each runtime here ({device} · batch {batch} · {threads}), {unit} with "
                   "its 95% interval: which runtime makes it fast")
        if plain:
            typer.echo(heading)
        else:
            out.print()
            out.print(f"[bold]{escape_markup(heading)}[/bold]", highlight=False)
        _print_table(out, table.astype(str), [False] * len(table), plain)


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _heading(footing: str, part) -> str:
    """A section's heading: its footing (a claimed device is card text: kept on one line) and the kinds of rows."""
    if footing == "no figure":
        return footing
    kinds = ", ".join(dict.fromkeys(part["basis"]))
    return printable(f"{footing}  ({kinds})", lines=False)


@app.command("compare")
def compare_(
    patterns: Optional[List[str]] = typer.Argument(None, metavar="[PATTERN]...", help="Cards to compare (default: all)."),
    metric: Metric = typer.Option("accuracy", "--metric", help="What to rank on."),
    device: Optional[str] = typer.Option(None, "--device", help="host, a target name, or TEXT in a claimed device."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show the best N (per footing)."),
    pareto: bool = typer.Option(False, "--pareto", help="Mark the accuracy/metric Pareto frontier (within the noise)."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv, json or markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    wide: bool = typer.Option(False, "--wide", help="Every column, and the cards without a figure."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="Also draw top-1 against the metric."),
    measure: bool = typer.Option(False, "--measure", help="First measure what the comparison lacks (then rank)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR",
                                        help="Your images: what --measure evaluates on, and whose runs 'yours %' shows."),
    target: Optional[str] = typer.Option(None, "--target", help="With --measure: measure on this board (latency, or accuracy on --data)."),
):
    """Rank cards on one metric, best first, within one footing at a time (latency: device, provider, runtime,
    precision, batch, threads; accuracy: the images). --measure first measures what the comparison lacks on
    this host (or --target)."""
    from zoo.cli.render import SweepProgress

    metric_name = metric.value if isinstance(metric, Enum) else str(metric)
    if plot:
        from zoo.files import output_file

        output_file(plot, "--plot")  # before any work: a bad path fails at once
    with SweepProgress(False, quiet=False, lines_to_stderr=True) as progress:
        df = zoo.compare(patterns, metric_name, device=device, top=top, pareto=pareto, measure=measure, data=data,
                         target=target, registries=state["registries"], progress=progress)
    if measure:
        from zoo.cli.render import measure_summary

        measure_summary(df.attrs.get("measured"))
    if plot:
        from zoo.results.plots import left_out

        note(f"drew {zoo.plot(df, metric_name, plot)}")
        if lost := left_out(df, metric_name):
            note(lost)
    if as_json or output is OutputFormat.json:
        print_json(json.loads(df.to_json(orient="records")))
        return
    if output is OutputFormat.csv:
        sys.stdout.write(_one_line(df.drop(columns=["missing"])).to_csv(index=False))
        return
    footed = metric_name in SPEED_METRICS or metric_name in ACCURACY_METRICS
    # --wide never squeezes columns into the terminal: it prints every column at full width, like a pipe.
    out = console() if not wide else wide_console()
    missing = int(df["missing"].sum())
    shown_df = df if (wide or not footed) else df[~df["missing"]]
    plain = piped()  # a pipe keeps every column at full width: no rich needed (nor its 0.2 s)
    columns = _chosen_columns(shown_df, metric_name, wide)
    dropped: list[str] = []
    ranked = HEADERS.get(metric_column(metric_name), metric_column(metric_name))
    if output is OutputFormat.markdown:
        typer.echo(_cells(shown_df, (["footing"] if footed else []) + columns).to_markdown(index=False))
    elif footed:
        pretty = _cells(shown_df, columns)  # every footing's text at once: 10,000 rows in one pass
        for footing, part in shown_df.groupby(shown_df["footing"].fillna("no figure"), sort=False):
            heading = _heading(footing, part)
            if plain:
                typer.echo(heading)
            else:
                from rich.markup import escape

                out.print(f"[bold]{escape(heading)}[/bold]", highlight=False)
            section = [c for c in columns if c in ("rank", "rank_group", "id", metric_column(metric_name))
                       or _has(part, c)]
            if part["basis"].nunique() == 1:  # the heading says it
                section = [c for c in section if c != "basis"]
            dropped += _print_table(out, pretty.loc[part.index, [HEADERS.get(c, c) for c in section]],
                                    part["missing"], plain, ranked)
            typer.echo("") if plain else out.print()
    else:
        dropped += _print_table(out, _cells(shown_df, columns), shown_df["missing"], plain, ranked)
    if dropped:
        note(f"left out to fit {out.width} columns: {', '.join(dict.fromkeys(dropped))} (--wide shows every column)")
    if output is not OutputFormat.markdown and not wide:
        _print_int8(out, shown_df, plain)
        if metric_name in SPEED_METRICS:
            _print_runtimes(out, shown_df, plain, metric_name)
    _notes(df, metric_name, device, missing, wide, footed)
    if metric_name in ACCURACY_METRICS and (df["basis"] == "measured on target").any():
        shown_ids = set(df["id"])
        for agreement in zoo.board_vs_host():  # where a board's figure differs from the host's beyond noise
            if agreement["card_id"] in shown_ids:
                note(f"{agreement['card_id']} on {agreement['target']}: {agreement['verdict']}")


def _notes(df, metric: str, device, missing: int, wide: bool, footed: bool) -> None:
    """What a reader must know to read the table: ties, noise, drift, where "yours" came from."""
    from zoo.results.ranking import noise

    if metric in SPEED_METRICS and device is None:
        note(SPEED_HINT.format(m=metric))
    for section in noise(df):
        if section["indistinguishable"] and section["indistinguishable"] * 2 >= section["pairs"]:
            fix = ("evaluate on more images to separate them" if metric in ACCURACY_METRICS else
                   "re-run on a quiet machine, or with more --iters/--seconds, to separate them")
            note(f"noisy: {section['indistinguishable']} of {section['pairs']} pairs in '{section['footing']}' cannot "
                 f"be told apart (their 95% intervals overlap; their ranks read as ranges such as 1–2): {fix}.")
    if "drift" in df:
        for row in df[df["drift"].notna()].itertuples(index=False):
            note(f"drift during run {row.run_id} ({row.id}): {row.drift}: re-run it with the machine idle")
    if "same_file_as" in df:
        groups = {tuple(sorted([row.id, *row.same_file_as.split(", ")]))
                  for row in df[df["same_file_as"].notna() & ~df["missing"]].itertuples(index=False)}
        for group in sorted(groups):
            note(f"{' and '.join(group)}: the same file, timed once: one measurement shown for each")
    if metric in ACCURACY_METRICS and (df["measured_card_id"].notna() & (df["measured_card_id"] != df["id"])).any():
        for card_id, other in df.loc[df["measured_card_id"].notna() & (df["measured_card_id"] != df["id"]),
                                     ["id", "measured_card_id"]].drop_duplicates().itertuples(index=False):
            note(f"† {card_id}: your top-1 was measured on the same file as {other}, not on this card")
    shown = df if (wide or not footed) else df[~df["missing"]]  # a note for each set a shown row names
    for dataset in shown["measured_dataset"].dropna().unique() if metric in ACCURACY_METRICS else ():
        note(f"yours %: your largest run on {dataset}, beside the claims but never ranked with them; the verdict "
             "is about that set, and a set other than ImageNet val (50,000 images) says so: the bundled ImageNet "
             "sample is easier than val. --data DIR picks the images.")
    if missing:
        where = "listed last, rank '—'" if (wide or not footed) else "shown with --wide"
        note(f"{missing} card(s) have no {metric} figure{' on these footings' if footed else ''}: {where}.")
    if metric == "flops":
        note("FLOPs (G, 2×MACs) counts a multiply-accumulate as two FLOPs for every card; the source's own figure "
             "and what it counts (macs or 2x_macs) are beside it.")
    if metric in ("storage", "size") and "converted_mb" in df and df["converted_mb"].notna().any():
        note("card's file (MB): the file the source ships; converted (MB): the ONNX zoo ran in its place")


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


