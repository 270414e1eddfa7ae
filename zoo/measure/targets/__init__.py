"""Target boards: configuration (`zoo target add|ls|rm|check`), copying files to one, and running there.

Targets live in ZOO_HOME/targets.json. A model is copied to the board once, under
~/.cache/zoo/<sha256>/<file>, and reused while its sha256 matches; so is the runner (board_runner.py, with
machine.py beside it), which holds a model open on the board (zoo.measure.targets.session). An RDK BPU board is
timed with its own `hrt_model_exec` (hrt.py).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from zoo import settings
from zoo.errors import TargetError, UsageError
from zoo.files import write_json_atomic
from zoo.measure.targets.hrt import parse_perf, perf_command
from zoo.measure.targets.ssh import Ssh, quote

TARGET_RUNTIMES = ("onnxruntime", "rdk-bpu")
REMOTE_DIR = ".cache/zoo"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _load() -> dict:
    path = settings.targets_file()
    if not path.is_file():
        return {}
    try:
        targets = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TargetError(f"{path} is not valid JSON ({exc})", f"Fix or remove {path}") from None
    if not isinstance(targets, dict) or not all(
            isinstance(t, dict) and isinstance(t.get("ssh"), str) and t.get("runtime") in TARGET_RUNTIMES
            and isinstance(t.get("port"), int) for t in targets.values()):
        raise TargetError(f"{path} is not a targets file ({{NAME: {{ssh, port, runtime, ...}}}})",
                          f"Fix or remove {path}, then add the boards again with `zoo target add`")
    return targets


def _save(targets: dict) -> None:
    write_json_atomic(settings.targets_file(), targets)


def add(name: str, ssh: str, *, runtime: str, port: int = 22, identity: str | None = None,
        python: str = "python3", replace: bool = False) -> dict:
    """Record a board reachable as `ssh` (USER@HOST) that runs `runtime`."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"target name {name!r} may hold only letters, digits, '.', '_' and '-'")
    if runtime not in TARGET_RUNTIMES:
        raise UsageError(f"unknown target runtime {runtime!r}", f"Use one of: {', '.join(TARGET_RUNTIMES)}")
    if "@" not in ssh or ssh.startswith("@") or ssh.endswith("@") or " " in ssh:
        raise UsageError(f"--ssh {ssh!r} is not USER@HOST")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port")
    if identity and not Path(identity).expanduser().is_file():
        raise UsageError(f"--identity {identity}: no such file")
    targets = _load()
    if name in targets and not replace:
        raise UsageError(f"target {name!r} exists", "Remove it with `zoo target rm` first")
    targets[name] = {"name": name, "ssh": ssh, "port": port, "identity": identity, "runtime": runtime,
                     "python": python}
    _save(targets)
    return targets[name]


def ls() -> list[dict]:
    return [targets for _, targets in sorted(_load().items())]


def get(name: str) -> dict:
    targets = _load()
    if name not in targets:
        known = ", ".join(sorted(targets)) or "none yet"
        raise UsageError(f"no target named {name!r} (known: {known})", "Add one with `zoo target add`")
    return targets[name]


def rm(name: str) -> dict:
    targets = _load()
    target = get(name)
    del targets[name]
    _save(targets)
    return target


def transport(target: dict) -> Ssh:
    return Ssh(target["ssh"], port=target["port"], identity=target.get("identity"))


def check(name: str) -> dict:
    """Log in, and find the runtime the target was declared with; TargetError says what is missing."""
    target = get(name)
    ssh = transport(target)
    info = {"name": name, "reachable": True}
    uname = ssh.run("uname -srm").stdout.strip()
    info["os"] = uname
    if target["runtime"] == "onnxruntime":
        probe = ssh.run(f"{quote(target['python'])} -c 'import onnxruntime, numpy; print(onnxruntime.__version__)'",
                        check=False)
        if probe.returncode != 0:
            raise TargetError(f"{name}: {target['python']} on the board cannot import onnxruntime and numpy",
                              "Install them on the board (pip install onnxruntime numpy), or give --python")
        info["runtime_version"] = probe.stdout.strip()
        # LiteRT beside it runs a .tflite as it is (`zoo eval --target NAME --runtime litert`)
        litert = ssh.run(f"{quote(target['python'])} -c 'from importlib.metadata import version; "
                         "print(version(\"ai-edge-litert\"))'", check=False)
        info["litert_version"] = litert.stdout.strip() if litert.returncode == 0 else None
    else:
        probe = ssh.run("command -v hrt_model_exec", check=False)
        if probe.returncode != 0:
            raise TargetError(f"{name}: hrt_model_exec is not on the board's PATH",
                              "Install the RDK BPU tools (they ship with the board's system image)")
        info["runtime_version"] = None
    return {**target, **info}


def upload_once(ssh: Ssh, local: Path, sha256: str, remote_dir: str | None = None) -> str:
    """Copy a file to the board unless a copy with the same sha256 is there; returns its remote path."""
    remote_dir = remote_dir or f"{REMOTE_DIR}/{sha256}"
    remote = f"{remote_dir}/{local.name}"
    present = ssh.run(f"sha256sum {quote(remote)} 2>/dev/null", check=False).stdout.split()
    if present[:1] != [sha256]:
        ssh.run(f"mkdir -p {quote(remote_dir)}")
        ssh.put(local, remote)
        copied = ssh.run(f"sha256sum {quote(remote)}").stdout.split()
        if copied[:1] != [sha256]:
            raise TargetError(f"the copy of {local.name} on the board does not match its sha256",
                              "Check the board's disk space and retry")
    return remote


RUNNER_FILES = ("board_runner.py", "../machine.py")  # the runner and the stdlib-only module it imports


def upload_runner(ssh: Ssh) -> str:
    """Copy the runner and machine.py into one directory keyed by both files' bytes (one check when they are
    there already); returns the runner's remote path."""
    files = [(Path(__file__).parent / name).resolve() for name in RUNNER_FILES]
    blobs = [f.read_bytes() for f in files]
    remote_dir = f"{REMOTE_DIR}/runner-{hashlib.sha256(b''.join(blobs)).hexdigest()}"
    remotes = [f"{remote_dir}/{f.name}" for f in files]
    present = ssh.run(f"sha256sum {' '.join(map(quote, remotes))} 2>/dev/null", check=False).stdout.split()
    if present[0::2] != [hashlib.sha256(b).hexdigest() for b in blobs]:
        for f, blob in zip(files, blobs):
            upload_once(ssh, f, hashlib.sha256(blob).hexdigest(), remote_dir)
    return remotes[0]


def runner_command(target: dict, remote_runner: str, *args: str) -> str:
    return " ".join([quote(target["python"]), quote(remote_runner), *map(quote, args)])


def board_conditions(target: dict) -> dict | None:
    """The board's load, clocks (each CPU's, with its governor) and temperatures now, read there by the runner
    (zoo.measure.machine.conditions); None when the board cannot run it (no Python there)."""
    ssh = transport(target)
    proc = ssh.run(runner_command(target, upload_runner(ssh), "--conditions"), check=False)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])["conditions"]
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def run_hrt(target: dict, model: Path, sha256: str, *, threads: int, frames: int) -> dict:
    """Run `hrt_model_exec perf` on an RDK board; returns the parsed figures."""
    ssh = transport(target)
    remote_model = upload_once(ssh, model, sha256)
    proc = ssh.run(perf_command(remote_model, threads, frames), check=False)
    if proc.returncode == 127:
        raise TargetError(f"{target['name']}: hrt_model_exec is not on the board's PATH",
                          "Install the RDK BPU tools (they ship with the board's system image)")
    parsed = parse_perf(proc.stdout + "\n" + proc.stderr)
    uname = ssh.run("uname -srm", check=False).stdout.strip()
    return {**parsed, "machine": {"os": uname}}
