"""Rendering for the CLI: JSON, plain and rich tables, notes, progress displays. Results go to stdout;
notes, progress and errors to stderr."""
from __future__ import annotations

import json
import sys

import typer


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def note(text: str) -> None:
    typer.echo(text, err=True)


def print_resolved(result: dict) -> None:
    """The alias rule's note (which card an ambiguous reference picked), the same way for every command."""
    resolved = result.get("resolved") if isinstance(result, dict) else None
    if resolved and resolved.get("note"):
        note(resolved["note"])


def plain_table(headers: list[str], rows: list[list[str]], left: set[int]) -> str:
    # Hand-rolled on purpose: rich or tabulate would add 50-70 ms to `zoo list`, whose budget is 150 ms.
    # One format string for every line: 10,000 rows in a few ms (zoo list on a big registry).
    widths = [max(map(len, map(str, column))) for column in zip(headers, *rows)]
    layout = "  ".join(f"{{!s:{'<' if i in left else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(layout.format(*cells).rstrip() for cells in [headers, *rows])



def console():
    from rich.console import Console

    # Piped output is read by scripts and pagers: never truncate it to 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=400, soft_wrap=True)


def wide_console():
    from rich.console import Console

    return Console(width=400, soft_wrap=True)


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)



def counting_bar():
    """A started rich progress bar on stderr (description, bar, done/total, time left) that vanishes when stopped."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    return bar


class FetchProgress:
    """Renders fetch events on stderr: rich bars on a terminal, JSON lines with --json, else plain notes."""

    def __init__(self, as_json: bool, quiet: bool):
        import threading

        self.mode = "json" if as_json else "quiet" if quiet else "bars" if sys.stderr.isatty() else "notes"
        self.lock, self.bars, self.tasks = threading.Lock(), None, {}

    def __enter__(self):
        if self.mode == "bars":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

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
                (self.bars.console.print if self.bars else note)(f"{kind}: {event.get('file', '')} {text}".strip())


class SweepProgress:
    """Renders a sweep's events (zoo.engine.sweep): one rich bar over the whole sweep on a terminal's stderr,
    a line per finished card on stdout (a JSON line with --json), notes on stderr; -q keeps only the results."""

    def __init__(self, as_json: bool, quiet: bool, lines_to_stderr: bool = False):
        import threading

        self.as_json, self.quiet, self.lines_to_stderr = as_json, quiet, lines_to_stderr
        self.lock, self.bar, self.task = threading.Lock(), None, None

    def __enter__(self):
        self.bar = counting_bar() if sys.stderr.isatty() and not self.quiet else None
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()

    def _say(self, text: str, err: bool = False) -> None:
        if self.bar:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=err)

    def __call__(self, event: dict) -> None:
        with self.lock:
            kind = event["event"]
            if kind == "note" and not self.quiet:
                self._say(event["message"], err=True)
            elif kind == "start" and self.bar:
                label = "evaluating" if event["kind"] == "eval" else "timing"
                self.task = self.bar.add_task(f"{label} {event['cards']} card(s)", total=event["units"] or 1)
            elif kind == "advance" and self.bar and self.task is not None:
                self.bar.update(self.task, completed=event["done"], total=event["units"] or 1)
            elif kind == "card":
                self.card(event)

    def card(self, event: dict) -> None:
        record = {k: v for k, v in event.items() if k not in ("event", "result")}
        if self.as_json:
            # the result's own keys win (its runtime is {name, version, provider, threads}); the record adds status
            line = json.dumps({**record, **(event.get("result") or {})}, ensure_ascii=False, default=str)
            if self.bar:
                self.bar.console.file.flush()
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        if self.quiet and record["status"] == "reused":
            return
        self._say(card_line(record), err=self.lines_to_stderr)


def card_line(r: dict) -> str:
    status, card = r["status"], r["card_id"]
    if status in ("skipped", "failed"):
        return f"{status:8} {card}: {r['reason']}"
    how = " · ".join(str(x) for x in (r.get("runtime"), r.get("precision")) if x)
    if r["kind"] == "eval":
        figures = f"top-1 {fmt(r['top1'])} %  top-5 {fmt(r['top5'])} %  ({r['n']} images, {how})"
        if r.get("calibration_excluded"):
            figures += f"  (excluded {r['calibration_excluded']} calibration images)"
    else:
        ci = r.get("p50_ci95")
        said = str(r.get("note") or "").startswith("synthetic weights")  # the note says it, and why
        figures = (f"p50 {fmt(r['p50_ms'], 3)} ms" + (f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else "")
                   + f"  fps {fmt(r['fps'], 1)}  {how}"
                   + ("  (synthetic weights)" if r.get("synthetic_weights") and not said else ""))
        if r.get("same_file_as"):
            figures += f"  (same file as {', '.join(r['same_file_as'])}: timed once)"
    run = f"  run {r['run_id']}" if r.get("run_id") else ""
    line = f"{status:8} {card}  {figures}{run}" + (f"  [{r['note']}]" if r.get("note") else "")
    if r.get("accuracy_vs_float"):
        line += "\n" + accuracy_line(r["accuracy_vs_float"])
    if r.get("speed_vs_float"):
        line += "\n" + speed_line(r["speed_vs_float"])
    return line


def _parent(v: dict) -> str:
    return f"  vs float {v['parent']}" + (f" (run {v['parent_run_id']})" if v.get("parent_run_id") else "")


def accuracy_line(v: dict) -> str:
    """An int8 card's top-1 against its float parent's on the same images (McNemar's exact test)."""
    return (f"{_parent(v)}: top-1 float {fmt(v['parent_top1'])} %, int8 {fmt(v['top1'])} %, drop "
            f"{v['drop_points']:+.2f} points; McNemar exact p = {v['p_value']:.3g} ({v['float_only']} "
            f"image{'' if v['float_only'] == 1 else 's'} right only in float, {v['int8_only']} only in int8): "
            f"{v['verdict']}")


def speed_line(v: dict) -> str:
    """An int8 card's p50 against its float parent's, timed in the same rounds."""
    return (f"{_parent(v)}: p50 int8 {fmt(v['p50_ms'], 3)} ms, float {fmt(v['parent_p50_ms'], 3)} ms, int8/float "
            f"{v['ratio']:.2f}: {v['verdict']}")


def counts(summary: dict) -> str:
    return (f"{len(summary['measured'])} measured, {len(summary['reused'])} reused, "
            f"{len(summary['skipped'])} skipped, {len(summary['failed'])} failed")


def hints(summary: dict) -> None:
    """What to do about the cards skipped or failed, each hint once (the card lines carry only their reasons)."""
    for item in summary.get("hints") or []:
        cards = item["cards"]
        which = cards[0] if len(cards) == 1 else f"{len(cards)} cards ({cards[0]}, ...)"
        note(f"  {which}: {item['hint']}")


def sweep_summary(summary: dict, as_json: bool) -> None:
    """The sweep's last line: counts (each card's reason is on its own line), then each hint once on stderr."""
    if as_json:
        out = {k: v for k, v in summary.items() if k != "records"}
        sys.stdout.write(json.dumps({"summary": out}, ensure_ascii=False, default=str) + "\n")
        return
    typer.echo(counts(summary))
    hints(summary)


def measure_summary(summary: dict | None) -> None:
    """`compare --measure`'s summary, on stderr after the per-card lines: what it measured, reused, skipped."""
    if summary is None:
        note("--measure: nothing to measure, every card has a figure here already")
        return
    note(f"--measure: {summary['cards']} card(s): {counts(summary)}")
    hints(summary)
