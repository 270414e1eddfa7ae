"""Remote registries: add / update / ls, conditional download (ETag), ed25519-signed indexes, last good copy.

Layout under settings.remotes_dir() (ZOO_HOME/registries):

    remotes.json            {name: {"url": ..., "key": base64 public key or null, "allow_local": bool}},
                            written by `registry add`
    <name>/index.json       the last good copy; it replaced the previous one only after passing every check
    <name>/index.json.sig   its signature, for a registry with a key
    <name>/state.json       ETag, time, version and expiry of the last accepted update

A signature is ed25519 over the exact bytes of index.json (zoo.cards.signing), published at the
index URL + ".sig". The checks, in order: size, signature over the raw bytes (before any parsing),
JSON nesting depth, format and every card's sha256, every card against the card schema, card URLs
(no file:// or private/loopback hosts unless the registry was added with allow_local), unique ids,
and the index version (never older than the last accepted one; an expired index is kept with a warning).
"""
from __future__ import annotations

import ipaddress
import json
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from zoo import settings
from zoo.cards.index import EMBEDDED, EXPIRES_FORMAT, entries_from_index, index_meta, loads_bounded, read_index
from zoo.cards.signing import public_key, verify_signature
from zoo.cards.urls import check_url
from zoo.errors import InvalidCardError, RegistryError, SignatureError, UsageError, ZooError
from zoo.files import write_bytes_atomic, write_json_atomic

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


def add(name: str, url: str, key: str | None = None, allow_local: bool = False) -> dict:
    """Register a remote registry (re-adding replaces it and forgets its cached copy).

    allow_local: accept cards whose URLs are file:// paths or private/loopback hosts (a registry on
    your own network); off by default, so a remote index cannot point zoo at local files or services."""
    if not re.fullmatch(NAME_PATTERN, name) or name == EMBEDDED:
        raise UsageError(f"registry name {name!r} is not allowed",
                         "Use lowercase letters, digits, '-' and '_' (not 'embedded')")
    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(f"registry URL {exc}") from None
    conf = {"url": url, "key": public_key(key) if key else None, "allow_local": bool(allow_local)}
    config = remotes()
    if config.get(name) != conf:
        shutil.rmtree(settings.remotes_dir() / name, ignore_errors=True)
    config[name] = conf
    write_json_atomic(_config_path(), config)
    return {"name": name, **conf, "index_url": index_url(url)}


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


def _download(session, url: str, headers: dict, limit: int = MAX_INDEX_BYTES):
    with session.get(url, headers=headers, timeout=settings.timeouts_s(), stream=True) as response:
        data = response.raw.read(limit + 1, decode_content=True)
    if len(data) > limit:
        raise RegistryError(f"{url} is larger than {limit} bytes")
    return response, data


def is_local_url(url: str) -> bool:
    """A file:// URL, or one whose host is localhost or a private, loopback, link-local or reserved address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or not host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a DNS name: what it resolves to is the network's business
    return not address.is_global or address.is_multicast


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
        return {"status": "unchanged", "message": "not modified since the last update" + _expiry_warning(state)}
    response.raise_for_status()  # reported as 'failed' (unreachable), not 'rejected' (did not verify)
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
    try:
        same_bytes = _last_good(name).read_bytes() == data
    except OSError:
        same_bytes = False
    version, expires = _check_version(index, state, where, same_bytes)
    directory = settings.remotes_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    if signature is not None:
        (directory / "index.json.sig").write_bytes(signature)
    write_bytes_atomic(_last_good(name), data)  # only now does the new copy replace the last good one
    state = {"etag": response.headers.get("ETag"), "url": url,
             "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": version,
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
    with requests.Session() as session:
        for name in names or sorted(config):
            conf = config[name]
            if settings.offline():
                result = {"status": "offline", "message": "ZOO_OFFLINE=1: using the last good copy"}
            else:
                try:
                    result = _update_one(session, name, conf)
                except ZooError as exc:
                    result = {"status": "rejected", "message": exc.one_line()}
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
                    "cards": _card_count(name), "updated_at": state.get("updated_at"), "etag": state.get("etag"),
                    "version": state.get("version"), "expires": state.get("expires"), "expired": _expired(state)})
    return out


def cached_files() -> list[tuple[str, Path]]:
    """(name, path) of the last good copy of every remote registry that has one, in name order."""
    return [(name, _last_good(name)) for name in sorted(remotes()) if _last_good(name).is_file()]


def cached_entries() -> list:
    """Cards from the last good copy of every remote registry (card sha256s re-checked; no pydantic)."""
    return [entry for name, path in cached_files() for entry in read_index(path, name)]
