"""Rendering for the CLI: JSON, plain and rich tables, notes, progress displays. Results go to stdout;
notes, progress and errors to stderr.

Card text is hostile: a claim's device may hold an OSC sequence that sets the terminal's title or clipboard, a
CR that overwrites the line, a newline that forges one. Everything a command prints passes one boundary: while
it runs, stdout and stderr are escaping streams (escaped_output: every character a terminal acts on becomes a
visible \\uXXXX, which is also a valid JSON escape), and rich consoles from console()/counting_bar() escape every
string they render before adding their own styling. Fields that must stay on one line (table cells, headings,
reasons) are escaped with printable(..., lines=False) as well.
"""
from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager

import typer

# C0 controls but newline and tab, DEL, C1 controls (8-bit CSI, OSC...), and the bidirectional controls that
# reorder what is shown (U+061C, U+200E/F, U+202A-E, U+2066-9).
_ACTS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_TERMINAL = re.compile(f"[{_ACTS}]")
_TERMINAL_OR_LINE = re.compile(f"[{_ACTS}\n\t]")


def _escape(match) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, lines: bool = True) -> str:
    """`text` with every character a terminal acts on rather than shows written as \\uXXXX; lines=False: newline
    and tab too, for a field that must stay on its line."""
    text = str(text)
    if text.isprintable():  # the common case, in C
        return text
    return (_TERMINAL if lines else _TERMINAL_OR_LINE).sub(_escape, text)


class _EscapingStream:
    """A text stream writing through another with printable(). It has no `buffer`, so click's echo writes
    through it rather than around it."""

    def __init__(self, stream):
        self.raw = stream

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.raw.write(printable(text))
        return len(text)

    def __getattr__(self, name):
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.raw, name)


def raw_stream(stream):
    """The terminal or file under an escaping stream (for rich, which escapes what it renders itself)."""
    return stream.raw if isinstance(stream, _EscapingStream) else stream


@contextmanager
def escaped_output():
    """stdout and stderr escape what a terminal would act on, for as long as the block runs (nesting is a no-op)."""
    if isinstance(sys.stdout, _EscapingStream):
        yield
        return
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(out), _EscapingStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _console(**options):
    """A rich Console on the real stream that escapes every string it renders (print, table cells, titles)."""
    from rich.console import Console

    class EscapingConsole(Console):
        def render_str(self, text, **kwargs):
            return super().render_str(printable(text), **kwargs)

    stream = sys.stderr if options.pop("stderr", False) else sys.stdout
    return EscapingConsole(file=raw_stream(stream), **options)


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
    rows = [[printable(cell, lines=False) for cell in row] for row in rows]  # a newline would forge a row
    widths = [max(map(len, map(str, column))) for column in zip(headers, *rows)]
    layout = "  ".join(f"{{!s:{'<' if i in left else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(layout.format(*cells).rstrip() for cells in [headers, *rows])



def console():
    # Piped output is read by scripts and pagers: never truncate it to 80 columns.
    return _console() if sys.stdout.isatty() else _console(width=400, soft_wrap=True)


def wide_console():
    return _console(width=400, soft_wrap=True)


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)



def counting_bar():
    """A started rich progress bar on stderr (description, bar, done/total, time left) that vanishes when stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=_console(stderr=True), transient=True)
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
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=_console(stderr=True))
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
                    task = self.tasks[event["file"]] = self.bars.add_task(printable(event["file"], lines=False),
                                                                          total=event["total"])
                done = event.get("bytes", event.get("offset", 0))
                self.bars.update(task, completed=done, total=event["total"])
            elif kind in ("retry", "failed", "warning", "note", "waiting") and self.mode != "quiet":
                text = event.get("message") or (event["reason"] if kind == "failed" else f"{event['url']}: {event['reason']}")
                if kind == "retry":
                    text += f"; retrying in {event['wait_s']:g} s"
                line = printable(f"{kind}: {event.get('file', '')} {text}".strip(), lines=False)
                (self.bars.console.print if self.bars else note)(line)


class SweepProgress:
    """Renders a sweep's events (zoo.engine.sweep): one rich bar over the whole sweep on a terminal's stderr,
    a line per finished card on stdout (a JSON line with --json), notes on stderr; -q keeps only the results."""

    def __init__(self, as_json: bool, quiet: bool, lines_to_stderr: bool = False, starting: str | None = None):
        import threading

        self.as_json, self.quiet, self.lines_to_stderr = as_json, quiet, lines_to_stderr
        self.starting = starting  # said on stderr when there is work to do (not when every run is reused)
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
            elif kind == "start" and self.starting and event["units"] and not (self.quiet or self.as_json):
                self._say(self.starting, err=True)
            if kind == "start" and self.bar:
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
        return f"{status:8} {card}: {printable(r['reason'], lines=False)}"
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
    line = f"{status:8} {card}  {figures}{run}" + (f"  [{printable(r['note'], lines=False)}]" if r.get("note") else "")
    if r.get("accuracy_vs_float"):
        line += "\n" + accuracy_line(r["accuracy_vs_float"])
    if r.get("speed_vs_float"):
        line += "\n" + speed_line(r["speed_vs_float"])
    return line


def _parent(v: dict) -> str:
    return f"  vs float {v['parent']}" + (f" (run {v['parent_run_id']})" if v.get("parent_run_id") else "")


def accuracy_line(v: dict) -> str:
    """An int8 card's top-1 against its float parent's on the same images (McNemar's exact test)."""
    return (f"{_parent(v)}: top-1 float {fmt(v['parent_top1'])} %, int8 {fmt(v['top1'])} % ({v['float_only']} "
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


# ---------------------------------------------------------------- int8: the quantization doctor, profiles

def _ms(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def profile_lines(card_id: str, p: dict, nodes: int = 8) -> list[str]:
    """A bench run's ONNX Runtime profile (zoo.measure.profile): per operator family (an int8 card's beside its
    float parent's), per operator type, the slowest nodes."""
    lines = [f"profile of {card_id} (ONNX Runtime, {p['runs']} runs, {p.get('threads') or 'default'} thread(s), "
             f"batch {p['batch']}): run {_ms(p['run_ms'])} ms, kernels {_ms(p['kernel_ms'])} ms"]
    if p.get("vs_float"):
        f = p["float"]
        lines.append(f"  int8 against float (run {_ms(f['run_ms'])} ms, kernels {_ms(f['kernel_ms'])} ms), per operator family:")
        rows = [[r["family"], _ms(r["int8_ms"]), _ms(r["float_ms"]),
                 "—" if r["ratio"] is None else f"{r['ratio']:.2f}"] for r in p["vs_float"]]
        lines += ["    " + line for line in plain_table(["family", "int8 ms", "float ms", "int8/float"], rows, {0}).splitlines()]
    rows = [[r["op"], r["family"], _ms(r["ms"]), _pct(r["share"]), f"{r['calls']:g}"] for r in p["by_op"]]
    lines.append("  per operator type:")
    lines += ["    " + line for line in plain_table(["op", "family", "ms", "share", "calls"], rows, {0, 1}).splitlines()]
    rows = [[r["node"], r["op"], _ms(r["ms"]), _pct(r["share"]),
             "x".join(map(str, r["output_shape"])) if r.get("output_shape") else "—"] for r in p["by_node"][:nodes]]
    lines.append(f"  slowest {len(rows)} of {p['nodes']} nodes:")
    lines += ["    " + line for line in plain_table(["node", "op", "ms", "share", "output"], rows, {0, 1, 4}).splitlines()]
    return lines


def doctor_lines(report: dict, layers: int = 10) -> list[str]:
    """`zoo quantize --explain`: the worst layers, then each --max-drop try, then what became the card."""
    o = report["options"]
    lines = [f"{report['id']}: {o['format']} ({o['activations']} activations, "
             f"{'per-channel' if o['per_channel'] else 'per-tensor'} {o['weights']} weights), {o['method']}",
             f"layers against {report['parent']} on {report['images']} calibration images (this host's int8 kernels),"
             f" worst first (dB lost: the layer's input SQNR less its output's):"]
    rows = [[str(r["index"]), r["node"], r["what"], fmt(r["lost_db"], 1), fmt(r["sqnr_db"], 1),
             fmt(r["cosine"], 4)] for r in report["layers"][:layers]]
    lines += ["  " + line for line in plain_table(["#", "node", "layer", "dB lost", "SQNR dB", "cosine"], rows,
                                                  {1, 2}).splitlines()]
    if len(report["layers"]) > layers:
        lines.append(f"  ... {len(report['layers']) - layers} more layers (--json has them all)")
    if report["tries"]:
        lines.append(f"--max-drop {report['max_drop']:g}: top-1 on {report['held_out']['n']} held-out images of "
                     f"{report['held_out']['root']}; speed at batch 1, 1 thread, interleaved with float:")
        rows = [[str(t["try"]), str(len(t["keep_float"])), ", ".join(t["keep_float"][-4:]) +
                 (" ..." if len(t["keep_float"]) > 4 else "") or "—", fmt(t["top1"]), f"{t['drop_points']:+.2f}",
                 f"{t['speedup']:.2f}x"] for t in report["tries"]]
        lines += ["  " + line for line in plain_table(["try", "float", "kept in float (latest)", "top-1 %", "drop",
                                                       "speed-up"], rows, {2}).splitlines()]
        best = report["tries"][report["chosen"]]
        said = "fits" if report["met"] else f"is the least drop: no try reached {report['max_drop']:g} points"
        lines.append(f"{report['id']} is try {best['try']} ({len(best['keep_float'])} layer(s) in float): drop "
                     f"{best['drop_points']:+.2f} points, {best['speedup']:.2f}x float's speed; it {said}")
    return lines
