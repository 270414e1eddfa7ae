"""Hashing bytes as they arrive, and checking them against everything a card (or a pin) promises."""
from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import IntegrityError

CHUNK = 1 << 20


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


@dataclass
class Expected:
    """What downloaded bytes must match."""

    sha256: str | None = None
    sha256_from: str | None = None      # 'sha256' (on the card) or 'pin' (pins file)
    prefix: str | None = None
    other: dict = field(default_factory=dict)
    size: int | None = None


def verify(hasher: Hasher, expect: Expected, file: str, url: str, pins_file: Path | None = None) -> str:
    """Check the bytes against everything the card (or pin) promises; returns what verified them
    (sha256 | pin | sha384 | sha1 | sha256-prefix | tofu)."""
    removed = "the file was removed"
    if expect.size is not None and hasher.size != expect.size:
        raise IntegrityError(f"size mismatch for {file} from {url}: expected {expect.size} bytes, "
                             f"got {hasher.size}; {removed}", "Try another --mirror or report the card")
    actual = hasher.hexdigest()
    if expect.sha256 and actual != expect.sha256:
        hint = ("Try another --mirror or report the card" if expect.sha256_from == "sha256" else
                f"The bytes changed since they were pinned in {pins_file}; if the change upstream "
                "is legitimate, delete that pin and fetch again")
        pinned = "" if expect.sha256_from == "sha256" else " (pinned on first use)"
        raise IntegrityError(f"checksum mismatch for {file} from {url}: expected sha256 {expect.sha256}{pinned}, "
                             f"got {actual}; {removed}", hint)
    for algo, value in expect.other.items():
        if hasher.hexdigest(algo) != value:
            raise IntegrityError(f"checksum mismatch for {file} from {url}: expected {algo} {value}, "
                                 f"got {hasher.hexdigest(algo)}; {removed}", "Try another --mirror or report the card")
    if expect.prefix and not actual.startswith(expect.prefix):
        raise IntegrityError(f"checksum mismatch for {file} from {url}: expected sha256 starting "
                             f"{expect.prefix}, got {actual}; {removed}", "Try another --mirror or report the card")
    if expect.sha256:
        return expect.sha256_from
    return next(iter(expect.other), None) or ("sha256-prefix" if expect.prefix else "tofu")
