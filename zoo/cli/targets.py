"""`zoo target add|ls|rm|check`: boards reached over SSH, for `zoo bench --target`."""
from __future__ import annotations

from typing import Optional

import typer

from zoo.cli.app import sub_app
from zoo.cli.render import note, plain_table, print_json

target_app = sub_app("target", "Target boards reached over SSH, for `zoo bench --target` and `zoo eval --target`.")


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
    from zoo.measure import targets  # here, not at the top: `zoo list` never pays for ssh/subprocess

    target = targets.add(name, ssh, runtime=runtime, port=port, identity=identity, python=python)
    print_json(target) if as_json else typer.echo(f"added target {name} ({ssh}:{port}, {runtime}); "
                                                   f"try `zoo target check {name}`")


@target_app.command("ls")
def target_ls(as_json: bool = typer.Option(False, "--json", help="Print the targets as JSON.")):
    """List target boards."""
    from zoo.measure import targets  # here, not at the top: `zoo list` never pays for ssh/subprocess

    rows = targets.ls()
    if as_json:
        print_json(rows)
    elif rows:
        typer.echo(plain_table(["name", "ssh", "port", "runtime", "identity"],
                                [[t["name"], t["ssh"], t["port"], t["runtime"], t["identity"] or "—"] for t in rows],
                                left={0, 1, 3, 4}))
    else:
        note("no targets; add one with `zoo target add NAME --ssh USER@HOST --runtime onnxruntime`")


@target_app.command("rm")
def target_rm(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")):
    """Remove a target board."""
    from zoo.measure import targets  # here, not at the top: `zoo list` never pays for ssh/subprocess

    removed = targets.rm(name)
    print_json(removed) if as_json else typer.echo(f"removed target {name}")


@target_app.command("check")
def target_check(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")):
    """Log in to a target and find its runtime."""
    from zoo.measure import targets  # here, not at the top: `zoo list` never pays for ssh/subprocess

    info = targets.check(name)
    if as_json:
        print_json(info)
    else:
        typer.echo(f"{name}: reachable, {info['os']}; {info['runtime']} {info.get('runtime_version') or 'found'}"
                   + (f"; litert {info['litert_version']}" if info.get("litert_version") else ""))


