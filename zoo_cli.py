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
registry_app = typer.Typer(no_args_is_help=True, help="Build and sign the registry index; add and update remote registries.")
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


def _mirrors(cli: Optional[List[str]]) -> Optional[List[str]]:
    """--mirror values first, then ZOO_MIRROR's; None lets the library read ZOO_MIRROR itself."""
    return list(cli) + settings.mirrors() if cli else None


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
):
    """Rank cards on one metric, best first; cards without it come last, marked."""
    df = zoo.compare(patterns, metric.value, device=device, top=top, pareto=pareto, registries=_state["registries"])
    if plot:
        _note(f"drew {zoo.plot(df, metric.value, plot)}")
    if as_json or output is OutputFormat.json:
        _print_json(json.loads(df.to_json(orient="records")))
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
    sign: Optional[Path] = typer.Option(None, "--sign", metavar="KEYFILE",
                                        help="Also write OUT.sig, an ed25519 signature made with this private key."),
    as_json: bool = typer.Option(False, "--json", help="Print {path, cards, signature} as JSON."),
):
    """Write registry/index.json (every card plus its sha256) from cards/."""
    index = zoo.build_registry(cards, out)
    signature = None
    if sign:
        from zoo.remote import sign_file

        signature = sign_file(out, sign)
    if as_json:
        _print_json({"path": str(out), "cards": len(index["cards"]), "signature": signature and str(signature)})
    else:
        typer.echo(f"wrote {out} ({len(index['cards'])} cards)" + (f" and {signature}" if signature else ""))


# ---------------------------------------------------------------- bench / inspect / targets

target_app = typer.Typer(no_args_is_help=True, help="Target boards reached over SSH, for `zoo bench --target`.")
app.add_typer(target_app, name="target")


@app.command()
def bench(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, NAME@source or alias."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="onnxruntime or litert: which artifact to time."),
    provider: Optional[str] = typer.Option(None, "--provider", help="ONNX Runtime execution provider (cpu, cuda, ...)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: the runtime's)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Images per call."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Uncounted calls first."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Timed calls (default: >= 100 and >= 3 s)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0, help="Timed duration instead of --iters."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="Time the card's architecture, random weights."),
    target: Optional[str] = typer.Option(None, "--target", help="Run on this target board (`zoo target add`)."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Measure latency on this host or a target board; the run is stored."""
    entry, note = zoo.resolve(ref, registries=_state["registries"])
    if note:
        _note(note)
    where = f"target {target}" if target else "this host"
    _note(f"timing {entry.id}{' (synthetic weights)' if synthetic else ''} on {where} ...")
    result = zoo.bench(entry.card, runtime=runtime, provider=provider, threads=threads, batch=batch, warmup=warmup,
                       iters=iters, seconds=seconds, synthetic=synthetic, target=target, mirrors=_mirrors(mirror))
    if as_json:
        _print_json(result)
        return
    rt = result["runtime"]
    typer.echo(f"{result['card_id']} on {result['device']} ({rt['name']} {rt['version']}, {rt['provider']}, "
               f"threads {rt['threads'] or 'default'}, batch {result['batch']}, {result['iterations']} calls)")
    typer.echo("  " + "  ".join(f"{k.removesuffix('_ms')} {_fmt(result[k], 3)} ms"
                                for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")
                                if result.get(k) is not None)
               + f"  fps {_fmt(result['fps'], 1)}")
    for claim in result["claims"]:
        unit = "ms" if claim["metric"] == "latency_ms" else "img/s"
        typer.echo(f"  claimed {claim['metric']} {claim['value']:g} {unit} on {claim['device']}")
    _note(f"stored as run {result.get('run_id')}")


@app.command()
def inspect(
    ref: str = typer.Argument(..., metavar="ID|PATH", help="A card (its runnable artifact) or a .onnx/.tflite file."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="Count the card's architecture."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Inputs, outputs, MACs, parameters and size, counted from the model graph."""
    info = zoo.inspect(ref, synthetic=synthetic, mirrors=_mirrors(mirror), registries=_state["registries"])
    if info.get("resolved_note"):
        _note(info["resolved_note"])
    if as_json:
        _print_json(info)
        return
    typer.echo(f"{info.get('card_id') or info['path']}  ({info['format']}, {info['size_bytes']:,} bytes)")
    for kind in ("inputs", "outputs"):
        for tensor in info[kind]:
            typer.echo(f"  {kind[:-1]:6} {tensor['name']}  {tensor['shape']}  {tensor['dtype']}")
    typer.echo(f"  MACs {info['macs'] / 1e6:.2f} M   params {info['params'] / 1e6:.3f} M")
    claimed = info.get("claimed") or {}
    if claimed.get("macs") or claimed.get("params"):
        typer.echo(f"  card: MACs {_fmt(claimed['macs'] and claimed['macs'] / 1e6)} M   "
                   f"params {_fmt(claimed['params'] and claimed['params'] / 1e6, 3)} M")
    if info["uncounted_nodes"]:
        _note(f"{len(info['uncounted_nodes'])} node(s) had unknown shapes and were not counted")


@target_app.command("add")
def target_add(
    name: str = typer.Argument(..., help="A name for the board."),
    ssh: str = typer.Option(..., "--ssh", metavar="USER@HOST", help="How to reach it."),
    runtime: str = typer.Option(..., "--runtime", help="onnxruntime or rdk-bpu."),
    port: int = typer.Option(22, "--port", help="SSH port."),
    identity: Optional[str] = typer.Option(None, "--identity", metavar="FILE", help="SSH private key."),
    python: str = typer.Option("python3", "--python", help="The board's Python, for the onnxruntime runner."),
    as_json: bool = typer.Option(False, "--json", help="Print the target as JSON."),
):
    """Add a target board."""
    from zoo import targets

    target = targets.add(name, ssh, runtime=runtime, port=port, identity=identity, python=python)
    _print_json(target) if as_json else typer.echo(f"added target {name} ({ssh}:{port}, {runtime}); "
                                                   f"try `zoo target check {name}`")


@target_app.command("ls")
def target_ls(as_json: bool = typer.Option(False, "--json", help="Print the targets as JSON.")):
    """List target boards."""
    from zoo import targets

    rows = targets.ls()
    if as_json:
        _print_json(rows)
    elif rows:
        typer.echo(_plain_table(["name", "ssh", "port", "runtime", "identity"],
                                [[t["name"], t["ssh"], t["port"], t["runtime"], t["identity"] or "—"] for t in rows],
                                left={0, 1, 3, 4}))
    else:
        _note("no targets; add one with `zoo target add NAME --ssh USER@HOST --runtime onnxruntime`")


@target_app.command("rm")
def target_rm(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")):
    """Remove a target board."""
    from zoo import targets

    removed = targets.rm(name)
    _print_json(removed) if as_json else typer.echo(f"removed target {name}")


@target_app.command("check")
def target_check(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")):
    """Log in to a target and find its runtime."""
    from zoo import targets

    info = targets.check(name)
    if as_json:
        _print_json(info)
    else:
        typer.echo(f"{name}: reachable, {info['os']}; {info['runtime']} {info.get('runtime_version') or 'found'}")


# ---------------------------------------------------------------- fetch / cache / remote registries

cache_app = typer.Typer(no_args_is_help=True, help="Inspect, verify and clean the download cache.")
app.add_typer(cache_app, name="cache")


class _FetchProgress:
    """Renders fetch events on stderr: rich bars on a terminal, JSON lines with --json, else plain notes."""

    def __init__(self, as_json: bool, quiet: bool):
        import threading

        self.mode = "json" if as_json else "quiet" if quiet else "bars" if sys.stderr.isatty() else "notes"
        self.lock, self.bars, self.tasks = threading.Lock(), None, {}

    def __enter__(self):
        if self.mode == "bars":
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.bars.start()
        return self

    def __exit__(self, *exc):
        if self.bars:
            self.bars.stop()

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        with self.lock:
            if self.mode == "json":
                sys.stderr.write(json.dumps(event, default=str) + "\n")
                sys.stderr.flush()
            elif self.bars and kind in ("start", "progress"):
                task = self.tasks.get(event["file"])
                if task is None:
                    task = self.tasks[event["file"]] = self.bars.add_task(event["file"], total=event["total"])
                done = event.get("bytes", event.get("offset", 0))
                self.bars.update(task, completed=done, total=event["total"])
            elif kind in ("retry", "failed", "warning", "note", "waiting") and self.mode != "quiet":
                text = event.get("message") or (event["reason"] if kind == "failed" else f"{event['url']}: {event['reason']}")
                if kind == "retry":
                    text += f"; retrying in {event['wait_s']:g} s"
                (self.bars.console.print if self.bars else _note)(f"{kind}: {event.get('file', '')} {text}".strip())


_VERIFIED_BY = {"sha256": "the card's sha256", "pin": "the sha256 pinned on first use", "sha384": "the card's sha384",
                "sha1": "the card's sha1", "sha256-prefix": "the file name's sha256 prefix, now pinned",
                "tofu": "nothing: no hash on the card, trusted on first use and pinned"}


@app.command()
def fetch(
    refs: List[str] = typer.Argument(..., metavar="ID...", help="Cards to fetch (id, alias or NAME@source)."),
    all_: bool = typer.Option(False, "--all", help="Every artifact of each card, not only its first."),
    jobs: int = typer.Option(4, "-j", "--jobs", min=1, help="Downloads at a time."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", metavar="URL_OR_DIR",
                                               help="Try this base URL or directory first (repeatable; also ZOO_MIRROR)."),
    require_hashes: bool = typer.Option(False, "--require-hashes",
                                        help="Refuse artifacts without a full sha256 on the card or pinned."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON; progress events as JSON lines on stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the paths (a member's path for archives)."),
    force: bool = typer.Option(False, "--force", help="Download again even when a verified copy is cached."),
):
    """Download, verify and cache cards' artifacts; print where each verified file is."""
    mirrors = _mirrors(mirror)
    with _FetchProgress(as_json, quiet) as progress:
        records = zoo.fetch(refs, all=all_, jobs=jobs, mirrors=mirrors, require_hashes=require_hashes, force=force,
                            registries=_state["registries"], progress=progress)
    if as_json:
        _print_json(records)
        return
    for r in records:
        if quiet:
            typer.echo(r.get("member_path") or r["path"])
            continue
        how = "from the cache, " if r["cached"] else ""
        typer.echo(f"{r['id']}  {r['file']}  {r['size']} bytes  sha256 {r['sha256']}  "
                   f"({how}verified by {_VERIFIED_BY.get(r['verified_by'], r['verified_by'])})")
        for key in ("path", "unpacked", "member_path"):
            if r.get(key):
                typer.echo(f"  {key}: {r[key]}")


@cache_app.command("ls")
def cache_ls(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """List cached files with their sizes and the cards that use them."""
    from zoo import cache

    rows = cache.ls(_state["registries"])
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _note(f"the cache is empty ({settings.cache_dir()})")
        return
    typer.echo(_plain_table(["sha256", "size", "file", "cards"],
                            [[r["sha256"][:16], str(r["size"]), r["file"] + (" (unpacked)" if r["unpacked"] else ""),
                              ", ".join(r["cards"]) or "(no card)"] for r in rows], {0, 2, 3}))
    _note(f"{len(rows)} file(s), {sum(r['size'] for r in rows)} bytes in {settings.cache_dir()}")


@cache_app.command("verify")
def cache_verify(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """Re-hash every cached file; remove corrupt ones (exit 5 if any)."""
    from zoo import cache

    rows = cache.verify()
    if as_json:
        _print_json(rows)
    else:
        for r in rows:
            typer.echo(f"{'ok' if r['ok'] else 'CORRUPT (removed)'}  {r['path']}"
                       + ("" if r["ok"] else f"  sha256 is {r['actual']}"))
        _note(f"{len(rows)} file(s) checked, {sum(not r['ok'] for r in rows)} corrupt")
    if not all(r["ok"] for r in rows):
        raise typer.Exit(5)


@cache_app.command("rm")
def cache_rm(
    targets: List[str] = typer.Argument(..., metavar="SHA256_OR_ID...", help="A sha256 (6+ hex digits) or a card."),
    as_json: bool = typer.Option(False, "--json", help="Print the removed files as JSON."),
):
    """Remove cached files (and their unpacked trees)."""
    from zoo import cache

    rows = cache.rm(targets, _state["registries"])
    if as_json:
        _print_json(rows)
    else:
        for r in rows:
            typer.echo(f"removed {r['path']} ({r['size']} bytes)")


@cache_app.command("prune")
def cache_prune(as_json: bool = typer.Option(False, "--json", help="Print the removed paths as JSON.")):
    """Remove partial downloads, orphaned unpacked trees and files that no card uses."""
    from zoo import cache

    rows = cache.prune(_state["registries"])
    if as_json:
        _print_json(rows)
    else:
        for r in rows:
            typer.echo(f"removed {r['kind']}  {r['path']}")
        _note(f"{len(rows)} item(s) removed")


@registry_app.command("add")
def registry_add(
    name: str = typer.Argument(..., help="A short name; it is shown beside the registry's cards."),
    url: str = typer.Argument(..., help="The index URL, or the base URL that holds index.json."),
    key: Optional[str] = typer.Option(None, "--key", metavar="PUBKEY",
                                      help="ed25519 public key (base64 or a KEYFILE.pub): require a valid signature."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Add (or replace) a remote registry; then run `zoo registry update`."""
    from zoo import remote

    record = remote.add(name, url, key)
    if as_json:
        _print_json(record)
    else:
        typer.echo(f"added {name}: {record['index_url']} ({'signed, key ' + record['key'] if record['key'] else 'unsigned'})")
        _note(f"run `zoo registry update {name}` to download its cards")


@registry_app.command("update")
def registry_update(
    names: Optional[List[str]] = typer.Argument(None, metavar="[NAME]...", help="Registries to update (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
):
    """Download remote indexes that changed; keep a new one only if it verifies (exit 4 if any did not)."""
    from zoo import remote

    rows = remote.update(names)
    if as_json:
        _print_json(rows)
    else:
        if not rows:
            _note("no remote registries; add one with `zoo registry add NAME URL`")
        for r in rows:
            typer.echo(f"{r['name']}: {r['status']} ({r['message']}); {r['cards']} cards in use")
    if any(r["status"] in ("rejected", "failed") for r in rows):
        raise typer.Exit(4)


@registry_app.command("ls")
def registry_ls(as_json: bool = typer.Option(False, "--json", help="Print the records as JSON.")):
    """List remote registries."""
    from zoo import remote

    rows = remote.ls()
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _note("no remote registries; add one with `zoo registry add NAME URL`")
        return
    typer.echo(_plain_table(["name", "cards", "signed", "updated", "url"],
                            [[r["name"], str(r["cards"]), "yes" if r["signed"] else "no", r["updated_at"] or "never",
                              r["url"]] for r in rows], {0, 2, 3, 4}))


@registry_app.command("keygen")
def registry_keygen(
    keyfile: Path = typer.Argument(..., help="Where to write the private key; the public key goes to KEYFILE.pub."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Make an ed25519 key pair for signing a registry index."""
    from zoo import remote

    record = remote.keygen(keyfile)
    if as_json:
        _print_json(record)
    else:
        typer.echo(f"private key: {record['private_key']} (keep it secret)")
        typer.echo(f"public key:  {record['public_key']} (also in {record['public_key_file']})")


# ---------------------------------------------------------------- eval / runs

class _EvalProgress:
    """A rich progress bar on stderr while a terminal watches; silent otherwise."""

    def __init__(self, label: str):
        self.label, self.bar, self.task = label, None, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def __call__(self, done: int, total: int) -> None:
        if self.bar:
            if self.task is None:
                self.task = self.bar.add_task(self.label, total=total)
            self.bar.update(self.task, completed=done)


@app.command("eval")
def eval_(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, alias or NAME@source."),
    data: Path = typer.Option(..., "--data", metavar="DIR", help="Validation images (layouts in the README)."),
    labels: Optional[Path] = typer.Option(None, "--labels", metavar="FILE",
                                          help="'FILE IDX' lines (0-based, standard order) or LOC_val_solution.csv."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate N images (a fixed subset spread over classes)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1,
                                        help="Images per inference call, where the model allows (default: 8 on CPU, 32 on an accelerator)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Threads that each decode a batch, then run it (default: one per core)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="ONNX Runtime execution provider (cpu, cuda, ...)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference lanes: batches run at once, each single-threaded on CPU (default: one per core)."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="FILE",
                                         help="Run this local .onnx/.tflite file under the card's conventions."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", metavar="URL_OR_DIR",
                                               help="Try this base URL or directory first (also ZOO_MIRROR)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the run in the results store."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (keys in the README)."),
):
    """Measure top-1/top-5 of a card's model on your validation images, preprocessed as its source does."""
    mirrors = _mirrors(mirror)
    with _EvalProgress(ref) as progress:
        r = zoo.evaluate(ref, data, labels=labels, limit=limit, batch=batch, workers=workers, provider=provider,
                         threads=threads, model=model, mirrors=mirrors, store=not no_store,
                         registries=_state["registries"], progress=progress)
    for line in r["notes"]:
        _note(f"note: {line}")
    if r["unreadable"]:
        _note(f"{r['unreadable']} unreadable image(s), not counted: " + ", ".join(r["unreadable_files"][:20])
              + (" ..." if r["unreadable"] > 20 else ""))
    if as_json:
        _print_json(r)
        return
    ds, rt = r["dataset"], r["runtime"]
    typer.echo(f"{r['card_id']} on {ds['path']} ({ds['layout']}, {r['n']} images)")
    for metric in ("top1", "top5"):
        low, high = r[f"{metric}_ci95"]
        claim = next((c["value"] for c in r["claims"] if c["metric"] == metric), None)
        typer.echo(f"  {metric[:3]}-{metric[3]}  {r[metric]:6.2f} %  (95% CI {low:.2f}–{high:.2f})"
                   + (f"   claimed {claim:g} %" if claim is not None else ""))
    threads_note = f", {rt['threads']} threads" if rt["threads"] else ""
    typer.echo(f"  {r['images_per_s']:.1f} images/s; {rt['name']} {rt['version']} ({rt['provider']}{threads_note}), "
               f"batch {r['batch']}, {r['workers']} workers")
    typer.echo(f"  artifact {r['artifact']['file']} sha256 {r['artifact']['sha256']}")
    if "run_id" in r:
        typer.echo(f"  stored as run {r['run_id']} (zoo runs)")


@app.command("runs")
def runs_(
    card: Optional[str] = typer.Option(None, "--card", metavar="ID", help="Only runs of this card id."),
    kind: Optional[str] = typer.Option(None, "--kind", help="eval or bench."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="The newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored runs as JSON."),
):
    """List past eval and bench runs from the results store, newest first."""
    if kind not in (None, "eval", "bench"):
        from zoo.errors import UsageError

        raise UsageError(f"--kind must be eval or bench, got {kind!r}")
    rows = zoo.runs(kind=kind, card=card, limit=limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _note("no runs stored yet: `zoo eval ID --data DIR` records one")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    numeric = ("run", "top-1 %", "top-5 %", "n", "p50 ms", "img/s")
    for name in ("run", "when (UTC)", "kind", "card", "top-1 %", "top-5 %", "n", "p50 ms", "img/s", "runtime", "device",
                 "data", "sha256"):
        table.add_column(name, justify="right" if name in numeric else "left")
    for r in rows:
        m = r["metrics"]
        table.add_row(str(r["id"]), r["created_at"].replace("T", " ")[:19], r["kind"], r["card_id"], _fmt(m.get("top1")),
                      _fmt(m.get("top5")), _fmt(m.get("n")), _fmt(m.get("p50_ms")),
                      _fmt(m.get("images_per_s") or m.get("fps"), 1), f"{r['runtime']} {r['runtime_version']}",
                      r["device"], (r["dataset_fingerprint"] or "—")[:12], r["artifact_sha256"][:12])
    _console().print(table)


# ---------------------------------------------------------------- convert

@app.command()
def convert(
    ref: str = typer.Argument(..., metavar="ID", help="Card id, NAME@source or alias."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="PATH",
                                          help="Also copy the ONNX here (a file, or a directory)."),
    synthetic: bool = typer.Option(False, "--synthetic-weights", help="The card's architecture with random weights."),
    artifact: Optional[str] = typer.Option(None, "--artifact", metavar="FILE", help="Which native file (default: the first)."),
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Mirror for the artifact (also ZOO_MIRROR)."),
    force: bool = typer.Option(False, "--force", help="Convert again even when a cached ONNX exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
):
    """Convert a card's native weights (pth, safetensors, pdparams, MindSpore ckpt) to ONNX through timm; cached."""
    entry, note = zoo.resolve(ref, registries=_state["registries"])
    if note:
        _note(note)
    mirrors = _mirrors(mirror)
    r = zoo.convert(entry.card, artifact=artifact, output=output, synthetic=synthetic, mirrors=mirrors, force=force)
    if as_json:
        _print_json(r)
        return
    source = "synthetic weights" if r["synthetic_weights"] else f"{r['source']['file']} ({r['source']['format']})"
    arch = r["architecture"]
    typer.echo(f"{r['id']}: {source} -> timm {arch['timm_model']} -> ONNX opset {r['opset']}"
               f"{'  (cached)' if r['cached'] else ''}")
    typer.echo(f"  {r['output'] if r.get('output') else r['path']}")
    typer.echo(f"  sha256 {r['sha256']}  {r['size_bytes']:,} bytes  max |ONNX - timm| {r['max_abs_diff']:.2g}")


def main() -> None:
    """Entry point: click's usage errors become one line too (`zoo: error: ... Try 'zoo X --help'.`)."""
    try:
        code = app(prog_name="zoo", standalone_mode=False)
    except Exception as exc:  # click's exception classes live in typer's vendored click: match by shape
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
            sys.exit(0)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            hint = f" Try '{ctx.command_path} --help'." if ctx is not None else ""
            typer.echo(f"zoo: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            typer.echo("zoo: aborted", err=True)
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
