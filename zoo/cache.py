"""The content-addressed cache under ZOO_HOME, the trust-on-first-use pins, and `zoo cache ls|verify|rm|prune`.

Layout (all under settings.cache_dir(), i.e. ZOO_HOME/cache):

    sha256/<sha256>/<file>     verified bytes; the directory is named by their sha256, the file keeps
                               its published name because some runtimes and humans look at the suffix
    unpacked/<sha256>/         an archive's safely unpacked tree (made only after the archive verified)
    partial/<key>.part         a download in progress; <key>.json beside it holds the URL, ETag and
                               Last-Modified that make a Range resume safe
    locks/<key>.lock           one file lock per artifact, so concurrent fetches download once

The pins file (ZOO_HOME/pins.lock.json) records the sha256 seen on first download of every artifact
whose card carries no full sha256; later downloads must match it.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from pathlib import Path

from . import settings

CHUNK = 1 << 20
PINS_FORMAT = 1


# ---------------------------------------------------------------- hashing

class Hasher:
    """Several digests of one byte stream, fed as it arrives."""

    def __init__(self, algos=("sha256",)):
        self._digests = {algo: hashlib.new(algo) for algo in dict.fromkeys(("sha256", *algos))}
        self.size = 0

    def update(self, data: bytes) -> None:
        self.size += len(data)
        for digest in self._digests.values():
            digest.update(data)

    def hexdigest(self, algo: str = "sha256") -> str:
        return self._digests[algo].hexdigest()


class BackgroundHasher:
    """Feeds a Hasher on a second thread, so hashing overlaps with receiving and writing.

    hashlib releases the GIL on large buffers, so on two cores this hides most of the hash's cost
    (the difference between ~0.6 and ~1.0 of curl's throughput on loopback).
    """

    def __init__(self, hasher: Hasher, depth: int = 32):
        self.hasher, self._queue = hasher, queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def __enter__(self) -> BackgroundHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._queue.put(None)
        self._thread.join()


def hash_file_object(f, hasher: Hasher, limit: int | None = None) -> Hasher:
    """Feed an open binary file to hasher, up to limit bytes (all of it when None)."""
    left = float("inf") if limit is None else limit
    while left > 0 and (chunk := f.read(int(min(CHUNK, left)))):
        hasher.update(chunk)
        left -= len(chunk)
    return hasher


def hash_file(path: Path, hasher: Hasher | None = None) -> Hasher:
    with open(path, "rb") as f:
        return hash_file_object(f, hasher or Hasher())


def file_sha256(path: Path) -> str:
    return hash_file(path).hexdigest()


# ---------------------------------------------------------------- layout

def blob_path(sha256: str, file: str) -> Path:
    return settings.cache_dir() / "sha256" / sha256 / file


def unpacked_dir(sha256: str) -> Path:
    return settings.cache_dir() / "unpacked" / sha256


def partial_paths(key: str) -> tuple[Path, Path]:
    """(part file, its resume metadata) for an artifact key."""
    base = settings.cache_dir() / "partial"
    return base / f"{key}.part", base / f"{key}.json"


def lock_path(key: str) -> Path:
    return settings.cache_dir() / "locks" / f"{key}.lock"


def artifact_key(card_id: str, file: str) -> str:
    """A stable, file-system-safe name for one card's artifact."""
    return hashlib.sha256(f"{card_id}/{file}".encode()).hexdigest()[:32]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(part: Path, sha256: str, file: str) -> Path:
    """Move verified bytes into the cache atomically: fsync, rename, fsync the directory."""
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    target = blob_path(sha256, file)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
    fsync_dir(target.parent)
    return target


def remove_blob(sha256: str) -> None:
    shutil.rmtree(settings.cache_dir() / "sha256" / sha256, ignore_errors=True)
    shutil.rmtree(unpacked_dir(sha256), ignore_errors=True)


def blobs() -> list[tuple[str, Path]]:
    """(sha256, path) of every cached file."""
    root = settings.cache_dir() / "sha256"
    if not root.is_dir():
        return []
    return [(d.name, f) for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]


# ---------------------------------------------------------------- pins (trust on first use)

def pin_key(card_id: str, file: str) -> str:
    return f"{card_id}/{file}"


def read_pins() -> dict:
    path = settings.pins_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        from .errors import IntegrityError

        raise IntegrityError(f"pins file {path} is not readable JSON ({exc})",
                             "Fix or delete it; deleting it forgets every pinned sha256") from None
    return data.get("pins", {}) if isinstance(data, dict) else {}


def pin(card_id: str, file: str, sha256: str, size: int, url: str) -> None:
    """Record the sha256 of a first download; an existing pin is never overwritten."""
    from filelock import FileLock

    path = settings.pins_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        pins = read_pins()
        pins.setdefault(pin_key(card_id, file), {"sha256": sha256, "size": size, "url": url,
                                                  "pinned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"format": PINS_FORMAT, "pins": pins}, indent=1, sort_keys=True) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)


def known_sha256(card_id: str, artifact: dict, pins: dict | None = None) -> tuple[str | None, str | None]:
    """(sha256, where from: 'sha256' on the card or 'pin') for an artifact; (None, None) when unknown."""
    if artifact.get("sha256"):
        return artifact["sha256"], "sha256"
    pinned = (read_pins() if pins is None else pins).get(pin_key(card_id, artifact["file"]))
    if pinned:
        return pinned["sha256"], "pin"
    return None, None


# ---------------------------------------------------------------- zoo cache ls | verify | rm | prune

def _users(registries) -> dict[str, list[str]]:
    """sha256 -> ids of the cards whose artifacts are those bytes (by card sha256 or pin)."""
    from .registry import load_registry

    pins, users = read_pins(), {}
    for entry in load_registry(registries).entries():
        for artifact in entry.card.get("artifacts", []):
            sha, _ = known_sha256(entry.id, artifact, pins)
            if sha:
                users.setdefault(sha, []).append(entry.id)
    return users


def ls(registries=None) -> list[dict]:
    """Every cached file: sha256, file, path, size, the cards that use it, and whether it is unpacked."""
    users = _users(registries)
    return [{"sha256": sha, "file": path.name, "path": str(path), "size": path.stat().st_size,
             "cards": sorted(set(users.get(sha, []))), "unpacked": unpacked_dir(sha).is_dir()}
            for sha, path in blobs()]


def verify() -> list[dict]:
    """Re-hash every cached file; remove the corrupt ones (and their unpacked trees)."""
    report = []
    for sha, path in blobs():
        actual = hash_file(path).hexdigest()
        ok = actual == sha
        if not ok:
            remove_blob(sha)
        report.append({"sha256": sha, "file": path.name, "path": str(path), "ok": ok,
                       "actual": actual, "removed": not ok})
    return report


def rm(targets: list[str], registries=None) -> list[dict]:
    """Remove cached files by sha256 (or a prefix of at least 6 hex digits) or by card reference."""
    from .errors import UsageError

    cached = blobs()
    removed: dict[str, Path] = {}
    for target in targets:
        t = target.lower()
        if len(t) >= 6 and all(c in "0123456789abcdef" for c in t):
            hits = [(s, p) for s, p in cached if s.startswith(t)]
        else:
            from .registry import load_registry

            entry, _ = load_registry(registries).resolve(target)
            pins = read_pins()
            shas = {known_sha256(entry.id, a, pins)[0] for a in entry.card.get("artifacts", [])}
            hits = [(s, p) for s, p in cached if s in shas]
        if not hits:
            raise UsageError(f"nothing in the cache matches {target!r}", "Run `zoo cache ls` to see what is cached")
        removed.update(hits)
    out = [{"sha256": s, "file": p.name, "path": str(p), "size": p.stat().st_size} for s, p in removed.items()]
    for sha in removed:
        remove_blob(sha)
    return out


def prune(registries=None) -> list[dict]:
    """Remove partial downloads, orphaned unpacked trees, and cached files no card uses."""
    root = settings.cache_dir()
    users, out = _users(registries), []
    for sha, path in blobs():
        if sha not in users:
            out.append({"kind": "unused", "path": str(path), "size": path.stat().st_size})
            remove_blob(sha)
    for directory in sorted((root / "unpacked").glob("*")):
        if not (root / "sha256" / directory.name).is_dir():
            out.append({"kind": "orphaned-unpacked", "path": str(directory), "size": None})
            shutil.rmtree(directory, ignore_errors=True)
    from filelock import FileLock, Timeout

    for part in sorted((root / "partial").glob("*.part")):
        try:  # a partial file whose lock is held belongs to a download in progress
            with FileLock(str(lock_path(part.stem)), timeout=0):
                out.append({"kind": "partial", "path": str(part), "size": part.stat().st_size})
                part.unlink(missing_ok=True)
                part.with_suffix(".json").unlink(missing_ok=True)
        except Timeout:
            continue
    return out
