"""Remote registries: add / update / ls, conditional download (ETag), ed25519-signed indexes, last good copy.

Layout under settings.remotes_dir() (ZOO_HOME/registries):

    remotes.json            {name: {"url": ..., "key": base64 public key or null}}, written by `registry add`
    <name>/index.json       the last good copy; it replaced the previous one only after passing every check
    <name>/index.json.sig   its signature, for a registry with a key
    <name>/state.json       ETag and time of the last successful update

A signature is ed25519 over the exact bytes of index.json, base64 on one line, published at the
index URL + ".sig" (`zoo registry build --sign KEYFILE` writes both). A private key file is PKCS8 PEM
(mode 0600); the public key is the base64 of its 32 raw bytes, written beside it as KEYFILE.pub.
cryptography is imported only to sign, verify or make keys, so `zoo list` stays fast.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from . import settings
from .errors import RegistryError, SignatureError, UsageError

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
MAX_INDEX_BYTES = 64 * 2**20


# ---------------------------------------------------------------- keys and signatures

def keygen(keyfile: Path) -> dict:
    """Write a new ed25519 private key (PEM, 0600) to keyfile and its public key to keyfile.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_file = keyfile.with_name(keyfile.name + ".pub")
    for path in (keyfile, public_file):
        if path.exists():
            raise UsageError(f"{path} already exists", "Choose another KEYFILE; zoo never overwrites a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = base64.b64encode(raw).decode()
    public_file.write_text(public + "\n")
    return {"private_key": str(keyfile), "public_key_file": str(public_file), "public_key": public}


def sign_file(path: Path, keyfile: Path) -> Path:
    """Sign a file's exact bytes; writes path + '.sig' and returns it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read the private key {keyfile} ({exc})",
                         "Make one with `zoo registry keygen KEYFILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{keyfile} is not an ed25519 private key", "Make one with `zoo registry keygen KEYFILE`")
    sig = path.with_name(path.name + ".sig")
    sig.write_text(base64.b64encode(key.sign(path.read_bytes())).decode() + "\n")
    return sig


def public_key(value: str) -> str:
    """Normalise --key (base64 text, a .pub file, or a PEM public key file) to base64 of the raw 32 bytes."""
    text = value.strip()
    path = Path(text).expanduser()
    if len(text) < 4096 and path.is_file():
        text = path.read_text().strip()
    if text.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(text.encode())
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--key: not an ed25519 public key ({exc})") from None
        return base64.b64encode(raw).decode()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"--key: {value!r} is neither a key file nor the base64 of a 32-byte ed25519 public key",
                         "Pass the KEYFILE.pub that `zoo registry keygen` wrote, or its contents")
    return text


def verify_signature(data: bytes, signature: bytes, key_b64: str, where: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64)).verify(sig, data)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"registry index {where}: the ed25519 signature does not match its key") from None


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


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def index_url(url: str) -> str:
    return url if urlsplit(url).path.endswith(".json") else url.rstrip("/") + "/index.json"


def add(name: str, url: str, key: str | None = None) -> dict:
    """Register a remote registry (re-adding replaces it and forgets its cached copy)."""
    from .cards import _url
    from .registry import EMBEDDED

    if not re.fullmatch(NAME_PATTERN, name) or name == EMBEDDED:
        raise UsageError(f"registry name {name!r} is not allowed",
                         "Use lowercase letters, digits, '-' and '_' (not 'embedded')")
    try:
        _url(url)
    except ValueError as exc:
        raise UsageError(f"registry URL {exc}") from None
    conf = {"url": url, "key": public_key(key) if key else None}
    config = remotes()
    if config.get(name) != conf:
        shutil.rmtree(settings.remotes_dir() / name, ignore_errors=True)
    config[name] = conf
    _write_json(_config_path(), config)
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
    from .registry import entries_from_index

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
    tmp = directory / "index.json.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, _last_good(name))  # only now does the new copy replace the last good one
    _write_json(state_path, {"etag": response.headers.get("ETag"), "url": url,
                             "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return {"status": "updated", "message": f"{len(entries)} cards" + (", signature verified" if signature else "")}


def update(names: list[str] | None = None) -> list[dict]:
    """Download each remote index when it changed and keep it only if it passes every check.

    Records: name, url, status (updated | unchanged | offline | rejected | failed), cards (in the copy
    now in use), message. A rejected or failed update leaves the last good copy in use.
    """
    import requests

    from .errors import ZooError

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
    from .registry import read_index

    entries = []
    for name in sorted(remotes()):
        if _last_good(name).is_file():
            entries += read_index(_last_good(name), name)
    return entries
