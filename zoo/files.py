"""Writing state files so that a reader never sees half of one: temporary file beside the target, then rename."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` through a uniquely named temporary file in the same directory, then rename.

    A unique temporary name (not `path.tmp`) lets two writers race without clobbering each other's
    half-written file; `mode` (e.g. 0o600) is set before any byte is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data, *, indent: int | None = 1, sort_keys: bool = True) -> Path:
    """JSON (UTF-8, trailing newline) written atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: Path, default=None):
    """A JSON file's value; `default` when the file is missing, unreadable or not JSON (callers that must
    tell those apart read the file themselves)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def output_file(path, option: str, *, default_name: str | None = None, suffixes: tuple[str, ...] = ()) -> Path:
    """`path` as a file zoo can create or replace, checked before any work is done: a folder (its
    `default_name` inside, or refused), a missing or unwritable folder, a name longer than the file
    system allows, or (given `suffixes`) a name with another suffix is one UsageError naming `option`, not a
    failure after the work."""
    from zoo.errors import UsageError

    path = Path(path).expanduser()
    if suffixes and not path.is_dir() and path.suffix.lower() not in suffixes:
        raise UsageError(f"{option} {path}: expected a {' or '.join(suffixes)} file name")
    try:
        if path.is_dir():
            if default_name is None:
                raise UsageError(f"{option} {path} is a folder", f"Give a file name, e.g. {path / 'plot.png'}")
            path = path / default_name
        parent = path.parent
        if not parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {parent} does not exist",
                             "Create it first, or give another path")
        if path.exists() and not path.is_file():
            raise UsageError(f"{option} {path} exists and is not a regular file", "Give another path")
        name_max, path_max = os.pathconf(parent, "PC_NAME_MAX"), os.pathconf(parent, "PC_PATH_MAX")
    except OSError as exc:  # ENAMETOOLONG from stat itself
        raise UsageError(f"{option} {str(path)[:60]!r}...: {exc.strerror}", "Give a shorter path") from None
    # Room for write_bytes_atomic's temporary name beside it (".NAME.XXXXXXXX.tmp").
    if len(os.fsencode(path.name)) + 14 > name_max or len(os.fsencode(path.absolute())) >= path_max:
        raise UsageError(f"{option}: the name {path.name[:40]!r}... is too long for the file system "
                         f"(at most {name_max - 14} bytes a name)", "Give a shorter name")
    try:  # the one sure test of writability (root ignores permission bits, a read-only mount does not)
        fd, probe = tempfile.mkstemp(prefix=".zoo-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {parent} ({exc.strerror})", "Give another path") from None
    return path
