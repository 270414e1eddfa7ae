"""Registry index files: `{format: 1, [version, expires,] cards: [{id, sha256, card}]}`, each card's sha256
over its canonical JSON.

`version` (an integer that only grows) and `expires` (UTC, "YYYY-MM-DDTHH:MM:SSZ") are optional; a
signed index carries both, so the signature covers them and a remote registry can refuse a rollback.

The embedded index was validated when `zoo registry build` wrote it, and each card's sha256 is
re-checked on load (when the card catalog is built), so reading an index needs no pydantic import.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import RegistryError
from zoo.files import write_bytes_atomic

INDEX_FORMAT = 1
EMBEDDED = "embedded"
MAX_JSON_DEPTH = 32   # a card nests about 5 deep; a hostile index may nest 100000 deep
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Entry:
    """A card and the registry it came from ('embedded', a directory, or a remote registry's name); shadowed:
    the other sources that publish another card with its id, each {registry, reason} (zoo.cards.registry.merged)."""

    card: dict
    registry: str
    shadowed: tuple = ()

    @property
    def id(self) -> str:
        return self.card["id"]


def canonical_json(card: dict) -> bytes:
    """The bytes a card's sha256 is computed over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def card_sha256(card: dict) -> str:
    return hashlib.sha256(canonical_json(card)).hexdigest()


def embedded_index_path() -> Path:
    """The index shipped inside the package; in a source checkout, registry/index.json."""
    packaged = Path(__file__).resolve().parents[1] / "_embedded" / "index.json"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "registry" / "index.json"


def json_depth(value) -> int:
    """How deeply a parsed JSON value nests arrays and objects (iterative: no recursion of its own)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]
    return deepest


def loads_bounded(data: bytes, where: str, max_depth: int = MAX_JSON_DEPTH):
    """Parse untrusted JSON: RecursionError (json's C parser stops at Python's recursion limit) becomes a
    RegistryError, and anything nested deeper than max_depth is refused before a caller walks it."""
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise RegistryError(f"registry index {where} nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise RegistryError(f"registry index {where} is not valid JSON ({reason})") from None
    if json_depth(value) > max_depth:
        raise RegistryError(f"registry index {where} nests deeper than {max_depth} levels")
    return value


def read_index(path: Path, registry: str) -> list[Entry]:
    """Read an index file and check every card against its recorded sha256.

    The embedded index and the last good copies of remote ones (checked by loads_bounded when they
    were downloaded) are parsed directly: this is the path of `zoo list`."""
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"registry index {path} is missing") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise RegistryError(f"registry index {path} is not valid JSON ({type(exc).__name__})") from None
    return entries_from_index(index, registry, str(path))


def index_meta(index: dict, where: str) -> tuple[int | None, datetime | None]:
    """(version, expires) of an index; either may be absent (None)."""
    version, expires = index.get("version"), index.get("expires")
    if version is not None and (type(version) is not int or version < 0):
        raise RegistryError(f"registry index {where}: version must be a non-negative integer, got {str(version)[:40]!r}")
    if expires is None:
        return version, None
    try:
        when = datetime.strptime(str(expires), EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise RegistryError(f"registry index {where}: expires must look like 2027-01-31T00:00:00Z, "
                            f"got {str(expires)[:40]!r}") from None
    return version, when


def entries_from_index(index: object, registry: str, where: str) -> list[Entry]:
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("cards"), list):
        raise RegistryError(f"registry index {where} is malformed (expected format {INDEX_FORMAT} with a 'cards' list)")
    entries = []
    for i, item in enumerate(index["cards"]):
        if not isinstance(item, dict) or not isinstance(item.get("card"), dict) or "id" not in item["card"]:
            raise RegistryError(f"registry index {where}: cards[{i}] is malformed")
        if card_sha256(item["card"]) != item.get("sha256"):
            raise RegistryError(f"registry index {where}: card {item['card']['id']} does not match its sha256",
                                "The index was altered or corrupted; rebuild or re-download it")
        entries.append(Entry(item["card"], registry))
    return entries


def make_index(cards: list[dict], version: int | None = None, expires: datetime | None = None) -> dict:
    """The index of validated cards, in the order given. Without version and expires (an unsigned local
    index) there is no timestamp, so the same cards give the same bytes."""
    index: dict = {"format": INDEX_FORMAT}
    if version is not None:
        index["version"] = version
    if expires is not None:
        index["expires"] = expires.astimezone(timezone.utc).strftime(EXPIRES_FORMAT)
    index["cards"] = [{"id": c["id"], "sha256": card_sha256(c), "card": c} for c in cards]
    return index


def index_bytes(index: dict) -> bytes:
    return (json.dumps(index, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def write_index(index: dict, path: Path) -> None:
    """Write atomically, so a reader never sees half an index."""
    write_bytes_atomic(Path(path), index_bytes(index))
