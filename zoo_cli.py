"""The `zoo` command: parse options, call the library, render a table or JSON. No logic lives here.

Results go to stdout, notes and errors to stderr. Every `--json` prints exactly what the
library returned. Errors are one line and an exit code; tracebacks only with --debug.
"""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

import zoo
from zoo import settings
from zoo.errors import ZooError


class _Group(typer.core.TyperGroup):
    """Turns a ZooError into one line on stderr and the error's exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ZooError as error:
            if _state["debug"]:
                raise
            typer.echo(f"zoo: error: {error.one_line()}", err=True)
            raise typer.Exit(error.exit_code) from None


_state: dict = {"registries": [], "debug": False}
app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Compare every published MobileNetV2 on one footing.")
cards_app = typer.Typer(no_args_is_help=True, help="Validate cards and print their schema.")
registry_app = typer.Typer(no_args_is_help=True, help="Build the registry index.")
app.add_typer(cards_app, name="cards")
app.add_typer(registry_app, name="registry")


def _version(value: bool):
    if value:
        typer.echo(f"zoo {zoo.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    registry: Optional[List[Path]] = typer.Option(None, "--registry", metavar="DIR",
                                                   help="Add a directory of cards (repeatable; also ZOO_REGISTRY)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (also ZOO_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    _state["registries"] = list(registry or [])
    _state["debug"] = debug or settings.debug()


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _note(text: str) -> None:
    typer.echo(text, err=True)


def _plain_table(headers: list[str], rows: list[list[str]], left: set[int]) -> str:
    # Hand-rolled on purpose: rich or tabulate would add 50-70 ms to `zoo list`, whose budget is 150 ms.
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def _console():
    from rich.console import Console

    # Piped output is read by scripts and pagers: never truncate it to 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=400, soft_wrap=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- list / show

@app.command("list")
def list_(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard on id, alias or name: 'timm/*', '*075*'."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source (paddleclas, timm, ...)."),
    width: Optional[float] = typer.Option(None, "--width", help="Only this width multiplier."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Only this input resolution."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Only cards with an artifact of this format."),
    sort: str = typer.Option("id", "--sort", help="id, source, width, resolution, params_m, macs_m, top1, top5, size."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (keys in the README)."),
):
    """List cards."""
    rows = zoo.list_cards(pattern, source=source, width=width, resolution=resolution, fmt=fmt, sort=sort,
                          registries=_state["registries"])
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _note("no cards match")
        return
    headers = ["id", "width", "res", "top-1 %", "top-5 %", "params M", "MACs M", "artifacts"]
    table = []
    for r in rows:
        formats = ", ".join(a["format"] + ("✓" if a["sha256"] else "") for a in r["artifacts"]) or "(architecture only)"
        table.append([r["id"], str(r["width"]), str(r["resolution"]), _fmt(r["top1"]), _fmt(r["top5"]),
                      _fmt(r["params_m"]), _fmt(r["macs_m"], 1), formats])
    typer.echo(_plain_table(headers, table, left={0, 7}))
    _note(f"{len(rows)} cards (✓ = full sha256 on the card)")


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, NAME@source, alias (mobilenetv2_075) or upstream name."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
):
    """Show one whole card."""
    from zoo.registry import alias

    entry, note = zoo.resolve(ref, registries=_state["registries"])
    if note:
        _note(note)
    if as_json:
        _print_json({"card": entry.card, "registry": entry.registry, "alias": alias(entry.card),
                     "resolved": {"query": ref, "note": note}})
        return
    import yaml

    typer.echo(f"# {entry.id}  (alias {alias(entry.card)}, registry {entry.registry})")
    typer.echo(yaml.safe_dump(entry.card, sort_keys=False, allow_unicode=True, width=110).rstrip())


# ---------------------------------------------------------------- compare

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
           "basis": "basis", "pareto": "pareto"}


@app.command("compare")
def compare_(
    patterns: Optional[List[str]] = typer.Argument(None, metavar="[PATTERN]...", help="Cards to compare (default: all)."),
    metric: Metric = typer.Option(Metric.accuracy, "--metric", help="What to rank on."),
    device: Optional[str] = typer.Option(None, "--device", help="Only latency/fps figures on devices containing TEXT."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Show the best N."),
    pareto: bool = typer.Option(False, "--pareto", help="Mark the accuracy/metric Pareto frontier."),
    output: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv, json or markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
):
    """Rank cards on one metric, best first; cards without it come last, marked."""
    df = zoo.compare(patterns, metric.value, device=device, top=top, pareto=pareto, registries=_state["registries"])
    if as_json or output is OutputFormat.json:
        _print_json(json.loads(df.to_json(orient="records")))
        return
    shown = df.drop(columns=["missing"])
    if output is OutputFormat.csv:
        sys.stdout.write(shown.to_csv(index=False))
        return
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
        _console().print(table)
    if missing:
        _note(f"{missing} card(s) have no {metric.value} figure: listed last, rank '—'.")


# ---------------------------------------------------------------- cards / registry

@cards_app.command("lint")
def cards_lint(
    paths: Optional[List[Path]] = typer.Argument(None, help="Card files or directories (default: ./cards)."),
    as_json: bool = typer.Option(False, "--json", help="Print {checked, problems} as JSON."),
):
    """Validate cards, naming file and field for every problem."""
    targets = list(paths or [Path("cards")])
    cards, problems = zoo.lint_cards(targets)
    if as_json:
        _print_json({"checked": len(cards) + len(problems), "valid": len(cards), "problems": problems})
    else:
        for line in problems:
            typer.echo(line, err=True)
        _note(f"{len(cards)} card(s) valid, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(4)


@cards_app.command("schema")
def cards_schema():
    """Print the card's JSON Schema."""
    _print_json(zoo.card_schema())


@registry_app.command("build")
def registry_build(
    cards: Path = typer.Option(Path("cards"), "--cards", help="Directory of cards."),
    out: Path = typer.Option(Path("registry/index.json"), "--out", help="Where to write the index."),
    as_json: bool = typer.Option(False, "--json", help="Print {path, cards} as JSON."),
):
    """Write registry/index.json (every card plus its sha256) from cards/."""
    index = zoo.build_registry(cards, out)
    if as_json:
        _print_json({"path": str(out), "cards": len(index["cards"])})
    else:
        typer.echo(f"wrote {out} ({len(index['cards'])} cards)")


def main() -> None:
    app(prog_name="zoo")


if __name__ == "__main__":
    main()
