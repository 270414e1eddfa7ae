"""The `zoo` command: parse options, call the library, render a table or JSON. No logic lives here.

One module per command group (cards, registry, artifacts, measure, targets, results), all adding to
the one Typer app in app.py; render.py holds tables, JSON and progress. Results go to stdout, notes
and errors to stderr. Every `--json` prints exactly what the library returned. Errors are one line
and an exit code; tracebacks only with --debug.
"""
from __future__ import annotations

import atexit
import gc
import sys

import typer

from zoo.cli import artifacts, cards, completion, measure, registry, results, targets  # noqa: F401  (they add their commands)
from zoo.cli.app import CheckedOutput, app, one_line
from zoo.errors import ZooError

__all__ = ["app", "main"]

# At exit the interpreter's last garbage collections walk every object that pandas and a 10,000-card table
# left behind (0.2-0.3 s of `zoo compare`), to free memory the process is about to give back anyway.
# Registered first, this runs after every other exit handler (Ray's shutdown, temporary files).
atexit.register(gc.freeze)


def main() -> None:
    """Entry point: click's usage errors become one line too (`zoo: error: ... Try 'zoo X --help'.`), and so does
    output that cannot be written (stdout on a full disk)."""
    from zoo.cli.render import escaped_output

    sys.stdout = output = CheckedOutput(sys.stdout)
    try:
        with escaped_output():  # click's own usage errors too: card text never reaches the terminal raw
            code = _run()
        sys.exit(code)
    finally:
        output.discard_if_broken()


def _run() -> int:
    from zoo import settings

    try:
        if settings.completing():  # a shell asking for completions: card ids and target names too
            from zoo.cli.completion import prepared_command

            prepared_command()(prog_name="zoo", complete_var=settings.ENV_COMPLETE)
        code = app(prog_name="zoo", standalone_mode=False)
        sys.stdout.flush()  # output still buffered fails here, not silently at exit
    except ZooError as error:  # raised outside a command (--version's output, the final flush)
        if settings.debug():
            raise
        typer.echo(one_line(error), err=True)
        return error.exit_code
    except Exception as exc:  # click's exception classes live in typer's vendored click: match by shape
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
            return 0
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            hint = f" Try '{ctx.command_path} --help'." if ctx is not None else ""
            typer.echo(f"zoo: error: {exc.format_message()}{hint}", err=True)
            return exc.exit_code
        if type(exc).__name__ == "Abort":
            typer.echo("zoo: aborted", err=True)
            return 130
        raise
    return code if isinstance(code, int) else 0
