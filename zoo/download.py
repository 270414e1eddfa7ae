"""`zoo fetch`: download artifacts, mirrors first; streamed, hashed, resumed, retried, verified, cached.

What is checked, strongest first: the card's sha256, or the sha256 pinned on first use (pins file);
the card's sha384/sha1; the file-name sha256 prefix (torchvision/timm/MindCV style); size_bytes.
Bytes reach the cache only after they pass, so a caller never sees unverified bytes.

The retry loop is written here rather than delegated to urllib3's Retry because a retry must
resume from the bytes already on disk (Range + If-Range), which urllib3 cannot do mid-body.
"""
from __future__ import annotations

import json
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import cache, settings
from .errors import (DownloadError, HashRequiredError, IntegrityError, OfflineError, UsageError, ZooError)
from .formats import ARCHIVE_FORMATS

PROGRESS_EVERY_S = 0.1


@dataclass
class Expected:
    """What the downloaded bytes must match."""

    sha256: str | None = None
    sha256_from: str | None = None      # 'sha256' (on the card) or 'pin' (pins file)
    prefix: str | None = None
    other: dict = field(default_factory=dict)
    size: int | None = None


class _Retryable(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


class _Skip(Exception):
    """This URL cannot serve the file (404, not in the mirror directory): try the next one."""


def _emit(progress, event: dict) -> None:
    if progress is not None:
        progress(event)
    elif event["event"] == "warning":
        warnings.warn(event["message"], stacklevel=3)


# ---------------------------------------------------------------- what to fetch, from where

def _pick(card: dict, artifact: dict | str | None) -> dict:
    artifacts = card.get("artifacts") or []
    if not artifacts:
        raise UsageError(f"{card['id']} has no artifacts (architecture only): there is nothing to fetch",
                         "Pick a card that publishes weights; `zoo list` marks them in its artifacts column")
    name = artifacts[0]["file"] if artifact is None else artifact if isinstance(artifact, str) else artifact["file"]
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):  # it becomes a path in the cache
        raise UsageError(f"{card['id']}: artifact file name {name!r} is not a bare file name", "Fix the card")
    if artifact is None:
        return artifacts[0]
    for a in artifacts:
        if a["file"] == name:
            return a if isinstance(artifact, str) else artifact
    raise UsageError(f"{card['id']} has no artifact {name!r}",
                     f"Its artifacts are: {', '.join(a['file'] for a in artifacts)}")


def expected(card_id: str, artifact: dict) -> Expected:
    sha, where = cache.known_sha256(card_id, artifact)
    return Expected(sha, where, artifact.get("sha256_prefix"), dict(artifact.get("other_hashes", {})),
                    artifact.get("size_bytes"))


def candidate_urls(artifact: dict, mirrors: list[str]) -> list[str]:
    """Mirrors (a base URL, or a directory holding the file by name) first, then the card's URLs."""
    urls = []
    for mirror in mirrors:
        if mirror.startswith(("http://", "https://")):
            urls.append(mirror.rstrip("/") + "/" + quote(artifact["file"]))
        else:
            directory = Path(urllib.request.url2pathname(urlsplit(mirror).path) if mirror.startswith("file://")
                             else mirror).expanduser().resolve()
            urls.append((directory / artifact["file"]).as_uri())
    return list(dict.fromkeys(urls + list(artifact["urls"])))


# ---------------------------------------------------------------- one URL

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


class _Stream:
    """Reads one URL into the part file, hashing as bytes arrive; resumes with Range when it can."""

    def __init__(self, url, part: Path, meta: Path, expect: Expected, label: dict, progress):
        self.url, self.part, self.meta, self.expect, self.label, self.progress = url, part, meta, expect, label, progress

    def hasher(self) -> cache.Hasher:
        return cache.Hasher(tuple(self.expect.other))

    def run(self) -> cache.Hasher:
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
                    _emit(self.progress, {"event": "retry", **self.label, "url": self.url, "reason": str(exc),
                                          "attempt": failures, "wait_s": round(wait, 3)})
                    time.sleep(wait)

    def _kept(self) -> int:
        """Bytes of this URL's partial file that a resume would keep."""
        return _resume_from(self.part, self.meta, self.url, self.expect.sha256 is not None)[0]

    def _attempt(self, session) -> cache.Hasher:
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
                raise _Skip(f"{self.url}: cannot resolve the host name") from None
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
                raise _Skip(f"{self.url}: HTTP {status}")
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

    def _write(self, raw, offset: int, total: int | None) -> cache.Hasher:
        import urllib3

        hasher = self.hasher()
        if offset:
            with open(self.part, "rb") as f:
                cache.hash_file_object(f, hasher, limit=offset)
        _emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": total, "offset": offset})
        last, done = 0.0, offset
        with open(self.part, "r+b" if offset else "wb") as f, cache.BackgroundHasher(hasher) as background:
            f.seek(offset)
            f.truncate()
            try:
                for chunk in raw.stream(cache.CHUNK, decode_content=False):
                    done += len(chunk)
                    if self.expect.size is not None and done > self.expect.size:  # never fill the disk
                        raise IntegrityError(f"size mismatch for {self.label['file']} from {self.url}: more than "
                                             f"the {self.expect.size} bytes the card states; the file was removed",
                                             "Try another --mirror or report the card")
                    f.write(chunk)
                    background.update(chunk)
                    if time.monotonic() - last > PROGRESS_EVERY_S:
                        last = time.monotonic()
                        _emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
                raise _Retryable(f"connection lost after {done} bytes ({type(exc).__name__})") from None
        if total is not None and done != total:
            raise _Retryable(f"connection lost after {done} of {total} bytes")
        _emit(self.progress, {"event": "progress", **self.label, "bytes": done, "total": total})
        return hasher

    def _copy_local(self, source: Path) -> cache.Hasher:
        if not source.is_file():
            raise _Skip(f"{source}: not in the mirror directory")
        hasher = self.hasher()
        _emit(self.progress, {"event": "start", **self.label, "url": self.url, "total": source.stat().st_size,
                              "offset": 0})
        self.part.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as src, open(self.part, "wb") as dst:
            while chunk := src.read(cache.CHUNK):
                dst.write(chunk)
                hasher.update(chunk)
        _emit(self.progress, {"event": "progress", **self.label, "bytes": hasher.size, "total": hasher.size})
        return hasher


# ---------------------------------------------------------------- verification

def verify(hasher: cache.Hasher, expect: Expected, file: str, url: str) -> str:
    """Check the bytes against everything the card (or pin) promises; returns what verified them."""
    removed = "the file was removed"
    if expect.size is not None and hasher.size != expect.size:
        raise IntegrityError(f"size mismatch for {file} from {url}: expected {expect.size} bytes, "
                             f"got {hasher.size}; {removed}", "Try another --mirror or report the card")
    actual = hasher.hexdigest()
    if expect.sha256 and actual != expect.sha256:
        hint = ("Try another --mirror or report the card" if expect.sha256_from == "sha256" else
                f"The bytes changed since they were pinned in {settings.pins_file()}; if the change upstream "
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


# ---------------------------------------------------------------- one artifact

def _record(card_id, artifact, path: Path, sha, verified_by, url, cached) -> dict:
    return {"id": card_id, "file": artifact["file"], "format": artifact["format"], "path": str(path),
            "sha256": sha, "size": path.stat().st_size, "source_url": url, "verified_by": verified_by,
            "cached": cached}


def _from_cache(card_id, artifact, expect: Expected, progress) -> dict | None:
    """The cached file when its bytes still hash to the sha256 it is filed under; corrupt files are dropped."""
    if not expect.sha256:
        return None
    path = cache.blob_path(expect.sha256, artifact["file"])
    if not path.is_file():
        return None
    if cache.hash_file(path).hexdigest() != expect.sha256:
        cache.remove_blob(expect.sha256)
        _emit(progress, {"event": "warning", "id": card_id, "file": artifact["file"],
                         "message": f"cached {path} was corrupt and has been removed; downloading it again"})
        return None
    return _record(card_id, artifact, path, expect.sha256, expect.sha256_from, None, True)


def fetch_record(card: dict, artifact: dict | str | None = None, *, mirrors: list[str] | None = None,
                 require_hashes: bool = False, force: bool = False, progress=None) -> dict:
    """Fetch one artifact and return its record (id, file, path, sha256, size, source_url, verified_by, cached).

    force=True downloads again even when a verified copy is cached (the new bytes must still verify).
    """
    from filelock import FileLock, Timeout

    artifact = _pick(card, artifact)
    card_id, file = card["id"], artifact["file"]
    label = {"id": card_id, "file": file}
    expect = expected(card_id, artifact)
    if require_hashes and not expect.sha256:
        raise HashRequiredError(f"{card_id} {file} has no full sha256 on its card or in {settings.pins_file()} "
                                "and --require-hashes is set")
    if not force and (hit := _from_cache(card_id, artifact, expect, progress)):
        return hit
    if settings.offline():
        raise OfflineError(f"{card_id} {file} is not in the cache and ZOO_OFFLINE=1 forbids downloading it")
    key = cache.artifact_key(card_id, file)
    lock = FileLock(str(cache.lock_path(key)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _emit(progress, {"event": "waiting", **label, "message": "another process is fetching it"})
        lock.acquire()
    try:
        expect = expected(card_id, artifact)  # another process may have pinned and cached it meanwhile
        if not force and (hit := _from_cache(card_id, artifact, expect, progress)):
            return hit
        return _download_any(card_id, artifact, expect, candidate_urls(artifact, settings.mirrors()
                                                                          if mirrors is None else mirrors),
                             key, label, progress)
    finally:
        lock.release()


def _download_any(card_id, artifact, expect: Expected, urls, key, label, progress) -> dict:
    part, meta = cache.partial_paths(key)
    part.parent.mkdir(parents=True, exist_ok=True)
    failures, mismatch = [], None
    for url in urls:
        try:
            hasher = _Stream(url, part, meta, expect, label, progress).run()
            verified_by = verify(hasher, expect, artifact["file"], url)
        except (_Skip, DownloadError) as exc:
            failures.append(str(exc))
        except IntegrityError as exc:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            mismatch = mismatch or exc
            failures.append(exc.message)
        else:
            sha = hasher.hexdigest()
            path = cache.install(part, sha, artifact["file"])
            meta.unlink(missing_ok=True)
            if not expect.sha256:
                cache.pin(card_id, artifact["file"], sha, hasher.size, url)
                if verified_by == "tofu":
                    _emit(progress, {"event": "warning", **label, "message":
                                     f"{card_id} {artifact['file']} has no hash on its card: trusting it on first "
                                     f"use and pinning sha256 {sha} in {settings.pins_file()}"})
            record = _record(card_id, artifact, path, sha, verified_by, url, False)
            _emit(progress, {"event": "done", **record})
            return record
        _emit(progress, {"event": "failed", **label, "url": url, "reason": failures[-1]})
    others = f" (other sources: {'; '.join(f for f in failures if f != mismatch.message)})" \
        if mismatch and len(failures) > 1 else ""
    if mismatch:
        raise IntegrityError(mismatch.message + others, mismatch.hint)
    raise DownloadError(f"could not download {artifact['file']} for {card_id}: {'; '.join(failures) or 'no URL'}",
                        "Check the network or proxy (HTTPS_PROXY), or give a --mirror / ZOO_MIRROR")


def fetch_artifact(card: dict, artifact: dict | str | None = None, *, mirrors: list[str] | None = None,
                   require_hashes: bool = False, force: bool = False, progress=None) -> Path:
    """The verified cached file of one artifact (None: the card's first); archives stay packed."""
    return Path(fetch_record(card, artifact, mirrors=mirrors, require_hashes=require_hashes, force=force,
                             progress=progress)["path"])


def unpacked(card: dict, artifact: dict | str | None = None, **options) -> Path:
    """The safely unpacked directory of a verified archive artifact."""
    artifact = _pick(card, artifact)
    if artifact["format"] not in ARCHIVE_FORMATS:
        raise UsageError(f"{card['id']} {artifact['file']} is {artifact['format']}, not an archive")
    return _unpack_verified(fetch_artifact(card, artifact, **options))


def _unpack_verified(path: Path) -> Path:
    from filelock import FileLock

    from .archives import unpack

    sha = path.parent.name  # cache.blob_path files verified bytes under their sha256
    with FileLock(str(cache.lock_path(f"unpack-{sha}"))):
        return unpack(path, cache.unpacked_dir(sha), settings.max_unpack_bytes())


def artifact_member(card: dict, artifact: dict | str | None = None, **options) -> Path:
    """The file a runtime loads: the artifact itself, or its `member` inside the unpacked archive."""
    from .archives import member_path

    artifact = _pick(card, artifact)
    if not artifact.get("member"):
        return fetch_artifact(card, artifact, **options)
    return member_path(unpacked(card, artifact, **options), artifact["member"])


# ---------------------------------------------------------------- many cards

def fetch(refs: list[str] | str, *, all: bool = False, jobs: int = 4, mirrors: list[str] | None = None,
          require_hashes: bool = False, force: bool = False, registries=None, progress=None) -> list[dict]:
    """Fetch the primary artifact (all=True: every artifact) of each card, `jobs` at a time.

    Records: id, file, format, path, sha256, size, source_url, verified_by (sha256 | pin | sha384 |
    sha1 | sha256-prefix | tofu), cached, and for archives `unpacked` (the directory) and
    `member_path` (when the card names a member). Mirrors default to ZOO_MIRROR; progress, when
    given, is called with one dict per event (start, progress, retry, failed, warning, waiting, done).
    """
    from .registry import load_registry

    refs = [refs] if isinstance(refs, str) else list(refs)
    if not refs:
        raise UsageError("no card given", "Name one or more cards: `zoo fetch coral/mobilenet_v2_1.0_224_quant`")
    if jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    registry, tasks = load_registry(registries), []
    for ref in refs:
        entry, note = registry.resolve(ref)
        if note:
            _emit(progress, {"event": "note", "message": note})
        first = _pick(entry.card, None)
        tasks += [(entry.card, a) for a in (entry.card["artifacts"] if all else [first])]
    options = {"mirrors": mirrors, "require_hashes": require_hashes, "force": force, "progress": progress}

    def one(task) -> dict:
        card, artifact = task
        from .archives import member_path

        record = fetch_record(card, artifact, **options)
        if artifact["format"] in ARCHIVE_FORMATS:
            tree = _unpack_verified(Path(record["path"]))
            record["unpacked"] = str(tree)
            if artifact.get("member"):
                record["member_path"] = str(member_path(tree, artifact["member"]))
        return record

    with ThreadPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futures = [pool.submit(one, t) for t in tasks]
    results, errors = [], []
    for future in futures:
        try:
            results.append(future.result())
        except ZooError as exc:
            errors.append(exc)
    if errors:
        first = errors[0]
        suffix = f" ({len(errors)} of {len(tasks)} artifacts failed)" if len(tasks) > 1 else ""
        raise type(first)(first.message + suffix, first.hint)
    return results
