"""The registry: cards from the embedded index, remote registries and card directories; ids, aliases, wildcards.

The registry is rebuilt from its sources on every call of `load_registry` (through the SQLite catalog of
zoo.cards.catalog, which is only rebuilt when a source changed); nothing is registered at import time.
Cards are plain dicts (the validated card, with defaults filled in and empty fields left out); every
lookup parses fresh ones, so callers may change what they get.
"""
from __future__ import annotations

import fnmatch
import json
import sqlite3
from pathlib import Path
from typing import Callable

from zoo import settings
from zoo.cards import catalog, derived
from zoo.cards.directory import lint_cached, stamp as directory_stamp
from zoo.cards.index import EMBEDDED, Entry, embedded_index_path, read_index
from zoo.cards.remote import cached_sources
from zoo.cards.summary import alias, headline, names  # noqa: F401 -- alias and headline: re-exported
from zoo.errors import CardNotFoundError, InvalidCardError, RegistryError, ZooError

RunsHere = Callable[[dict], bool]  # artifact -> whether this host can run it (zoo.measure.choose.runs_here)


def _healing(method):
    """A catalog file damaged after it was built (a bad page, a row that is not JSON, a missing table) is rebuilt
    from the registry's sources once, with a warning, and the call made again."""
    import functools

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ZooError:
            raise
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            if self._rebuild is None:
                raise RegistryError(f"the card catalog under {settings.catalog_dir()} is damaged ({exc})",
                                    f"Delete {settings.catalog_dir()}: it is rebuilt on the next command") from None
            import warnings

            rebuild, self._rebuild = self._rebuild, None
            self._db.close()
            self._db = rebuild()
            warnings.warn(f"the card catalog under {settings.catalog_dir()} was damaged "
                          f"({type(exc).__name__}); it was rebuilt from the cards")
            return method(self, *args, **kwargs)

    return call


class Registry:
    """Cards in natural id order, looked up in a catalog (an SQLite connection; from entries: built in memory).
    `rebuild`: how to make the catalog again from its sources, should the file turn out damaged."""

    def __init__(self, entries: list[Entry] | sqlite3.Connection, rebuild: Callable | None = None,
                 path: Path | None = None):
        self._db = entries if isinstance(entries, sqlite3.Connection) else catalog.in_memory(entries)
        self._rebuild = rebuild
        self.path = path  # the catalog file (None: in memory)

    def _query(self, sql: str, args=()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    @_healing
    def entries(self) -> list[Entry]:
        """Every card in natural id order."""
        return self.at(None)

    @_healing
    def ids(self) -> list[str]:
        return [row[0] for row in self._query("SELECT id FROM cards ORDER BY pos")]

    @_healing
    def __len__(self) -> int:
        return self._query("SELECT count(*) FROM cards").fetchone()[0]

    def _matching(self, pattern, source, width, resolution, fmt) -> list[int] | None:
        """Positions of the cards matching a wildcard on their names and the given filters (None: every card)."""
        if not (pattern or source or width is not None or resolution is not None or fmt):
            return None
        clauses, args = [], []
        if source:
            clauses.append("source = ?")
            args.append(source.lower())
        if width is not None:
            clauses.append("abs(width - ?) <= 1e-6")
            args.append(width)
        if resolution is not None:
            clauses.append("resolution = ?")
            args.append(resolution)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._query(f"SELECT pos, names, formats FROM cards {where} ORDER BY pos", args).fetchall()
        if fmt:
            rows = [row for row in rows if fmt in json.loads(row[2])]
        if not pattern:
            return [row[0] for row in rows]
        pattern = pattern.lower()
        wild = any(ch in pattern for ch in "*?[")
        return [pos for pos, card_names, _ in rows
                if (fnmatch.filter(json.loads(card_names), pattern) if wild else pattern in json.loads(card_names))]

    def _at(self, column: str, positions: list[int] | None) -> list[tuple]:
        """(column, registry, shadowed) of the cards at these positions (None: every card), in their order."""
        if positions is None:
            return self._query(f"SELECT {column}, registry, shadowed FROM cards ORDER BY pos").fetchall()
        found = {}
        for start in range(0, len(positions), 900):  # SQLite caps the number of ? in one statement
            chunk = positions[start:start + 900]
            found.update((row[0], row[1:]) for row in self._query(
                f"SELECT pos, {column}, registry, shadowed FROM cards WHERE pos IN ({','.join('?' * len(chunk))})",
                chunk))
        return [found[pos] for pos in positions]

    @_healing
    def find(self, pattern: str | None = None, *, source: str | None = None, width: float | None = None,
             resolution: int | None = None, fmt: str | None = None) -> list[Entry]:
        """Cards matching a wildcard on id, alias or upstream name, and the given filters."""
        return self.at(self._matching(pattern, source, width, resolution, fmt))

    @_healing
    def positions(self, patterns: list[str] | None) -> list[int] | None:
        """Where the cards matching any of the wildcards are (None: no patterns, every card); a pattern that
        matches nothing is a CardNotFoundError."""
        if not patterns:
            return None
        out: dict[int, None] = {}
        for pattern in patterns:
            found = self._matching(pattern, None, None, None, None)
            if not found:
                raise CardNotFoundError(f"no card matches {pattern!r}", self.suggest(pattern))
            out.update(dict.fromkeys(found))
        return list(out)

    @_healing
    def at(self, positions: list[int] | None) -> list[Entry]:
        """The cards at these positions (None: every card), in that order."""
        return [_entry(*row) for row in self._at("card", positions)]

    @_healing
    def table(self, positions: list[int] | None = None) -> catalog.CardTable:
        """What a comparison reads of the cards at these positions (None: every card), in natural id order,
        without parsing a card (zoo.cards.catalog.CardTable)."""
        data = dict(self._query("SELECT name, data FROM columns"))
        table = catalog.CardTable(json.loads(data["cards"]), json.loads(data["claims"]), json.loads(data["artifacts"]))
        return table if positions is None else table.at(positions)

    @_healing
    def summaries(self, pattern: str | None = None, *, source: str | None = None, width: float | None = None,
                  resolution: int | None = None, fmt: str | None = None, brief: bool = False) -> list[dict]:
        """The `zoo list --json` records of the cards find() would return, without parsing the cards; brief: only
        what a `zoo list` table shows (zoo.cards.summary.brief)."""
        positions = self._matching(pattern, source, width, resolution, fmt)
        if not brief:
            return [json.loads(record) for record, *_ in self._at("summary", positions)]
        columns = json.loads(self._query("SELECT data FROM columns WHERE name = 'brief'").fetchone()[0])
        records = [dict(zip(catalog.BRIEF_COLUMNS, values)) for values in zip(*columns.values())]
        return records if positions is None else [records[pos] for pos in positions]

    @_healing
    def resolve(self, ref: str, runs_here: RunsHere | None = None) -> tuple[Entry, str | None]:
        """Find one card for an id, `NAME@source`, alias or upstream name.

        Returns (entry, note); note explains the choice when the reference matched several cards.
        `runs_here` lets the alias rule prefer cards this host can run (without it, none is preferred).
        """
        ref = ref.strip()
        exact = self._query("SELECT card, registry, shadowed FROM cards WHERE key = ?", (ref.lower(),)).fetchone()
        if exact:
            return _entry(*exact), None
        name, source = ref, None
        if "@" in ref:
            name, source = ref.rsplit("@", 1)
            if not self._query("SELECT 1 FROM cards WHERE source = ? LIMIT 1", (source.lower(),)).fetchone():
                sources = [row[0] for row in self._query("SELECT DISTINCT source FROM cards ORDER BY source")]
                raise CardNotFoundError(f"no source {source!r} in the registry",
                                        f"Sources are: {', '.join(sources)}")
        key = name.lower()
        if any(ch in key for ch in "*?["):
            candidates = []  # a wildcard is a pattern for find(), never a name
        else:
            candidates = [_entry(*row) for row in self._at("card", self._matching(key, source, None, None, None))]
        if not candidates:
            raise CardNotFoundError(f"no card matches {ref!r}", self.suggest(ref))
        if len(candidates) == 1:
            return candidates[0], None
        runs = runs_here or (lambda artifact: False)
        ranked = sorted(candidates, key=lambda e: preference(e, runs), reverse=True)
        chosen = ranked[0]
        others = ", ".join(e.id for e in ranked[1:6]) + (f" and {len(ranked) - 6} more" if len(ranked) > 6 else "")
        note = (f"{ref} matches {len(ranked)} cards; picked {chosen.id} ({describe_preference(chosen, runs)}). "
                f"Others: {others}. Pin one with its full id or {name}@SOURCE.")
        return chosen, note

    @_healing
    def suggest(self, ref: str) -> str:
        import difflib

        words = set()
        for card_id, card_alias in self._query("SELECT id, alias FROM cards"):
            words |= {card_id, card_alias}
        close = difflib.get_close_matches(ref, sorted(words), n=3, cutoff=0.6)
        if close:
            return "Did you mean " + " or ".join(repr(c) for c in close) + "? Run `zoo list` to see every card"
        return "Run `zoo list` to see every card"


def _entry(card: str, registry: str, shadowed: str) -> Entry:
    return Entry(json.loads(card), registry, tuple(json.loads(shadowed)))


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

DERIVED = derived.REGISTRY


# ---------------------------------------------------------------- which card an id means

# When several sources publish a card with one id, the card of the highest-ranked source is used; between sources
# of one rank, the one listed first (remote registries in the order they were added, card directories in the
# order given). Only a choice the user made outranks what was there: a card directory named with --registry or
# ZOO_REGISTRY, a card made by `zoo convert --dequantize`, a registry added with --override. Without one, an
# embedded card outranks every remote registry's, and a signed registry's outranks an unsigned one's: a
# registry never replaces another source's card unasked. Every card not used is named on the card used
# (Entry.shadowed), and `zoo list` and `zoo show` say so.
RANKS = {"unsigned": 0, "signed": 1, EMBEDDED: 2, "override": 3, DERIVED: 4, "directory": 5}
CHOSEN = ("override", DERIVED, "directory")  # ranks the user chose


def _source(registry: str, kind: str) -> str:
    return {EMBEDDED: "the embedded registry", "signed": f"registry {registry} (signed)",
            "unsigned": f"registry {registry} (unsigned)", "override": f"registry {registry} (added with --override)",
            DERIVED: "your derived cards (zoo convert --dequantize)",
            "directory": f"the card directory {registry} (--registry or ZOO_REGISTRY)"}[kind]


def _why(loser: tuple[str, str], winner: tuple[str, str]) -> str:
    """Why the card of source `loser` (registry, kind) is not used where `winner`'s is."""
    (lose, lose_kind), (win, win_kind) = loser, winner
    if RANKS[win_kind] > RANKS[lose_kind] and win_kind in CHOSEN:
        return f"replaced by the card from {_source(win, win_kind)}"
    if RANKS[win_kind] > RANKS[lose_kind]:
        why = f"{_source(lose, lose_kind)} may not replace a card from {_source(win, win_kind)}"
    else:
        why = f"{_source(win, win_kind)} was {'named' if win_kind == 'directory' else 'added'} first"
    if lose_kind in ("signed", "unsigned", "override"):
        why += f"; to prefer {lose}'s cards: zoo registry add {lose} URL --override"
    return "not used: " + why


def merged(sources: list[tuple[str, str, list[Entry]]]) -> list[Entry]:
    """One card per id (case-insensitive) from (registry, kind, entries) sources, kind a key of RANKS: see above.
    A card that another source also publishes, in other words, carries each such source and why in `shadowed`."""
    chosen: dict[str, tuple] = {}
    losers: dict[str, list[tuple]] = {}
    for order, (registry, kind, entries) in enumerate(sources):
        for entry in entries:
            key, candidate = entry.id.lower(), (RANKS[kind], -order, entry, kind)
            best = chosen.get(key)
            if best is not None and best[:2] > candidate[:2]:
                losers.setdefault(key, []).append(candidate)
                continue
            if best is not None:
                losers.setdefault(key, []).append(best)
            chosen[key] = candidate
    out = []
    for key, (_, _, entry, kind) in chosen.items():
        shadowed = tuple({"registry": lost.registry, "reason": _why((lost.registry, lost_kind), (entry.registry, kind))}
                         for _, _, lost, lost_kind in losers.get(key, []) if lost.card != entry.card)
        out.append(Entry(entry.card, entry.registry, shadowed) if shadowed else entry)
    return out


def load_registry(extra_dirs: list[Path] | None = None) -> Registry:
    """The embedded cards, remote registries' last good copies, derived cards (ZOO_HOME/derived), and ZOO_REGISTRY /
    extra directories, one card per id (merged: a source replaces another's card only where the user chose it).

    The merged cards are kept in a catalog under ZOO_HOME/catalog, one per list of directories, and read from
    sources (each card verified) only when the stamp of those sources changed.
    """
    import hashlib

    dirs = [Path(d) for d in list(settings.registry_dirs()) + list(extra_dirs or [])]
    for directory in dirs:
        if not directory.is_dir():
            raise RegistryError(f"registry directory {directory} does not exist",
                                "Check --registry / ZOO_REGISTRY")
    dirs = [d.resolve() for d in dirs]
    made = derived.files()
    remotes = cached_sources()
    stamp = hashlib.sha256()
    for path in [embedded_index_path()] + [path for _, path, _ in remotes] + made:
        status = path.stat()
        stamp.update(f"{path}\t{status.st_size}\t{status.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    stamp.update(json.dumps([(name, kind) for name, _, kind in remotes]).encode())  # trust and order rank cards
    for directory in dirs:
        stamp.update(f"{directory}\t{directory_stamp(directory)}\n".encode("utf-8", "surrogateescape"))

    def load() -> list[Entry]:
        sources = [(EMBEDDED, EMBEDDED, read_index(embedded_index_path(), EMBEDDED))]
        # verified when downloaded; read_index re-checks every card's sha256
        sources += [(name, kind, read_index(path, name)) for name, path, kind in remotes]
        sources.append((DERIVED, DERIVED, derived.entries()))
        for directory in dirs:
            cards, problems = lint_cached(directory)
            if problems:
                raise InvalidCardError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                                       f"Run `zoo cards lint {directory}`")
            sources.append((str(directory), "directory", [Entry(c, str(directory)) for c in cards]))
        return merged(sources)

    which = hashlib.sha256("\n".join(map(str, dirs)).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    path = settings.catalog_dir() / f"{which}.sqlite"
    return Registry(catalog.open_catalog(path, stamp.hexdigest(), load),
                    rebuild=lambda: catalog.open_catalog(path, stamp.hexdigest(), load, fresh=True), path=path)
