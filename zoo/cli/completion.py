"""Shell completion: `zoo completion bash|zsh|fish` prints the script; while a shell asks, card ids and
target names complete too. Nothing here is imported by an ordinary command, so `zoo list` stays fast."""
from __future__ import annotations

from enum import Enum

import typer

from zoo.cli.app import app, state

# Parameters that take a card reference or a pattern, and those that take a target's name.
CARD_PARAMS = {"ref", "refs", "patterns", "pattern", "card"}
TARGET_COMMANDS = {"rm", "check"}  # `zoo target rm|check NAME`


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def _card_ids(ctx, param, incomplete: str) -> list[str]:
    from zoo.cards.registry import load_registry

    try:
        ids = load_registry(state["registries"]).ids()
    except Exception:  # a broken registry must not break the shell: complete nothing
        return []
    return [i for i in ids if i.startswith(incomplete) or i.split("/", 1)[-1].startswith(incomplete)]


def _target_names(ctx, param, incomplete: str) -> list[str]:
    from zoo.measure import targets

    try:
        return [t["name"] for t in targets.ls() if t["name"].startswith(incomplete)]
    except Exception:
        return []


def attach(command, path: tuple[str, ...] = ()) -> None:
    """Give the click command tree's card and target parameters their completers."""
    for param in getattr(command, "params", []):
        if param.name in CARD_PARAMS:
            param._custom_shell_complete = _card_ids
        elif param.name == "target" or (path[-2:-1] == ("target",) and path[-1] in TARGET_COMMANDS and param.name == "name"):
            param._custom_shell_complete = _target_names
    for name, sub in getattr(command, "commands", {}).items():
        attach(sub, path + (name,))


def prepared_command():
    """The click command with completers attached and the shells' classes registered."""
    import typer.main
    from typer._completion_classes import completion_init

    completion_init()
    command = typer.main.get_command(app)
    attach(command)
    return command


@app.command("completion")
def completion_(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")):
    """Print the shell completion script: commands, options, card ids and target names.

    bash: zoo completion bash > ~/.local/share/bash-completion/completions/zoo
    zsh:  zoo completion zsh > "${fpath[1]}/_zoo"
    fish: zoo completion fish > ~/.config/fish/completions/zoo.fish
    """
    from typer._click.shell_completion import get_completion_class

    from zoo import settings

    cls = get_completion_class(shell.value) if prepared_command() else None
    typer.echo(cls(None, {}, "zoo", settings.ENV_COMPLETE).source())
