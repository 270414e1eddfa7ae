"""Safe unpacking of verified tar archives (PaddleClas inference tars, TF-slim and ONNX tgz).

Model archives need nothing but regular files and directories, so that is all this writes:
links, devices, FIFOs and every other member type are refused, as are names that are absolute,
climb with '..', or carry NUL, backslashes or drive letters, and duplicate names.

tarfile is used only to *parse* the archive, never to extract it (no extract/extractall, no
filters): every directory is created here and opened with O_NOFOLLOW relative to its parent's
fd, and every file is created with O_EXCL|O_NOFOLLOW relative to its directory's fd. Since no
link is ever created and none is ever followed, symlink-chain tricks such as CVE-2025-4517 have
nothing to work with.

The archive is read as a stream and decompressed here, on demand and counted, so a bomb costs
at most the unpacked-size cap (plus a bounded allowance for tar headers) before it is refused.
The tree is built in a temporary directory beside the target and renamed into place, so a
reader never sees half of it. Each member's sha256 is recorded as it is written, in the tree's
cache.MEMBERS_FILE, so a member changed later is caught (cache.tree_problem) before it is used.
"""
from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from zoo import settings
from zoo.artifacts import cache
from zoo.errors import IntegrityError, UnsafeArchiveError

MAX_MEMBERS = 10_000
MAX_NAME = 1024                  # characters in a member name; keeps paths far below PATH_MAX
MAX_HEADER_BYTES = 32 * 2**20    # headers, long-name/pax records and padding of MAX_MEMBERS members
CHUNK = 2**20
SIZE_HINT = "Raise ZOO_MAX_UNPACK_BYTES if the archive is genuinely that large"

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DRIVE = re.compile(r"[A-Za-z]:")


class _Unreadable(Exception):
    """The archive's bytes could not be read or decompressed (kept apart from write errors)."""


def unpack(archive: Path, target: Path, max_bytes: int) -> Path:
    """Unpack a tar (plain, gz, bz2 or xz) into target, atomically; returns target."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))  # 0o700: private while filling
    try:
        _extract(archive, tmp, max_bytes)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # else another process finished the same tree first
                raise
    except OSError as exc:  # a write error (read errors are _Unreadable): a full disk, a file-size limit
        from zoo.files import is_storage_error, storage_error

        if not is_storage_error(exc):
            raise
        raise storage_error(exc, target, "unpack into") from None
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

    The step after verification: only bytes that passed their hash ever get here. An existing tree is
    used only if every member still has the sha256 recorded when it was unpacked; else it is unpacked again."""
    from filelock import FileLock

    sha = Path(blob).parent.name  # cache.blob_path files verified bytes under their sha256
    target = cache.unpacked_dir(sha)
    with FileLock(str(cache.lock_path(f"unpack-{sha}"))):
        if target.is_dir() and cache.tree_problem(target):  # a member changed since it was unpacked
            shutil.rmtree(target)
        return unpack(Path(blob), target, settings.max_unpack_bytes())


def _extract(archive: Path, root: Path, max_bytes: int) -> None:
    name = archive.name
    too_big = UnsafeArchiveError(f"{name} unpacks to more than {max_bytes} bytes", SIZE_HINT)
    root_fd = os.open(root, DIR_FLAGS)
    try:
        try:
            raw = open(archive, "rb")
            decompressed = _decompressor(raw)
        except OSError as exc:
            raise _Unreadable(_reason(exc)) from None
        with raw:
            stream = _Counted(decompressed, max_bytes + MAX_HEADER_BYTES, too_big)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                seen: set[str] = set()
                written, hashes = 0, {}
                for count, info in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise UnsafeArchiveError(f"{name} has more than {MAX_MEMBERS} members")
                    where = f"{name}: member {_show(info.name)}"
                    parts = _parts(info.name, where)
                    if not parts:
                        if info.isdir():
                            continue  # "./": the root itself
                        raise UnsafeArchiveError(f"{where} has an empty name")
                    key = "/".join(parts)
                    if key in seen:
                        raise UnsafeArchiveError(f"{where} appears more than once")
                    if key == cache.MEMBERS_FILE:
                        raise UnsafeArchiveError(f"{where} uses the name zoo keeps its member hashes under")
                    seen.add(key)
                    if info.isdir():
                        os.close(_open_dir(root_fd, parts, where))
                    elif info.isreg() and info.sparse is None:
                        if written + info.size > max_bytes:  # refuse on the header, before reading data
                            raise too_big
                        size, hashes[key] = _write_file(tar.extractfile(info), root_fd, parts, where,
                                                        max_bytes - written, too_big)
                        written += size
                    else:
                        raise UnsafeArchiveError(
                            f"{where} is {_kind(info)}; only regular files and directories are allowed")
        record = json.dumps({"format": 1, "members": hashes}, indent=1, sort_keys=True).encode()
        fd = os.open(cache.MEMBERS_FILE, FILE_FLAGS, 0o644, dir_fd=root_fd)
        with open(fd, "wb", closefd=True) as out:
            out.write(record)
    except (_Unreadable, tarfile.TarError, EOFError) as exc:
        # Read-side OSErrors arrive here as _Unreadable; a raw OSError is a write error under
        # root (disk full, permissions), which is not the archive's fault and propagates as is.
        raise UnsafeArchiveError(f"{name} is not a readable tar archive ({_reason(exc)})") from None
    finally:
        os.close(root_fd)


def _decompressor(raw):
    """Decompress by magic number, as tarfile's 'r|*' would, but under our own byte count."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


class _Counted:
    """The decompressed tar stream; refuses to yield more than limit bytes in all."""

    def __init__(self, stream, limit: int, too_big: Exception):
        self.stream, self.limit, self.too_big, self.count = stream, limit, too_big, 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.limit - self.count + 1
        try:
            data = self.stream.read(size)
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            raise _Unreadable(_reason(exc)) from None
        self.count += len(data)
        if self.count > self.limit:
            raise self.too_big
        return data


def _parts(name: str, where: str) -> list[str]:
    """The member name as path components ([] for the root itself), or UnsafeArchiveError."""
    if len(name) > MAX_NAME:
        raise UnsafeArchiveError(f"{where} has a name longer than {MAX_NAME} characters")
    if "\x00" in name:
        raise UnsafeArchiveError(f"{where} has a NUL byte in its name")
    if "\\" in name:
        raise UnsafeArchiveError(f"{where} has a backslash in its name")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeArchiveError(f"{where} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{where} climbs out of the target with '..'")
    if any(len(os.fsencode(p)) > 255 for p in parts):
        raise UnsafeArchiveError(f"{where} has a path component longer than 255 bytes")
    return parts


def _open_dir(root_fd: int, parts: list[str], where: str) -> int:
    """An fd of root/parts..., creating each directory (0o755 less umask) and following no link."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass  # made for an earlier member; the O_NOFOLLOW open below checks what it is
            try:
                sub = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file (or, never made by us, a link)
                    raise UnsafeArchiveError(f"{where} clashes with an earlier member") from None
                raise
            os.close(fd)
            fd = sub
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_file(src, root_fd: int, parts: list[str], where: str, budget: int, too_big) -> tuple[int, str]:
    """Copy one member into a new file (0o644 less umask); returns (bytes written, their sha256)."""
    parent = _open_dir(root_fd, parts[:-1], where)
    try:
        fd = os.open(parts[-1], FILE_FLAGS, 0o644, dir_fd=parent)
    except FileExistsError:  # e.g. 'A' and 'a' on a case-insensitive file system
        raise UnsafeArchiveError(f"{where} clashes with an earlier member") from None
    finally:
        os.close(parent)
    written, digest = 0, hashlib.sha256()
    with open(fd, "wb", closefd=True) as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > budget:  # the header lied or padded; stop at the cap regardless
                raise too_big
            out.write(chunk)
            digest.update(chunk)
    return written, digest.hexdigest()


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"a symbolic link (to {_show(info.linkname)})"
    if info.islnk():
        return f"a hard link (to {_show(info.linkname)})"
    if info.ischr():
        return "a character device"
    if info.isblk():
        return "a block device"
    if info.isfifo():
        return "a FIFO"
    if info.sparse is not None:
        return "a sparse file"
    return f"of unsupported type {info.type!r}"


def _show(text: str, limit: int = 120) -> str:
    """A name for a one-line message: repr (escapes newlines), shortened."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
