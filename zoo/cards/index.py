"""Registry index files: `{format: 1, cards: [{id, sha256, card}]}`, each card's sha256 over its canonical JSON.

The embedded index was validated when `zoo registry build` wrote it, and each card's sha256 is
re-checked on load, so reading an index needs no pydantic import (the fast path of `zoo list`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import RegistryError
from zoo.files import write_bytes_atomic

INDEX_FORMAT = 1
EMBEDDED = "embedded"


@dataclass(frozen=True)
class Entry:
    """A card and the registry it came from ('embedded', a directory, or a remote registry's name)."""

    card: dict
    registry: str

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


def read_index(path: Path, registry: str) -> list[Entry]:
    """Read an index file and check every card against its recorded sha256."""
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"registry index {path} is missing") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise RegistryError(f"registry index {path} is not readable JSON ({type(exc).__name__})") from None
    return entries_from_index(index, registry, str(path))


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


def make_index(cards: list[dict]) -> dict:
    """The index of validated cards, in the order given (no timestamps: the same cards give the same bytes)."""
    return {"format": INDEX_FORMAT, "cards": [{"id": c["id"], "sha256": card_sha256(c), "card": c} for c in cards]}


def index_bytes(index: dict) -> bytes:
    return (json.dumps(index, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def write_index(index: dict, path: Path) -> None:
    """Write atomically, so a reader never sees half an index."""
    write_bytes_atomic(Path(path), index_bytes(index))
