"""`zoo fetch`: which bytes an artifact must be, where to get them (mirrors first), one download at a time
per artifact, and the verified file in the cache.

What is checked, strongest first: the card's sha256, or the sha256 pinned on first use (pins file);
the card's sha384/sha1; the file-name sha256 prefix (torchvision/timm/MindCV style); size_bytes.
Bytes reach the cache only after they pass, so a caller never sees unverified bytes. Archives are
unpacked afterwards, as a separate step (zoo.artifacts.archives).
"""
from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

from zoo import settings
from zoo.artifacts import cache, pins
from zoo.artifacts.archives import member_path, unpack_cached
from zoo.artifacts.hashes import Expected, hash_file, verify
from zoo.artifacts.http import Download, Skip, emit
from zoo.cards.formats import ARCHIVE_FORMATS
from zoo.cards.remote import public_only_urls
from zoo.files import is_storage_error, storage_error
from zoo.errors import (
    DownloadError,
    HashRequiredError,
    IntegrityError,
    OfflineError,
    UsageError,
    ZooError,
)


def artifact_named(card: dict, artifact: dict | str | None) -> dict:
    """The card's artifact with that file name (or the artifact dict itself); None: the card's first."""
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
    sha, where = pins.known_sha256(card_id, artifact)
    return Expected(sha, where, artifact.get("sha256_prefix"), dict(artifact.get("other_hashes", {})),
                    artifact.get("size_bytes"))


def all_mirrors(mirrors: list[str] | None) -> list[str]:
    """The caller's mirrors first, then ZOO_MIRROR's, without repeats: the library and `--mirror` agree."""
    return list(dict.fromkeys(list(mirrors or []) + settings.mirrors()))


def local_path(url: str) -> Path:
    """The file a file:// URL names."""
    return Path(urllib.request.url2pathname(urlsplit(url).path))


def mirror_directories(mirrors: list[str]) -> list[Path]:
    """The local directories among the mirrors (plain paths or file:// URLs), resolved."""
    return [(local_path(m) if m.startswith("file://") else Path(m)).expanduser().resolve()
            for m in mirrors if not m.startswith(("http://", "https://"))]


def candidate_urls(artifact: dict, mirrors: list[str]) -> list[str]:
    """Mirrors (a base URL, or a directory holding the file by name) first, then the card's URLs."""
    urls = [m.rstrip("/") + "/" + quote(artifact["file"]) if m.startswith(("http://", "https://"))
            else (mirror_directories([m])[0] / artifact["file"]).as_uri() for m in mirrors]
    return list(dict.fromkeys(urls + list(artifact["urls"])))


def local_url_refusal(url: str, mirrors: list[str]) -> str | None:
    """Why a file:// URL may not be read (None: it may). A card may name a local file only inside a mirror
    directory the user named, or among the models zoo itself made under ZOO_HOME (a derived card's converted
    or quantized file, checked by its sha256 like any other); otherwise `urls: [file:///etc/shadow]` would
    copy any readable file into the cache."""
    if not url.startswith("file://"):
        return None
    path = local_path(url).resolve()  # links resolved: a link in a mirror to /etc/shadow is outside it
    if cache.made_by_zoo(path) or any(path.is_relative_to(directory) for directory in mirror_directories(mirrors)):
        return None
    return (f"{url}: file:// URLs are read only inside a mirror directory you named (--mirror or ZOO_MIRROR), "
            "and this one is not")


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
    if hash_file(path).hexdigest() != expect.sha256:
        cache.remove_blob(expect.sha256)
        emit(progress, {"event": "warning", "id": card_id, "file": artifact["file"],
                        "message": f"cached {path} was corrupt and has been removed; downloading it again"})
        return None
    return _record(card_id, artifact, path, expect.sha256, expect.sha256_from, None, True)


def fetch_record(card: dict, artifact: dict | str | None = None, *, mirrors: list[str] | None = None,
                 require_hashes: bool = False, force: bool = False, progress=None) -> dict:
    """Fetch one artifact and return its record (id, file, format, path, sha256, size, source_url, verified_by,
    cached). Mirrors: these, then ZOO_MIRROR's. force=True downloads again even when a verified copy is cached
    (the new bytes must still verify)."""
    from filelock import FileLock, Timeout

    artifact = artifact_named(card, artifact)
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
        emit(progress, {"event": "waiting", **label, "message": "another process is fetching it"})
        lock.acquire()
    try:
        expect = expected(card_id, artifact)  # another process may have pinned and cached it meanwhile
        if not force and (hit := _from_cache(card_id, artifact, expect, progress)):
            return hit
        mirrors = all_mirrors(mirrors)
        return _download_any(card_id, artifact, expect, candidate_urls(artifact, mirrors), mirrors,
                             key, label, progress)
    finally:
        lock.release()


def _download_any(card_id, artifact, expect: Expected, urls, mirrors, key, label, progress) -> dict:
    part, meta = cache.partial_paths(key)
    part.parent.mkdir(parents=True, exist_ok=True)
    failures, mismatch = [], None
    public_only = public_only_urls()
    for url in urls:
        if refusal := local_url_refusal(url, mirrors):
            failures.append(refusal)
            emit(progress, {"event": "failed", **label, "url": url, "reason": refusal})
            continue
        try:
            hasher = Download(url, part, meta, expect, label, progress, public_only=url in public_only).run()
            verified_by = verify(hasher, expect, artifact["file"], url, settings.pins_file())
        except (Skip, DownloadError) as exc:
            failures.append(str(exc))
        except IntegrityError as exc:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            mismatch = mismatch or exc
            failures.append(exc.message)
        except OSError as exc:
            if not is_storage_error(exc):
                raise
            # The disk, not the URL: no other URL can help. The partial file stays for a resume.
            raise storage_error(exc, part, "download to") from None
        else:
            sha = hasher.hexdigest()
            try:
                path = cache.install(part, sha, artifact["file"])
            except OSError as exc:
                if not is_storage_error(exc):
                    raise
                raise storage_error(exc, cache.blob_path(sha, artifact["file"]), "install") from None
            meta.unlink(missing_ok=True)
            if not expect.sha256:
                pins.pin(card_id, artifact["file"], sha, hasher.size, url)
                if verified_by == "tofu":
                    emit(progress, {"event": "warning", **label, "message":
                                    f"{card_id} {artifact['file']} has no hash on its card: trusting it on first "
                                    f"use and pinning sha256 {sha} in {settings.pins_file()}"})
            record = _record(card_id, artifact, path, sha, verified_by, url, False)
            emit(progress, {"event": "done", **record})
            return record
        emit(progress, {"event": "failed", **label, "url": url, "reason": failures[-1]})
    others = f" (other sources: {'; '.join(f for f in failures if f != mismatch.message)})" \
        if mismatch and len(failures) > 1 else ""
    if mismatch:
        raise IntegrityError(mismatch.message + others, mismatch.hint)
    raise DownloadError(f"could not download {artifact['file']} for {card_id}: {'; '.join(failures) or 'no URL'}",
                        "Check the network or proxy (HTTPS_PROXY), or give a --mirror / ZOO_MIRROR")


def fetch_artifact(card: dict, artifact: dict | str | None = None, **options) -> Path:
    """The verified cached file of one artifact (None: the card's first); archives stay packed."""
    return Path(fetch_record(card, artifact, **options)["path"])


def unpacked(card: dict, artifact: dict | str | None = None, **options) -> Path:
    """The safely unpacked directory of a verified archive artifact."""
    artifact = artifact_named(card, artifact)
    if artifact["format"] not in ARCHIVE_FORMATS:
        raise UsageError(f"{card['id']} {artifact['file']} is {artifact['format']}, not an archive")
    return unpack_cached(fetch_artifact(card, artifact, **options))


def artifact_member(card: dict, artifact: dict | str | None = None, **options) -> Path:
    """The file a runtime loads: the artifact itself, or its `member` inside the unpacked archive."""
    artifact = artifact_named(card, artifact)
    if not artifact.get("member"):
        return fetch_artifact(card, artifact, **options)
    return member_path(unpacked(card, artifact, **options), artifact["member"])


def fetch_cards(cards: list[dict], *, all_artifacts: bool = False, jobs: int = 4, mirrors: list[str] | None = None,
                require_hashes: bool = False, force: bool = False, progress=None) -> list[dict]:
    """Fetch the primary artifact (all_artifacts=True: every artifact) of each card, `jobs` at a time.

    Records: those of fetch_record, and for archives `unpacked` (the directory) and `member_path`
    (when the card names a member). `progress`, when given, is called with one dict per event
    (start, progress, retry, failed, warning, waiting, done).
    """
    if not cards:
        raise UsageError("no card given", "Name one or more cards: `zoo fetch coral/mobilenet_v2_1.0_224_quant`")
    if jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {jobs}")
    tasks = []
    for card in cards:
        first = artifact_named(card, None)
        tasks += [(card, a) for a in (card["artifacts"] if all_artifacts else [first])]
    options = {"mirrors": mirrors, "require_hashes": require_hashes, "force": force, "progress": progress}

    def one(task) -> dict:
        card, artifact = task
        record = fetch_record(card, artifact, **options)
        if artifact["format"] in ARCHIVE_FORMATS:
            tree = unpack_cached(Path(record["path"]))
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
