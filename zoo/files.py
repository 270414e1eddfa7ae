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
