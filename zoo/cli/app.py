"""The Typer app, its global options and the one-line error rule; command modules add their commands to it."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from zoo import settings
from zoo._version import __version__
from zoo.errors import ZooError

state: dict = {"registries": [], "debug": False}


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
                # One line whatever the message holds (a library's multi-line reason, a newline in a file name).
                text = "; ".join(line.strip() for line in error.one_line().splitlines() if line.strip())
                typer.echo(f"zoo: error: {text}", err=True)
                raise typer.Exit(error.exit_code) from None


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
