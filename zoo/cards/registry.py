"""The registry: cards from the embedded index, remote registries and card directories; ids, aliases, wildcards.

The registry is rebuilt from its sources on every call of `load_registry`; nothing is registered at
import time. Cards are plain dicts (the validated card, with defaults filled in and empty fields left
out); lookups return copies.
"""
from __future__ import annotations

import copy
import fnmatch
from pathlib import Path
from typing import Callable

from zoo import settings
from zoo.cards.directory import lint_cached, natural_key
from zoo.cards.index import EMBEDDED, Entry, embedded_index_path, read_index
from zoo.cards.remote import cached_entries
from zoo.errors import CardNotFoundError, InvalidCardError, RegistryError

RunsHere = Callable[[dict], bool]  # artifact -> whether this host can run it (zoo.artifacts.choose.runs_here)


def alias(card: dict) -> str:
    """The cross-source variant name: mobilenetv2_<width*100>[d][_<resolution> when not 224]."""
    name = f"mobilenetv2_{round(card['width'] * 100):03d}"
    if card.get("depth", 1.0) != 1.0:
        name += "d"
    return name if card["resolution"] == 224 else f"{name}_{card['resolution']}"


def headline(card: dict, metric: str) -> float | None:
    """The card's best claimed value of a metric for its primary (first) artifact."""
    primary = card["artifacts"][0]["file"] if card.get("artifacts") else None
    values = [c["value"] for c in card.get("claims", [])
              if c["metric"] == metric and c.get("artifact") in (None, primary)]
    if not values:
        return None
    return min(values) if metric == "latency_ms" else max(values)


class Registry:
    def __init__(self, entries: list[Entry]):
        self._by_id: dict[str, Entry] = {}
        for entry in entries:  # later sources override earlier ones with the same id
            self._by_id[entry.id.lower()] = entry

    def entries(self, copy_cards: bool = True) -> list[Entry]:
        """Every card in natural id order; copy_cards=False shares the registry's dicts with read-only callers."""
        entries = sorted(self._by_id.values(), key=lambda e: natural_key(e.id))
        return copy.deepcopy(entries) if copy_cards else entries

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, pattern: str | None = None, *, source: str | None = None, width: float | None = None,
             resolution: int | None = None, fmt: str | None = None, copy_cards: bool = True) -> list[Entry]:
        """Cards matching a wildcard on id, alias or upstream name, and the given filters.

        copy_cards=False returns the registry's own dicts, for read-only callers on the fast path.
        """
        out = []
        for entry in sorted(self._by_id.values(), key=lambda e: natural_key(e.id)):
            card = entry.card
            if pattern and not _matches(pattern, card):
                continue
            if source and card["source"] != source.lower():
                continue
            if width is not None and abs(card["width"] - width) > 1e-6:
                continue
            if resolution is not None and card["resolution"] != resolution:
                continue
            if fmt and not any(a["format"] == fmt for a in card.get("artifacts", [])):
                continue
            out.append(entry)
        return copy.deepcopy(out) if copy_cards else out

    def resolve(self, ref: str, runs_here: RunsHere | None = None) -> tuple[Entry, str | None]:
        """Find one card for an id, `NAME@source`, alias or upstream name.

        Returns (entry, note); note explains the choice when the reference matched several cards.
        `runs_here` lets the alias rule prefer cards this host can run (without it, none is preferred).
        """
        ref = ref.strip()
        if ref.lower() in self._by_id:
            return copy.deepcopy(self._by_id[ref.lower()]), None
        pool = list(self._by_id.values())
        name = ref
        if "@" in ref:
            name, source = ref.rsplit("@", 1)
            pool = [e for e in pool if e.card["source"] == source.lower()]
            if not pool:
                sources = sorted({e.card["source"] for e in self._by_id.values()})
                raise CardNotFoundError(f"no source {source!r} in the registry",
                                        f"Sources are: {', '.join(sources)}")
        key = name.lower()
        candidates = [e for e in pool if key in _names(e.card)]
        if not candidates:
            raise CardNotFoundError(f"no card matches {ref!r}", self.suggest(ref))
        if len(candidates) == 1:
            return copy.deepcopy(candidates[0]), None
        runs = runs_here or (lambda artifact: False)
        ranked = sorted(candidates, key=lambda e: preference(e, runs), reverse=True)
        chosen = ranked[0]
        others = ", ".join(e.id for e in ranked[1:6]) + (f" and {len(ranked) - 6} more" if len(ranked) > 6 else "")
        note = (f"{ref} matches {len(ranked)} cards; picked {chosen.id} ({describe_preference(chosen, runs)}). "
                f"Others: {others}. Pin one with its full id or {name}@SOURCE.")
        return copy.deepcopy(chosen), note

    def suggest(self, ref: str) -> str:
        import difflib

        words = set()
        for entry in self._by_id.values():
            words |= {entry.id, alias(entry.card)}
        close = difflib.get_close_matches(ref, sorted(words), n=3, cutoff=0.6)
        if close:
            return "Did you mean " + " or ".join(repr(c) for c in close) + "? Run `zoo list` to see every card"
        return "Run `zoo list` to see every card"


def _names(card: dict) -> set[str]:
    short = card["id"].split("/", 1)[1]
    names = {card["id"].lower(), short.lower(), card["name"].lower(), alias(card).lower()}
    if card["resolution"] == 224:
        names.add(f"{alias(card)}_224".lower())
    return names


def _matches(pattern: str, card: dict) -> bool:
    pattern = pattern.lower()
    if not any(ch in pattern for ch in "*?["):
        return pattern in _names(card)
    return any(fnmatch.fnmatchcase(n, pattern) for n in _names(card))


# ---------------------------------------------------------------- the alias rule

def preference(entry: Entry, runs_here: RunsHere) -> tuple:
    """Alias rule: a published card before a derived one, runnable here and fully hashed, then runnable, then
    best hash, then claimed top-1, then id."""
    arts = entry.card.get("artifacts", [])
    runs = any(runs_here(a) for a in arts)
    verified = any(a.get("sha256") for a in arts)
    hinted = any(a.get("sha256_prefix") or a.get("other_hashes") for a in arts)
    top1 = headline(entry.card, "top1")
    return (not entry.card.get("derived_from"), runs and verified, runs, verified, hinted, top1 if top1 is not None else -1.0,
            [-ord(ch) for ch in entry.id])


def describe_preference(entry: Entry, runs_here: RunsHere) -> str:
    arts = entry.card.get("artifacts", [])
    runs, verified = any(runs_here(a) for a in arts), any(a.get("sha256") for a in arts)
    top1 = headline(entry.card, "top1")
    parts = ["runs on this host" if runs else "no artifact runs on this host",
             "full sha256" if verified else "no full sha256"]
    parts.append(f"claimed top-1 {top1:g}%" if top1 is not None else "no claimed top-1")
    return ", ".join(parts)


# ---------------------------------------------------------------- loading

DERIVED = "derived"


def derived_entries() -> list[Entry]:
    """The cards `zoo convert --dequantize` made (ZOO_HOME/derived/*.json): each file an index of one card,
    validated when written and checked against its recorded sha256 when read (no pydantic: `zoo list` stays
    light)."""
    directory = settings.derived_dir()
    entries = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            entries += read_index(path, DERIVED)
        except RegistryError as exc:
            raise RegistryError(exc.message, f"Remove {path}, or make it again with `zoo convert ID --dequantize`") from None
    return entries


def load_registry(extra_dirs: list[Path] | None = None) -> Registry:
    """The embedded cards, then remote registries' last good copies, then derived cards (ZOO_HOME/derived), then
    ZOO_REGISTRY / extra directories.

    Later sources override earlier ones with the same id.
    """
    entries = read_index(embedded_index_path(), EMBEDDED)
    entries += cached_entries()  # verified when downloaded; read_index re-checks every card's sha256
    entries += derived_entries()
    dirs = list(settings.registry_dirs()) + list(extra_dirs or [])
    for directory in dirs:
        if not directory.is_dir():
            raise RegistryError(f"registry directory {directory} does not exist",
                                "Check --registry / ZOO_REGISTRY")
        cards, problems = lint_cached(directory)
        if problems:
            raise InvalidCardError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                                   f"Run `zoo cards lint {directory}`")
        entries += [Entry(c, str(directory)) for c in cards]
    return Registry(entries)
