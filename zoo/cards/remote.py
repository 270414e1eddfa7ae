"""Remote registries: add / update / ls, conditional download (ETag), ed25519-signed indexes, last good copy.

Layout under settings.remotes_dir() (ZOO_HOME/registries):

    remotes.json            {name: {"url": ..., "key": base64 public key or null, "allow_local": bool,
                            "override": bool, "added": n}}, written by `registry add` (n: the order added)
    <name>/index.json       the last good copy; it replaced the previous one only after passing every check
    <name>/index.json.sig   its signature, for a registry with a key
    <name>/state.json       ETag, time, version, sha256 and expiry of the last accepted update

A signature is ed25519 over the exact bytes of index.json (zoo.cards.signing), published at the
index URL + ".sig". The checks, in order: size, signature over the raw bytes (before any parsing),
JSON nesting depth, format and every card's sha256, every card against the card schema, card URLs
(no file:// or private/loopback hosts unless the registry was added with allow_local), unique ids,
and the index version (never older than the last accepted one; an expired index is kept with a warning).
The download itself is bounded in time (zoo.net): headers within the connect and read timeouts, the body
above ZOO_MIN_RATE.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from zoo import net, settings
from zoo.cards.index import EMBEDDED, EXPIRES_FORMAT, entries_from_index, index_meta, loads_bounded, read_index
from zoo.cards.signing import public_key, verify_signature
from zoo.cards.urls import check_url
from zoo.errors import InvalidCardError, RegistryError, SignatureError, UsageError, ZooError
from zoo.files import write_bytes_atomic, write_json_atomic
from zoo.net import is_local_url  # noqa: F401 -- also zoo.cards.remote.is_local_url

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
MAX_INDEX_BYTES = 64 * 2**20
MAX_SIGNATURE_BYTES = 4096


# ---------------------------------------------------------------- configuration

def _config_path() -> Path:
    return settings.remotes_dir() / "remotes.json"


def remotes() -> dict:
    try:
        data = json.loads(_config_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{_config_path()} is not readable JSON ({exc})",
                            "Fix it, or delete it and add the registries again") from None
    # Never read as "no registries": a signed registry's cards would vanish without a word.
    if not isinstance(data, dict) or not all(
            isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) and isinstance(conf, dict)
            and isinstance(conf.get("url"), str) and isinstance(conf.get("key"), (str, type(None)))
            for name, conf in data.items()):
        raise RegistryError(f"{_config_path()} is not a remotes file ({{NAME: {{url, key, allow_local}}}})",
                            "Fix it, or delete it and add the registries again")
    return data


def index_url(url: str) -> str:
    return url if urlsplit(url).path.endswith(".json") else url.rstrip("/") + "/index.json"


def add(name: str, url: str, key: str | None = None, allow_local: bool = False, override: bool = False) -> dict:
    """Register a remote registry, or change how an added one is trusted.

    allow_local: accept cards whose URLs are file:// paths or private/loopback hosts (a registry on
    your own network); off by default, so a remote index cannot point zoo at local files or services.
    override: its cards replace those of other sources with the same id (embedded, other registries):
    without it, a registry never replaces another source's card (zoo.cards.registry.merged).

    Re-adding with the same URL and key keeps the last good copy and the accepted version (rollback
    protection); another URL or key is another publisher: its copy and accepted version are forgotten.
    The record's `kept` says which happened."""
    if not re.fullmatch(NAME_PATTERN, name) or name == EMBEDDED:
        raise UsageError(f"registry name {name!r} is not allowed",
                         "Use lowercase letters, digits, '-' and '_' (not 'embedded')")
    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(f"registry URL {exc}") from None
    conf = {"url": url, "key": public_key(key) if key else None, "allow_local": bool(allow_local),
            "override": bool(override)}
    config = remotes()
    old = config.get(name) if isinstance(config.get(name), dict) else None
    kept = old is not None and (old.get("url"), old.get("key")) == (url, conf["key"])
    if kept:
        conf["added"] = _order(old)
        if old.get("allow_local") and not allow_local:
            _recheck_without_local(name)
    else:
        shutil.rmtree(settings.remotes_dir() / name, ignore_errors=True)
        conf["added"] = 1 + max([_order(c) for c in config.values()] or [0])
    config[name] = conf
    write_json_atomic(_config_path(), config)
    return {"name": name, **conf, "index_url": index_url(url), "kept": kept}


def _recheck_without_local(name: str) -> None:
    """A registry no longer allowed local addresses: a last good copy with such URLs is put aside until the next
    update, which checks the index again; the accepted version (state.json) stays, so a rollback still fails."""
    try:
        entries = read_index(_last_good(name), name)
    except RegistryError:
        return
    if any(is_local_url(u) for e in entries for a in e.card.get("artifacts", []) for u in a.get("urls", [])):
        _last_good(name).unlink(missing_ok=True)
        (settings.remotes_dir() / name / "index.json.sig").unlink(missing_ok=True)
        state = _state(name)
        if state:
            write_json_atomic(settings.remotes_dir() / name / "state.json", {**state, "etag": None})


# ---------------------------------------------------------------- update, ls, cached cards

def _last_good(name: str) -> Path:
    return settings.remotes_dir() / name / "index.json"


def _state(name: str) -> dict:
    """ETag and time of the last successful update ({} when never updated or unreadable)."""
    try:
        state = json.loads((settings.remotes_dir() / name / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _card_count(name: str) -> int:
    try:
        return len(json.loads(_last_good(name).read_text(encoding="utf-8"))["cards"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class _Failed(Exception):
    """The server did not answer with an index (reported as `failed`: the registry is unreachable, not wrong)."""


def _download(session, url: str, headers: dict, limit: int = MAX_INDEX_BYTES):
    """(response, body): the status line and headers within net.header_deadline_s(), the body above the rate
    floor (ZOO_MIN_RATE over ZOO_RATE_WINDOW) and at most `limit` bytes."""
    import requests

    limit_s = net.header_deadline_s()
    late = _Failed(f"{url}: no complete answer (status line and headers) within {limit_s:g} s")
    try:
        with net.deadline(session, limit_s) as expired:
            response = session.get(url, headers=headers, timeout=settings.timeouts_s(), stream=True)
    except requests.RequestException:
        if expired.is_set():
            raise late from None
        raise
    if expired.is_set():  # cut off mid-headers, http.client may take what it had for a whole answer
        response.close()
        raise late
    with response:
        data = net.read_body(response.raw, limit, url)
    if len(data) > limit:
        raise RegistryError(f"{url} is larger than {limit} bytes")
    return response, data


def check_cards(entries: list, where: str, allow_local: bool) -> None:
    """Every card valid under the card schema, with remote-safe URLs and an id no other card has (in any case)."""
    from zoo.cards.schema import validate_card  # pydantic: kept off the path of `zoo list`

    seen: dict[str, str] = {}
    for entry in entries:
        card = entry.card
        label = f"registry index {where}: card {str(card.get('id'))[:80]!r}"
        try:
            validate_card(card, label)
        except InvalidCardError as exc:
            lines = getattr(exc, "lines", [exc.message])
            more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
            raise RegistryError("; ".join(lines[:3]) + more,
                                "The last good copy stays in use; report the card to the registry's publisher") from None
        if not allow_local:
            for i, artifact in enumerate(card.get("artifacts", [])):
                for j, url in enumerate(artifact.get("urls", [])):
                    if is_local_url(url):
                        raise RegistryError(f"{label}: artifacts[{i}].urls[{j}]: {url[:100]!r} points at a local "
                                            "file or a private/loopback address",
                                            "Re-add the registry with --allow-local if you trust it with that")
        folded = card["id"].casefold()
        if folded in seen:
            raise RegistryError(f"{label}: id clashes with {seen[folded]!r} (ids must differ in more than case)")
        seen[folded] = card["id"]


def _check_version(index: dict, state: dict, where: str, same_bytes: bool) -> tuple[int | None, datetime | None]:
    """Refuse a rollback: a version older than the last accepted one, or none after one had a version."""
    version, expires = index_meta(index, where)
    last = state.get("version")
    if isinstance(last, int):
        if version is None:
            raise RegistryError(f"registry index {where} has no version, but version {last} was accepted before",
                                "The last good copy stays in use; this looks like a rollback")
        if version < last or (version == last and not same_bytes):
            raise RegistryError(f"registry index {where} is version {version}, "
                                f"{'older than' if version < last else 'but differs from'} the accepted version {last}",
                                "The last good copy stays in use; this looks like a rollback (the publisher "
                                "must raise --version with each build)")
    return version, expires


def _update_one(session, name: str, conf: dict) -> dict:
    url, where = index_url(conf["url"]), f"{name} ({index_url(conf['url'])})"
    state_path = settings.remotes_dir() / name / "state.json"
    state = _state(name)
    headers = {"If-None-Match": state["etag"]} if state.get("etag") and _last_good(name).is_file() else {}
    response, data = _download(session, url, headers)
    if response.status_code == 304:
        if not headers:  # nothing was asked about: there is no copy that could be unchanged
            raise _Failed(f"{url} answered 304 Not Modified to a request for the whole index, and there is no "
                          "copy to keep")
        return {"status": "unchanged", "message": "not modified since the last update" + _expiry_warning(state)}
    response.raise_for_status()  # reported as 'failed' (unreachable), not 'rejected' (did not verify)
    if response.status_code != 200:  # 204, 206, a redirect not followed...: not an index
        raise _Failed(f"{url} answered HTTP {response.status_code}, not 200 with the index")
    signature = None
    if conf.get("key"):  # verified over the raw bytes, before a single one of them is parsed
        sig_response, signature = _download(session, url + ".sig", {}, MAX_SIGNATURE_BYTES)
        if sig_response.status_code != 200:
            raise SignatureError(f"registry index {where} is unsigned (HTTP {sig_response.status_code} for "
                                 f"{url}.sig) but the registry has a key")
        verify_signature(data, signature, conf["key"], where)
    index = loads_bounded(data, where)
    entries = entries_from_index(index, name, where)
    check_cards(entries, where, bool(conf.get("allow_local")))
    digest = hashlib.sha256(data).hexdigest()
    try:
        same_bytes = state.get("sha256") == digest or _last_good(name).read_bytes() == data
    except OSError:
        same_bytes = False
    version, expires = _check_version(index, state, where, same_bytes)
    directory = settings.remotes_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    if signature is not None:
        (directory / "index.json.sig").write_bytes(signature)
    write_bytes_atomic(_last_good(name), data)  # only now does the new copy replace the last good one
    state = {"etag": response.headers.get("ETag"), "url": url,
             "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": version, "sha256": digest,
             "expires": expires.strftime(EXPIRES_FORMAT) if expires else None}
    write_json_atomic(state_path, state)
    message = f"{len(entries)} cards" + (f", version {version}" if version is not None else "") \
        + (", signature verified" if signature else "") + _expiry_warning(state)
    return {"status": "updated", "message": message}


def _expired(state: dict) -> bool:
    try:
        when = datetime.strptime(state["expires"], EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except (KeyError, TypeError, ValueError):
        return False
    return when < datetime.now(timezone.utc)


def _expiry_warning(state: dict) -> str:
    """Expired indexes are kept (refusing would leave only an even older copy), but never silently."""
    if not _expired(state):
        return ""
    return f"; WARNING: the index expired on {state['expires']}: its publisher has not re-signed it since"


def update(names: list[str] | None = None) -> list[dict]:
    """Download each remote index when it changed and keep it only if it passes every check.

    Records: name, url, status (updated | unchanged | offline | rejected | failed), cards (in the copy
    now in use), message. A rejected or failed update leaves the last good copy in use.
    """
    import requests

    config = remotes()
    unknown = [n for n in names or [] if n not in config]
    if unknown:
        raise UsageError(f"no remote registry named {unknown[0]!r}",
                         "Add it with `zoo registry add NAME URL`; `zoo registry ls` lists them")
    out = []
    with net.session() as session:
        for name in names or sorted(config):
            conf = config[name]
            if settings.offline():
                result = {"status": "offline", "message": "ZOO_OFFLINE=1: using the last good copy"}
            else:
                try:
                    result = _update_one(session, name, conf)
                except ZooError as exc:
                    result = {"status": "rejected", "message": exc.one_line()}
                except (_Failed, net.TooSlow) as exc:
                    result = {"status": "failed", "message": f"{exc}; the last good copy stays in use"}
                except requests.RequestException as exc:
                    reason = str(exc) if isinstance(exc, requests.HTTPError) else type(exc).__name__
                    result = {"status": "failed", "message": f"cannot download {index_url(conf['url'])} "
                                                             f"({reason}); the last good copy stays in use"}
                except Exception as exc:  # noqa: BLE001 -- one registry's failure never stops the others
                    result = {"status": "failed", "message": f"{type(exc).__name__}: {str(exc)[:120]}; "
                                                             "the last good copy stays in use"}
            out.append({"name": name, "url": index_url(conf["url"]), **result, "cards": _card_count(name)})
    return out


def ls() -> list[dict]:
    """Every remote registry: name, url, key, signed, allow_local, cards in the last good copy, updated_at, etag,
    version and expires of that copy (None when it has none), expired."""
    out = []
    for name, conf in sorted(remotes().items()):
        state = _state(name)
        out.append({"name": name, "url": index_url(conf["url"]), "key": conf.get("key"),
                    "signed": bool(conf.get("key")), "allow_local": bool(conf.get("allow_local")),
                    "override": bool(conf.get("override")),
                    "cards": _card_count(name), "updated_at": state.get("updated_at"), "etag": state.get("etag"),
                    "version": state.get("version"), "expires": state.get("expires"), "expired": _expired(state)})
    return out


def trust(conf: dict) -> str:
    """How a registry's cards rank against other sources' (zoo.cards.registry.merged): override, signed, unsigned."""
    return "override" if conf.get("override") else "signed" if conf.get("key") else "unsigned"


def _order(conf) -> int:
    """When a registry was added, as a rank (0: before zoo recorded it)."""
    added = conf.get("added") if isinstance(conf, dict) else None
    return added if type(added) is int else 0


def cached_sources() -> list[tuple[str, Path, str]]:
    """(name, last good copy, trust) of every remote registry that has a copy, in the order they were added."""
    config = remotes()
    names = sorted(config, key=lambda n: (_order(config[n]), n))
    return [(name, _last_good(name), trust(config[name])) for name in names if _last_good(name).is_file()]


_PUBLIC_ONLY: dict = {}


def public_only_urls() -> frozenset[str]:
    """Every artifact URL published by a remote registry added without --allow-local: zoo connects to these only
    at public addresses, also after a redirect (zoo.net.session(public_only=True)); a host name that resolves to
    a loopback or private address is refused when the connection is opened. Kept per process, by file stamps."""
    config = remotes()
    paths = [(name, _last_good(name)) for name in sorted(config) if not config[name].get("allow_local")]
    stamp = []
    for name, path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp.append((name, str(path), stat.st_size, stat.st_mtime_ns))
    key = tuple(stamp)
    if key not in _PUBLIC_ONLY:
        urls = set()
        for name, path, *_ in stamp:
            try:
                entries = read_index(Path(path), name)
            except RegistryError:
                continue
            urls |= {url for e in entries for a in e.card.get("artifacts", []) for url in a.get("urls", [])}
        _PUBLIC_ONLY.clear()
        _PUBLIC_ONLY[key] = frozenset(urls)
    return _PUBLIC_ONLY[key]

