"""The Typer app, its global options and the one-line error rule; command modules add their commands to it."""
from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from zoo import settings
from zoo._version import __version__
from zoo.errors import StorageError, ZooError

state: dict = {"registries": [], "debug": False}


def one_line(error: ZooError) -> str:
    """The error as the one line the CLI prints, whatever its message holds (a library's multi-line reason, a
    newline in a file name)."""
    text = "; ".join(line.strip() for line in error.one_line().splitlines() if line.strip())
    return f"zoo: error: {text}"


class CheckedOutput:
    """stdout whose failed writes (a full disk, /dev/full, a file-size limit) are one StorageError naming where
    the output was going: a script must never get an empty file and exit 0. A closed pipe (`zoo list | head`)
    ends the command quietly, as for any Unix tool."""

    def __init__(self, stream):
        self._stream = stream
        self.broken = False

    def _failed(self, exc: OSError):
        self.broken = True
        if exc.errno == errno.EPIPE:
            raise SystemExit(141)  # 128 + SIGPIPE, what a shell reports for a reader that went away
        where = "stdout"
        try:
            where = f"{os.readlink(f'/proc/self/fd/{self._stream.fileno()}')} (stdout)"
        except (OSError, ValueError, AttributeError):
            pass
        raise StorageError(f"cannot write the output to {where}: {exc.strerror or exc}",
                           "Free space there, or send the output elsewhere") from None

    def discard_if_broken(self) -> None:
        """After a failed write, what is still buffered (and the interpreter's last flush) goes nowhere: the
        failure was reported once, as one line."""
        if self.broken:
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, self._stream.fileno())
                os.close(null)
            except (OSError, ValueError, AttributeError):
                pass

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


# Options whose value may be left out (`--ray` alone: a local instance or RAY_ADDRESS; `--ray ADDRESS`). Typer
# has no optional option values, so a bare one (last, or before another option) is given its empty value here.
OPTIONAL_VALUES = ("--ray",)


class _Group(typer.core.TyperGroup):
    """Turns a ZooError into one line on stderr and the error's exit code."""

    def parse_args(self, ctx, args):
        args = [f"{a}=" if a in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")) else a
                for i, a in enumerate(args)]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        from zoo.cli.render import escaped_output

        with escaped_output():  # card text never reaches the terminal raw (zoo.cli.render)
            try:
                return super().invoke(ctx)
            except ZooError as error:
                if state["debug"]:
                    raise
                typer.echo(one_line(error), err=True)
                raise typer.Exit(error.exit_code) from None
            except OSError as error:  # a write no zoo code expected to fail (a full disk): still one line
                from zoo.files import SPACE_ERRNOS, is_storage_error, storage_error

                if state["debug"] or not is_storage_error(error):
                    raise
                failed = storage_error(error, error.filename or "a file (--debug shows which)",
                                       "write" if error.errno in SPACE_ERRNOS else "use")
                typer.echo(one_line(failed), err=True)
                raise typer.Exit(failed.exit_code) from None


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Compare every published MobileNetV2 on one footing.")


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Python warnings (zoo's own, Pillow's DecompressionBombWarning, ...) as one `zoo: warning:` line on
    stderr, without the source file and line Python's default format prints."""
    text = " ".join(str(message).split())
    typer.echo(f"zoo: warning: {text}" if category is UserWarning else f"zoo: warning: {category.__name__}: {text}",
               err=True)


def _version(value: bool):
    if value:
        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    registry: Optional[List[Path]] = typer.Option(None, "--registry", metavar="DIR",
                                                   help="Add a directory of cards (repeatable; also ZOO_REGISTRY)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (also ZOO_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    state["registries"] = list(registry or [])
    state["debug"] = debug or settings.debug()
    if not state["debug"]:
        warnings.showwarning = _one_line_warning


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group (`zoo NAME ...`) added to the app."""
    group = typer.Typer(no_args_is_help=True, help=help)
    app.add_typer(group, name=name)
    return group
