"""Writing files so that a reader never sees half of one (temporary file beside the target, then rename), and
write failures (a full disk, a file-size limit, a read-only place) as one StorageError naming the path."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

# Errors that say where a file was to go cannot take it, not that zoo is wrong: one line naming the path.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM,
                  errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR}
SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def storage_error(exc: OSError, path, what: str = "write"):
    """A StorageError for an OSError met while writing (or reading) `path`: what, where, why, and the fix."""
    from zoo.errors import StorageError

    why = exc.strerror or type(exc).__name__
    if exc.errno in SPACE_ERRNOS:
        hint = "Free space there (or raise the file-size limit, `ulimit -f`), then run the command again"
    else:
        hint = "Check that place (permissions, a read-only mount), or set ZOO_HOME elsewhere, then run it again"
    return StorageError(f"cannot {what} {path}: {why}", hint)


def is_storage_error(exc: BaseException) -> bool:
    from zoo.errors import ZooError

    return isinstance(exc, OSError) and not isinstance(exc, ZooError) and exc.errno in STORAGE_ERRNOS


def umask() -> int:
    """This process's umask, read without changing it where Linux shows it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` through a uniquely named temporary file in the same directory, then rename.

    A unique temporary name (not `path.tmp`) lets two writers race without clobbering each other's
    half-written file. The file gets `mode` (e.g. 0o600 for a secret), by default what open() would give it
    (0666 less the umask; a temporary file alone would be 0600), set before any byte is written. A write that
    fails (full disk, file-size limit, read-only) leaves nothing behind and is one StorageError naming `path`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if is_storage_error(exc):
            raise storage_error(exc, path) from None
        raise
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data, *, indent: int | None = 1, sort_keys: bool = True) -> Path:
    """JSON (UTF-8, trailing newline) written atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def check_regular(fd_or_path, limit: int, what: str) -> int:
    """The size of a regular file of at most `limit` bytes; ValueError naming what it is otherwise (a device such
    as /dev/zero, a FIFO, a directory, or a file larger than `limit`). Checked before anything is read."""
    status = os.fstat(fd_or_path) if isinstance(fd_or_path, int) else os.stat(fd_or_path)
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
        raise ValueError(f"{what} is {kind}, not a regular file")
    if status.st_size > limit:
        raise ValueError(f"{what} is {status.st_size} bytes, more than the {limit} zoo reads of it")
    return status.st_size


def read_limited(path, limit: int, what: str | None = None) -> bytes:
    """A regular file's bytes, refused (ValueError naming it) before reading when it is not a regular file or holds
    more than `limit` bytes; never more than limit + 1 bytes read, should it grow meanwhile. Opened without
    blocking, so a FIFO is refused rather than waited on. OSError when it cannot be opened."""
    what = what or str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        check_regular(fd, limit, what)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} grew past {limit} bytes while it was read")
    return data


# The largest MobileNetV2 file (float ONNX at width 1.4) is 25 MB: a model file past this is refused unread.
MAX_MODEL_BYTES = 512 * 2**20


def check_model_file(path) -> None:
    """A model file a runtime or a counter may open: a regular file of at most MAX_MODEL_BYTES (a FIFO, a device
    or a 3 GiB file named .onnx is refused before anything reads it); UsageError otherwise."""
    from zoo.errors import UsageError

    try:
        check_regular(path, MAX_MODEL_BYTES, f"model file {path}")
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc) if isinstance(exc, ValueError) else f"model file {path}: {exc.strerror}",
                         "Give a .onnx or .tflite model file") from None


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
