"""`zoo list`, `zoo show`, `zoo cards lint|schema`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import zoo
from zoo.cli.app import app, state, sub_app
from zoo.cli.render import fmt, note, plain_table, print_json, print_resolved
from zoo.errors import InvalidCardError, UsageError

cards_app = sub_app("cards", "Validate cards and print their schema.")


@app.command("list")
def list_(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard on id, alias or name: 'timm/*', '*075*'."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source (paddleclas, timm, ...)."),
    width: Optional[float] = typer.Option(None, "--width", help="Only this width multiplier."),
    resolution: Optional[int] = typer.Option(None, "--resolution", help="Only this input resolution."),
    artifact_format: Optional[str] = typer.Option(None, "--format", help="Only cards with an artifact of this format."),
    sort: str = typer.Option("id", "--sort", help="id, source, width, resolution, params_m, macs_m, top1, top5, size."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (keys in the README)."),
):
    """List cards."""
    rows = zoo.list_cards(pattern, source=source, width=width, resolution=resolution, fmt=artifact_format, sort=sort,
                          brief=not as_json, registries=state["registries"])
    if as_json:
        print_json(rows)
        return
    if not rows:
        note("no cards match")
        return
    headers = ["id", "width", "res", "top-1 %", "top-5 %", "params M", "MACs M", "artifacts"]
    table = []
    for r in rows:
        formats = ", ".join(a["format"] + ("✓" if a["sha256"] else "") for a in r["artifacts"]) or "(architecture only)"
        table.append([r["id"], str(r["width"]), str(r["resolution"]), fmt(r["top1"]), fmt(r["top5"]),
                      fmt(r["params_m"]), fmt(r["macs_m"], 1), formats])
    typer.echo(plain_table(headers, table, left={0, 7}))
    note(f"{len(rows)} cards (✓ = full sha256 on the card)")
    shadowing_notes(rows)


def shadowing_notes(rows: list[dict], limit: int = 5) -> None:
    """Say which listed cards another source also publishes, and why its card is not the one used."""
    clashes = [(r, s) for r in rows for s in r.get("shadowed") or []]
    for r, s in clashes[:limit]:
        note(f"{r['id']} is {r['registry']}'s card; {s['registry']} also publishes one: {s['reason']}")
    if len(clashes) > limit:
        note(f"... and {len(clashes) - limit} more cards published by more than one source (`zoo show ID`, "
             "or `zoo list --json`: shadowed)")


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, NAME@source, alias (mobilenetv2_075) or upstream name."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
):
    """Show one whole card."""
    shown = zoo.show(ref, registries=state["registries"])
    print_resolved(shown)
    if as_json:
        print_json(shown)
        return
    import yaml

    shadowing_notes([{"id": shown["card"]["id"], "registry": shown["registry"], "shadowed": shown["shadowed"]}],
                    limit=len(shown["shadowed"]))
    typer.echo(f"# {shown['card']['id']}  (alias {shown['alias']}, registry {shown['registry']})")
    typer.echo(yaml.safe_dump(shown["card"], sort_keys=False, allow_unicode=True, width=110).rstrip())


@cards_app.command("lint")
def cards_lint(
    paths: Optional[List[str]] = typer.Argument(None, help="Card files or directories (default: ./cards)."),
    as_json: bool = typer.Option(False, "--json", help="Print {checked, problems} as JSON."),
):
    """Validate cards, naming file and field for every problem."""
    if any(not p.strip() for p in paths or []):  # Path('') is '.': an empty argument would lint the whole cwd
        raise UsageError("an empty argument is not a card file or directory", "Give card files or directories")
    cards, problems = zoo.lint_cards([Path(p) for p in paths or ["cards"]])
    if as_json:
        print_json({"checked": len(cards) + len(problems), "valid": len(cards), "problems": problems})
    else:
        for line in problems:
            typer.echo(line, err=True)
        note(f"{len(cards)} card(s) valid, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(InvalidCardError.exit_code)


@cards_app.command("schema")
def cards_schema():
    """Print the card's JSON Schema."""
    print_json(zoo.card_schema())
