"""Load cards (embedded index, card directories), resolve ids and aliases, suggest near misses.

The registry is rebuilt from its sources on every call of `load_registry`; nothing
is registered at import time. Cards are plain dicts (the validated card, with
defaults filled in and empty fields left out); lookups return copies.

The embedded index was validated when `zoo registry build` wrote it, and each
card's sha256 is re-checked on load, so the fast path needs no pydantic import.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import CardNotFoundError, InvalidCardError, RegistryError

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


# ---------------------------------------------------------------- index files

def canonical_json(card: dict) -> bytes:
    """The bytes a card's sha256 is computed over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def card_sha256(card: dict) -> str:
    return hashlib.sha256(canonical_json(card)).hexdigest()


def embedded_index_path() -> Path:
    """The index shipped inside the package; in a source checkout, registry/index.json."""
    packaged = Path(__file__).parent / "_embedded" / "index.json"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "registry" / "index.json"


def read_index(path: Path, registry: str) -> list[Entry]:
    """Read an index file and check every card against its recorded sha256."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"registry index {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"registry index {path} is not readable JSON ({exc})") from None
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


# ---------------------------------------------------------------- card files

def card_files(paths: list[Path]) -> list[Path]:
    """Every *.yaml / *.yml file under the given files and directories, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidCardError(f"{path}: no such file or directory", "Give a card file or a directory of cards")
    return found


def read_card_file(path: Path) -> dict:
    """Parse and validate one YAML card; returns the normalised card dict."""
    import yaml

    from .cards import validate_card

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InvalidCardError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidCardError(f"{path}: cannot read ({exc})") from None
    card = validate_card(data, str(path))
    return card.model_dump(mode="json", exclude_none=True)


def lint(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Validate card files; returns (cards, one line per problem naming file and field)."""
    cards, problems, seen = [], [], {}
    for path in card_files(paths):
        try:
            card = read_card_file(path)
        except InvalidCardError as exc:
            problems += getattr(exc, "lines", [exc.message])
            continue
        if card["id"] in seen:
            problems.append(f"{path}: id: {card['id']!r} is also the id of {seen[card['id']]}")
            continue
        if path.parent.name == card["source"] and path.stem != card["id"].split("/", 1)[1]:
            problems.append(f"{path}: id: file name should be {card['id'].split('/', 1)[1]}.yaml to match the id")
        seen[card["id"]] = path
        cards.append(card)
    return cards, problems


def build_index(cards_dir: Path) -> dict:
    """Validate every card under cards_dir and return the index (sorted by id, no timestamps)."""
    cards, problems = lint([cards_dir])
    if problems:
        raise InvalidCardError(f"{len(problems)} problem(s) in {cards_dir}: " + "; ".join(problems[:5]))
    cards.sort(key=lambda c: natural_key(c["id"]))
    return {"format": INDEX_FORMAT, "cards": [{"id": c["id"], "sha256": card_sha256(c), "card": c} for c in cards]}


def write_index(index: dict, path: Path) -> None:
    """Write atomically, so a reader never sees half an index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(index, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------- the registry

def natural_key(text: str) -> list:
    """Sort 'x0_5' before 'x1_5' and '96' before '128'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def alias(card: dict) -> str:
    """The cross-source variant name: mobilenetv2_<width*100>[d][_<resolution> when not 224]."""
    name = f"mobilenetv2_{round(card['width'] * 100):03d}"
    if card.get("depth", 1.0) != 1.0:
        name += "d"
    return name if card["resolution"] == 224 else f"{name}_{card['resolution']}"


class Registry:
    def __init__(self, entries: list[Entry]):
        self._by_id: dict[str, Entry] = {}
        for entry in entries:  # later sources override earlier ones with the same id
            self._by_id[entry.id.lower()] = entry

    def entries(self) -> list[Entry]:
        return sorted((copy.deepcopy(e) for e in self._by_id.values()), key=lambda e: natural_key(e.id))

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

    def resolve(self, ref: str) -> tuple[Entry, str | None]:
        """Find one card for an id, `NAME@source`, alias or upstream name.

        Returns (entry, note); note explains the choice when the reference matched several cards.
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
        ranked = sorted(candidates, key=preference, reverse=True)
        chosen = ranked[0]
        others = ", ".join(e.id for e in ranked[1:6]) + (f" and {len(ranked) - 6} more" if len(ranked) > 6 else "")
        note = (f"{ref} matches {len(ranked)} cards; picked {chosen.id} ({describe_preference(chosen)}). "
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


# ---------------------------------------------------------------- alias preference

def runnable_here(artifact: dict) -> bool:
    """Whether this host can run the artifact: onnxruntime (core), LiteRT and converters when installed."""
    from importlib.util import find_spec

    from .formats import CONVERTIBLE_FORMATS

    if artifact["runtime"] == "litert":
        return find_spec("ai_edge_litert") is not None and artifact["format"] in ("tflite", "tgz")
    if artifact["runtime"] != "onnxruntime":
        return False
    if artifact["format"] in CONVERTIBLE_FORMATS:
        return find_spec("timm") is not None and find_spec("torch") is not None
    return True


def headline(card: dict, metric: str) -> float | None:
    """The card's best claimed value of a metric for its primary (first) artifact."""
    primary = card["artifacts"][0]["file"] if card.get("artifacts") else None
    values = [c["value"] for c in card.get("claims", [])
              if c["metric"] == metric and c.get("artifact") in (None, primary)]
    if not values:
        return None
    return min(values) if metric == "latency_ms" else max(values)


def preference(entry: Entry) -> tuple:
    """Alias rule: runnable here and fully hashed, then runnable, then best hash, then claimed top-1."""
    arts = entry.card.get("artifacts", [])
    runs = any(runnable_here(a) for a in arts)
    verified = any(a.get("sha256") for a in arts)
    hinted = any(a.get("sha256_prefix") or a.get("other_hashes") for a in arts)
    top1 = headline(entry.card, "top1")
    return (runs and verified, runs, verified, hinted, top1 if top1 is not None else -1.0,
            [-ord(ch) for ch in entry.id])


def describe_preference(entry: Entry) -> str:
    runs, verified = any(runnable_here(a) for a in entry.card.get("artifacts", [])), \
        any(a.get("sha256") for a in entry.card.get("artifacts", []))
    top1 = headline(entry.card, "top1")
    parts = ["runs on this host" if runs else "no artifact runs on this host",
             "full sha256" if verified else "no full sha256"]
    parts.append(f"claimed top-1 {top1:g}%" if top1 is not None else "no claimed top-1")
    return ", ".join(parts)


# ---------------------------------------------------------------- loading

def load_registry(extra_dirs: list[Path] | None = None) -> Registry:
    """The embedded cards, then remote registries' last good copies, then ZOO_REGISTRY / extra directories.

    Later sources override earlier ones with the same id.
    """
    from .remote import cached_entries

    entries = read_index(embedded_index_path(), EMBEDDED)
    entries += cached_entries()  # verified when downloaded; read_index re-checks every card's sha256
    dirs = list(settings.registry_dirs()) + list(extra_dirs or [])
    for directory in dirs:
        if not directory.is_dir():
            raise RegistryError(f"registry directory {directory} does not exist",
                                "Check --registry / ZOO_REGISTRY")
        cards, problems = lint([directory])
        if problems:
            raise InvalidCardError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                                   f"Run `zoo cards lint {directory}`")
        entries += [Entry(c, str(directory)) for c in cards]
    return Registry(entries)
