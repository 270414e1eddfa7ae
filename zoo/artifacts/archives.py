"""Safe unpacking of verified tar archives (PaddleClas inference tars, TF-slim and ONNX tgz).

Every member is checked before anything is written: no absolute paths, no '..', no links that
point outside the target, no device files or FIFOs, and the total unpacked size is capped.
Python's own 'data' filter then runs as a second line of defence. The tree is unpacked into a
temporary directory beside the target and renamed into place, so a reader never sees half of it.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from zoo import settings
from zoo.artifacts import cache
from zoo.errors import IntegrityError, UnsafeArchiveError


def _inside(name: str) -> bool:
    """Whether a relative POSIX path stays inside the directory it is resolved against."""
    normal = posixpath.normpath(name)
    return not (name.startswith("/") or normal == ".." or normal.startswith("../") or "\x00" in name)


def check_members(members: list[tarfile.TarInfo], archive: str, max_bytes: int) -> None:
    total = 0
    for m in members:
        where = f"{archive}: member {m.name!r}"
        if m.name.startswith(("/", "\\")) or (len(m.name) > 1 and m.name[1] == ":"):
            raise UnsafeArchiveError(f"{where} has an absolute path")
        if ".." in m.name.replace("\\", "/").split("/") or not _inside(m.name):
            raise UnsafeArchiveError(f"{where} climbs out of the target with '..'")
        if m.ischr() or m.isblk() or m.isfifo() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise UnsafeArchiveError(f"{where} is a device file or FIFO")
        if m.issym() and not _inside(posixpath.join(posixpath.dirname(m.name), m.linkname)):
            raise UnsafeArchiveError(f"{where} is a symlink pointing outside the target ({m.linkname!r})")
        if m.islnk() and not _inside(m.linkname):
            raise UnsafeArchiveError(f"{where} is a hard link pointing outside the target ({m.linkname!r})")
        total += max(m.size, 0)
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive} unpacks to more than {max_bytes} bytes",
                                     "Raise ZOO_MAX_UNPACK_BYTES if the archive is genuinely that large")


def unpack(archive: Path, target: Path, max_bytes: int) -> Path:
    """Unpack a tar (any compression) into target, atomically; returns target."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                check_members(members, archive.name, max_bytes)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UnsafeArchiveError(f"{archive.name} is not a readable tar archive ({exc})") from None
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # else another process finished the same tree first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def member_path(root: Path, member: str) -> Path:
    """The path of a member inside an unpacked tree; it must be a regular file within root."""
    path = (root / member).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():

        raise IntegrityError(f"{member!r} is not a file in the unpacked archive {root}",
                             "The card's `member` does not match the archive; report the card")
    return path


def unpack_cached(blob: Path) -> Path:
    """The unpacked tree of a verified archive in the cache (cache/sha256/<sha>/<file> -> cache/unpacked/<sha>/).

    The step after verification: only bytes that passed their hash ever get here."""
    from filelock import FileLock

    sha = Path(blob).parent.name  # cache.blob_path files verified bytes under their sha256
    with FileLock(str(cache.lock_path(f"unpack-{sha}"))):
        return unpack(Path(blob), cache.unpacked_dir(sha), settings.max_unpack_bytes())
