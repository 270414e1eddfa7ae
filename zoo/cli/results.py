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
from zoo.cli.render import console, fmt, note, print_json


class Metric(str, Enum):
    accuracy = "accuracy"
    top5 = "top5"
    latency = "latency"
    fps = "fps"
    macs = "macs"
    params = "params"
    size = "size"


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


HEADERS = {"rank": "#", "id": "id", "source": "source", "width": "width", "resolution": "res",
           "top1_pct": "top-1 (%)", "top5_pct": "top-5 (%)", "params_m": "params (M)", "macs_m": "MACs (M)",
           "size_mb": "size (MB)", "latency_ms": "latency (ms)", "fps": "fps (img/s)", "device": "device",
           "basis": "basis", "pareto": "pareto", "top1_measured_pct": "top-1 yours (%)",
           "top5_measured_pct": "top-5 yours (%)", "measured_images": "images", "latency_ms_claimed": "claimed (ms)",
           "fps_claimed": "claimed (img/s)", "claimed_device": "claimed on"}


@app.command("compare")
def compare_(
    patterns: Optional[List[str]] = typer.Argument(None, metavar="[PATTERN]...", help="Cards to compare (default: all)."),
    metric: Metric = typer.Option(Metric.accuracy, "--metric", help="What to rank on."),
    device: Optional[str] = typer.Option(None, "--device", help="host, a target name, or TEXT in a claimed device."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show the best N."),
    pareto: bool = typer.Option(False, "--pareto", help="Mark the accuracy/metric Pareto frontier."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv, json or markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="Also draw top-1 against the metric."),
    measure: bool = typer.Option(False, "--measure", help="First measure what the comparison lacks (then rank)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="With --measure: images for accuracy."),
    target: Optional[str] = typer.Option(None, "--target", help="With --measure: time latency on this board."),
):
    """Rank cards on one metric, best first; cards without it come last, marked."""
    from zoo.cli.render import SweepProgress

    with SweepProgress(False, quiet=False, lines_to_stderr=True) as progress:
        df = zoo.compare(patterns, metric.value, device=device, top=top, pareto=pareto, measure=measure, data=data,
                         target=target, registries=state["registries"], progress=progress)
    if plot:
        note(f"drew {zoo.plot(df, metric.value, plot)}")
    if as_json or output is OutputFormat.json:
        print_json(json.loads(df.to_json(orient="records")))
        return
    shown = df.drop(columns=["missing"])
    if output is OutputFormat.csv:
        sys.stdout.write(shown.to_csv(index=False))
        return
    # Tables leave out the measured-beside-claimed columns until something has been measured.
    drop = [c for c in ("top1_measured_pct", "top5_measured_pct", "measured_images") if shown[c].isna().all()]
    if not shown["basis"].str.startswith("measured").any():
        drop += [c for c in ("latency_ms_claimed", "fps_claimed", "claimed_device") if c in shown]
    shown = shown.drop(columns=drop)
    pretty = shown.rename(columns=HEADERS)
    for column in pretty.columns:
        if pretty[column].dtype == "float64":
            pretty[column] = pretty[column].map(lambda v: "—" if v != v else f"{v:.2f}")
    pretty = pretty.astype(object).where(pretty.notna(), "—")
    if "pareto" in pretty:
        pretty["pareto"] = pretty["pareto"].map({True: "★", False: ""})
    missing = int(df["missing"].sum())
    if output is OutputFormat.markdown:
        typer.echo(pretty.to_markdown(index=False))
    else:
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for column in pretty.columns:
            table.add_column(column, justify="left" if column in ("id", "source", "device", "basis") else "right")
        for row, is_missing in zip(pretty.itertuples(index=False), df["missing"]):
            table.add_row(*[str(v) for v in row], style="dim" if is_missing else None)
        console().print(table)
    if missing:
        note(f"{missing} card(s) have no {metric.value} figure: listed last, rank '—'.")


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


