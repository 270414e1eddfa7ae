"""Remote registries: add / update / ls, conditional download (ETag), ed25519-signed indexes, last good copy.

Layout under settings.remotes_dir() (ZOO_HOME/registries):

    remotes.json            {name: {"url": ..., "key": base64 public key or null}}, written by `registry add`
    <name>/index.json       the last good copy; it replaced the previous one only after passing every check
    <name>/index.json.sig   its signature, for a registry with a key
    <name>/state.json       ETag and time of the last successful update

A signature is ed25519 over the exact bytes of index.json (zoo.cards.signing), published at the
index URL + ".sig".
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from zoo import settings
from zoo.cards.index import EMBEDDED, entries_from_index, read_index
from zoo.cards.signing import public_key, verify_signature
from zoo.cards.urls import check_url
from zoo.errors import RegistryError, SignatureError, UsageError, ZooError
from zoo.files import write_bytes_atomic, write_json_atomic

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
MAX_INDEX_BYTES = 64 * 2**20


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
    return data if isinstance(data, dict) else {}


def index_url(url: str) -> str:
    return url if urlsplit(url).path.endswith(".json") else url.rstrip("/") + "/index.json"


def add(name: str, url: str, key: str | None = None) -> dict:
    """Register a remote registry (re-adding replaces it and forgets its cached copy)."""
    if not re.fullmatch(NAME_PATTERN, name) or name == EMBEDDED:
        raise UsageError(f"registry name {name!r} is not allowed",
                         "Use lowercase letters, digits, '-' and '_' (not 'embedded')")
    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(f"registry URL {exc}") from None
    conf = {"url": url, "key": public_key(key) if key else None}
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


def _download(session, url: str, headers: dict):
    with session.get(url, headers=headers, timeout=settings.timeouts_s(), stream=True) as response:
        data = response.raw.read(MAX_INDEX_BYTES + 1, decode_content=True)
    if len(data) > MAX_INDEX_BYTES:
        raise RegistryError(f"{url} is larger than {MAX_INDEX_BYTES} bytes")
    return response, data


def _update_one(session, name: str, conf: dict) -> dict:
    url, where = index_url(conf["url"]), f"{name} ({index_url(conf['url'])})"
    state_path = settings.remotes_dir() / name / "state.json"
    state = _state(name)
    headers = {"If-None-Match": state["etag"]} if state.get("etag") and _last_good(name).is_file() else {}
    response, data = _download(session, url, headers)
    if response.status_code == 304:
        return {"status": "unchanged", "message": "not modified since the last update"}
    response.raise_for_status()  # reported as 'failed' (unreachable), not 'rejected' (did not verify)
    try:
        index = json.loads(data)
    except ValueError as exc:
        raise RegistryError(f"registry index {where} is not valid JSON ({exc})") from None
    entries = entries_from_index(index, name, where)
    signature = None
    if conf.get("key"):
        sig_response, signature = _download(session, url + ".sig", {})
        if sig_response.status_code != 200:
            raise SignatureError(f"registry index {where} is unsigned (HTTP {sig_response.status_code} for "
                                 f"{url}.sig) but the registry has a key")
        verify_signature(data, signature, conf["key"], where)
    directory = settings.remotes_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    if signature is not None:
        (directory / "index.json.sig").write_bytes(signature)
    write_bytes_atomic(_last_good(name), data)  # only now does the new copy replace the last good one
    write_json_atomic(state_path, {"etag": response.headers.get("ETag"), "url": url,
                             "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return {"status": "updated", "message": f"{len(entries)} cards" + (", signature verified" if signature else "")}


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
            out.append({"name": name, "url": index_url(conf["url"]), **result, "cards": _card_count(name)})
    return out


def ls() -> list[dict]:
    """Every remote registry: name, url, key, signed, cards in the last good copy, updated_at, etag."""
    out = []
    for name, conf in sorted(remotes().items()):
        state = _state(name)
        out.append({"name": name, "url": index_url(conf["url"]), "key": conf.get("key"),
                    "signed": bool(conf.get("key")), "cards": _card_count(name),
                    "updated_at": state.get("updated_at"), "etag": state.get("etag")})
    return out


def cached_entries() -> list:
    """Cards from the last good copy of every remote registry (card sha256s re-checked; no pydantic)."""
    entries = []
    for name in sorted(remotes()):
        if _last_good(name).is_file():
            entries += read_index(_last_good(name), name)
    return entries
