"""One URL into a part file: streamed, hashed as bytes arrive, resumed with Range, retried with backoff.

The retry loop is written here rather than delegated to urllib3's Retry because a retry must
resume from the bytes already on disk (Range + If-Range), which urllib3 cannot do mid-body.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from zoo import net, settings
from zoo.artifacts.cache import made_by_zoo
from zoo.artifacts.hashes import (
    CHUNK,
    BackgroundHasher,
    Expected,
    Hasher,
    hash_file_object,
)
from zoo.errors import DownloadError, IntegrityError

PROGRESS_EVERY_S = 0.1
MAX_REDIRECTS = 10


class _Retryable(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


class Skip(Exception):
    """This URL cannot serve the file (404, not in the mirror directory): try the next one."""


def emit(progress, event: dict) -> None:
    """Send a progress event to the caller's callback; without one, warnings still reach the user."""
    if progress is not None:
        progress(event)
    elif event["event"] == "warning":
        warnings.warn(event["message"], stacklevel=3)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _resume_from(part: Path, meta_path: Path, url: str, sha_known: bool) -> tuple[int, str | None]:
    """(offset, If-Range validator): resume only the same URL, and only when a changed file cannot slip in."""
    try:
        meta = json.loads(meta_path.read_text())
        size = part.stat().st_size
    except (OSError, ValueError):
        return 0, None
    etag = meta.get("etag")
    validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
    if meta.get("url") != url or size == 0 or not (validator or sha_known):
        return 0, None
    return size, validator


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(start, end, total or None for '*') of "bytes 100-199/200"; None when it is not that shape."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (value or "").strip())
    if not match:
        return None
    start, end, total = match.groups()
    return int(start), int(end), None if total == "*" else int(total)


class Download:
    """Reads one URL into the part file, hashing as bytes arrive; resumes with Range when it can."""

    def __init__(self, url, part: Path, meta: Path, expect: Expected, label: dict, progress, public_only: bool = False):
        """public_only: the URL may reach only public addresses, also after redirects (zoo.net): a card URL that
        a registry added without --allow-local published."""
        self.url, self.part, self.meta, self.expect, self.label, self.progress = url, part, meta, expect, label, progress
        self.public_only = public_only

    def hasher(self) -> Hasher:
        return Hasher(tuple(self.expect.other))

    def run(self) -> Hasher:
        if self.url.startswith("file://"):
            return self._copy_local(Path(urllib.request.url2pathname(urlsplit(self.url).path)))
        attempts, backoff = settings.retries(), settings.backoff_s()
        failures, kept = 0, self._kept()
        with net.session(public_only=self.public_only) as session:  # trust_env: HTTP(S)_PROXY, NO_PROXY, CA bundle
            session.max_redirects = MAX_REDIRECTS
            while True:
                try:
                    return self._attempt(session)
                except _Retryable as exc:
                    # An attempt that left more bytes on disk than ever before is progress, not a failure:
                    # resume at once. A server that restarts from 0 each time makes no progress and runs out.
                    progressed, kept = self._kept() > kept, max(kept, self._kept())
                    failures += not progressed
                    if failures == attempts:
                        raise DownloadError(f"{self.url}: {exc} (gave up after {attempts} attempts)") from None
                    wait = 0.0 if progressed else min(exc.wait if exc.wait is not None
                                                      else backoff * 2 ** (failures - 1), settings.max_wait_s())
                    emit(self.progress, {"event": "retry", **self.label, "url": self.url, "reason": str(exc),
                                          "attempt": failures, "wait_s": round(wait, 3)})
                    time.sleep(wait)

    def _kept(self) -> int:
        """Bytes of this URL's partial file that a resume would keep."""
        return _resume_from(self.part, self.meta, self.url, self.expect.sha256 is not None)[0]

    def _attempt(self, session) -> Hasher:
        import requests

        offset, validator = _resume_from(self.part, self.meta, self.url, self.expect.sha256 is not None)
        headers = {"Accept-Encoding": "identity"}  # the hash is over the bytes as published, not re-encoded
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        timeout = settings.timeouts_s()  # read first: a bad setting is the user's error, not this URL's
        limit_s = net.header_deadline_s()
        try:
            with net.deadline(session, limit_s) as expired:  # a drip of header bytes beats every read timeout
                response = session.get(self.url, headers=headers, stream=True, timeout=timeout)
        except requests.TooManyRedirects:
            raise Skip(f"{self.url}: more than {session.max_redirects} redirects") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            if refused := net.refusal(exc):
                raise Skip(f"{self.url}: {refused}") from None
            if expired.is_set():
                raise Skip(f"{self.url}: no complete answer (status line and headers) within {limit_s:g} s") from None
            cause = type(getattr(exc.args[0], "reason", None) if exc.args else None).__name__
            if cause == "NameResolutionError":  # no such host (or no DNS at all): retrying will not help
                raise Skip(f"{self.url}: cannot resolve the host name") from None
            reason = cause if cause != "NoneType" else type(exc).__name__
            raise _Retryable(f"cannot connect ({reason})") from None
        except (requests.RequestException, ValueError) as exc:
            # A redirect to file://, ftp:// or a malformed Location (ValueError from urllib.parse): requests
            # has no adapter for it and follows nothing; this URL fails and the next one is tried.
            raise Skip(f"{self.url}: cannot follow it ({type(exc).__name__}: {exc})") from None
        if expired.is_set():  # cut off mid-headers, http.client may take what it had for a whole answer
            response.close()
            raise Skip(f"{self.url}: no complete answer (status line and headers) within {limit_s:g} s")
        with response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            if status == 416:  # our partial file is no prefix of what the server has: start over
                self.part.unlink(missing_ok=True)
                raise _Retryable("HTTP 416 for the resumed range; restarting", 0)
            if status not in (200, 206):
                raise Skip(f"{self.url}: HTTP {status}")
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if status == 206:
                total = self._checked_range(response.headers.get("Content-Range"), offset, length)
            else:
                offset = 0  # Range ignored, or the file changed (If-Range): start over cleanly
                total = length
            limit = self._limit()
            if total is not None and total > limit:
                raise self._too_big(limit, f"it announces {total} bytes")
            self.meta.parent.mkdir(parents=True, exist_ok=True)
            self.meta.write_text(json.dumps({"url": self.url, "etag": response.headers.get("ETag"),
                                             "last_modified": response.headers.get("Last-Modified")}))
            return self._write(response.raw, offset, total)

    def _checked_range(self, value: str | None, offset: int, length: int | None) -> int | None:
        """The file's total size from a 206's Content-Range, which must be exactly the rest of the file we
        asked for; a server that lies about it (the whole file as a range, a short or long body, another
        total) loses the partial file: nothing assembled from it can be trusted, let alone pinned."""
        parsed = _content_range(value)
        ok = parsed is not None
        if ok:
            start, end, total = parsed
            ok = (start == offset and end >= start and (total is None or end == total - 1)
                  and (length is None or length == end - start + 1)
                  and (self.expect.size is None or end + 1 == self.expect.size))
        if not ok:
            self._discard()
            raise _Retryable(f"server answered the resumed request with a wrong range (Content-Range {value!r}, "
                             f"Content-Length {length}, asked from byte {offset}); starting over", 0)
        return end + 1

    def _discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)

    def _limit(self) -> int:
        """Most bytes this file may have: the card's size, else ZOO_MAX_TOFU_BYTES (never fill the disk)."""
        return self.expect.size if self.expect.size is not None else settings.max_tofu_bytes()

    def _too_big(self, limit: int, detail: str) -> IntegrityError:
        if self.expect.size is not None:
            return IntegrityError(f"size mismatch for {self.label['file']} from {self.url}: more than the "
                                  f"{limit} bytes the card states ({detail}); the file was removed",
                                  "Try another --mirror or report the card")
        return IntegrityError(f"{self.label['file']} from {self.url} is larger than {settings.ENV_MAX_TOFU}="
                              f"{limit} bytes ({detail}) and its card states no size; the file was removed",
                              f"Raise {settings.ENV_MAX_TOFU} if the file really is that big, or report the card")

    def _write(self, raw, offset: int, total: int | None) -> Hasher:
        import urllib3

        hasher = self.hasher()
        if offset:
            with open(self.part, "rb") as f:
                hash_file_object(f, hasher, limit=offset)
        emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": total, "offset": offset})
        last, done = 0.0, offset
        limit, floor = self._limit(), net.RateFloor(self.url, done)
        with open(self.part, "r+b" if offset else "wb") as f, BackgroundHasher(hasher) as background:
            f.seek(offset)
            f.truncate()
            try:
                # read1: whatever has arrived, so that the rate check below runs even on a trickle.
                while chunk := raw.read1(CHUNK, decode_content=False):
                    done += len(chunk)
                    if done > limit:  # never fill the disk
                        raise self._too_big(limit, f"{done} bytes received")
                    if total is not None and done > total:
                        self._discard()
                        raise _Retryable(f"server sent more than the {total} bytes it announced; starting over", 0)
                    f.write(chunk)
                    background.update(chunk)
                    now = time.monotonic()
                    if now - last > PROGRESS_EVERY_S:
                        last = now
                        emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
                    try:
                        floor.check(done)
                    except net.TooSlow as slow:
                        raise Skip(str(slow)) from None
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
                raise _Retryable(f"connection lost after {done} bytes ({type(exc).__name__})") from None
        if total is not None and done != total:
            raise _Retryable(f"connection lost after {done} of {total} bytes")
        emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
        return hasher

    def _linked(self, source: Path) -> bool:
        """Hard-link a file zoo made under ZOO_HOME (a derived card's converted or quantized model) as the partial
        download instead of copying it: zoo replaces those files whole, never in place, so the link keeps the bytes
        it was hashed with. False where a link cannot be made (another file system): the caller copies."""
        if not made_by_zoo(source):
            return False
        try:
            self.part.unlink(missing_ok=True)
            os.link(source, self.part)
        except OSError:
            return False
        return True

    def _copy_local(self, source: Path) -> Hasher:
        if not source.is_file():
            raise Skip(f"{source}: not in the mirror directory")
        hasher = self.hasher()
        emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": source.stat().st_size,
                              "offset": 0})
        self.part.parent.mkdir(parents=True, exist_ok=True)
        if self._linked(source):  # a model zoo made: the cache shares its bytes, hashed as they were linked
            with open(self.part, "rb") as linked:
                while chunk := linked.read(CHUNK):
                    hasher.update(chunk)
        else:
            with open(source, "rb") as src, open(self.part, "wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    hasher.update(chunk)
        emit(self.progress, {"event": "progress", **self.label, "bytes": hasher.size, "total": hasher.size})
        return hasher
