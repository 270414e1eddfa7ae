"""Derived cards: the cards zoo itself makes (`zoo convert --dequantize`, `zoo quantize`), written and read here.

Each is one JSON file under ZOO_HOME/derived holding an index of one card, validated when written and checked
against its recorded sha256 when read (no pydantic on reading: `zoo list` stays light). The registry lists them
as the registry "derived".
"""
from __future__ import annotations

from pathlib import Path

from zoo import settings
from zoo.errors import RegistryError

REGISTRY = "derived"


def path_of(card_id: str) -> Path:
    """The file of a derived card."""
    return settings.derived_dir() / f"{card_id.replace('/', '_')}.json"


def files() -> list[Path]:
    """Every derived card's file, sorted."""
    directory = settings.derived_dir()
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def save(data: dict) -> dict:
    """Validate a derived card and write it where the registry finds it. Returns the normalised card."""
    from zoo.cards.index import make_index, write_index
    from zoo.cards.schema import validate_card

    path = path_of(data["id"])
    card = validate_card(data, str(path)).model_dump(mode="json", exclude_none=True)
    write_index(make_index([card]), path)
    return card


def entries() -> list:
    """The derived cards as registry entries, each checked against its recorded sha256."""
    from zoo.cards.index import read_index

    found = []
    for path in files():
        try:
            found += read_index(path, REGISTRY)
        except RegistryError as exc:
            raise RegistryError(exc.message, f"Remove {path}, or make it again with `zoo convert ID --dequantize` "
                                             "or `zoo quantize`") from None
    return found
