"""One URL into a part file: streamed, hashed as bytes arrive, resumed with Range, retried with backoff.

The retry loop is written here rather than delegated to urllib3's Retry because a retry must
resume from the bytes already on disk (Range + If-Range), which urllib3 cannot do mid-body.
"""
from __future__ import annotations

import json
import time
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from zoo import settings
from zoo.artifacts.hashes import (
    CHUNK,
    BackgroundHasher,
    Expected,
    Hasher,
    hash_file_object,
)
from zoo.errors import DownloadError, IntegrityError

PROGRESS_EVERY_S = 0.1


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


def _content_range_start(value: str | None) -> int | None:
    try:  # "bytes 100-199/200"
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


class Download:
    """Reads one URL into the part file, hashing as bytes arrive; resumes with Range when it can."""

    def __init__(self, url, part: Path, meta: Path, expect: Expected, label: dict, progress):
        self.url, self.part, self.meta, self.expect, self.label, self.progress = url, part, meta, expect, label, progress

    def hasher(self) -> Hasher:
        return Hasher(tuple(self.expect.other))

    def run(self) -> Hasher:
        if self.url.startswith("file://"):
            return self._copy_local(Path(urllib.request.url2pathname(urlsplit(self.url).path)))
        import requests

        attempts, backoff = settings.retries(), settings.backoff_s()
        failures, kept = 0, self._kept()
        with requests.Session() as session:  # trust_env: HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE
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
        try:
            response = session.get(self.url, headers=headers, stream=True, timeout=settings.timeouts_s())
        except (requests.ConnectionError, requests.Timeout) as exc:
            cause = type(getattr(exc.args[0], "reason", None) if exc.args else None).__name__
            if cause == "NameResolutionError":  # no such host (or no DNS at all): retrying will not help
                raise Skip(f"{self.url}: cannot resolve the host name") from None
            reason = cause if cause != "NoneType" else type(exc).__name__
            raise _Retryable(f"cannot connect ({reason})") from None
        with response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            if status == 416:  # our partial file is no prefix of what the server has: start over
                self.part.unlink(missing_ok=True)
                raise _Retryable("HTTP 416 for the resumed range; restarting", 0)
            if status not in (200, 206):
                raise Skip(f"{self.url}: HTTP {status}")
            if status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
                self.part.unlink(missing_ok=True)
                raise _Retryable(f"server answered with the wrong range ({response.headers.get('Content-Range')})", 0)
            if status == 200:
                offset = 0  # Range ignored, or the file changed (If-Range): start over cleanly
            self.meta.parent.mkdir(parents=True, exist_ok=True)
            self.meta.write_text(json.dumps({"url": self.url, "etag": response.headers.get("ETag"),
                                             "last_modified": response.headers.get("Last-Modified")}))
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            return self._write(response.raw, offset, total)

    def _write(self, raw, offset: int, total: int | None) -> Hasher:
        import urllib3

        hasher = self.hasher()
        if offset:
            with open(self.part, "rb") as f:
                hash_file_object(f, hasher, limit=offset)
        emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": total, "offset": offset})
        last, done = 0.0, offset
        with open(self.part, "r+b" if offset else "wb") as f, BackgroundHasher(hasher) as background:
            f.seek(offset)
            f.truncate()
            try:
                for chunk in raw.stream(CHUNK, decode_content=False):
                    done += len(chunk)
                    if self.expect.size is not None and done > self.expect.size:  # never fill the disk
                        raise IntegrityError(f"size mismatch for {self.label['file']} from {self.url}: more than "
                                             f"the {self.expect.size} bytes the card states; the file was removed",
                                             "Try another --mirror or report the card")
                    f.write(chunk)
                    background.update(chunk)
                    if time.monotonic() - last > PROGRESS_EVERY_S:
                        last = time.monotonic()
                        emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
                raise _Retryable(f"connection lost after {done} bytes ({type(exc).__name__})") from None
        if total is not None and done != total:
            raise _Retryable(f"connection lost after {done} of {total} bytes")
        emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
        return hasher

    def _copy_local(self, source: Path) -> Hasher:
        if not source.is_file():
            raise Skip(f"{source}: not in the mirror directory")
        hasher = self.hasher()
        emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": source.stat().st_size,
                              "offset": 0})
        self.part.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as src, open(self.part, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                hasher.update(chunk)
        emit(self.progress, {"event": "progress", **self.label, "bytes": hasher.size, "total": hasher.size})
        return hasher
