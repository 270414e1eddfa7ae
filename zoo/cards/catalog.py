"""The merged registry as one SQLite file, so that `zoo list` on 10,000 cards reads rows, not cards.

A catalog holds every card once (the one zoo.cards.registry.merged chose among sources that share an id), in
natural id order, with what lookups need as columns: the names a card answers to, its source, width,
resolution and artifact formats, its `zoo list` record and the whole card as JSON; and, column by
column, what a `zoo list` table shows and what a comparison reads (a CardTable: headline claims,
complexity, every claim, every artifact). load_registry keeps one file per set of card directories
under ZOO_HOME/catalog and rebuilds it, verifying every card as before, whenever the stamp of its
sources (each file's path, size and mtime, and zoo's version) changes. A catalog that cannot be
written (read-only ZOO_HOME) is built in memory instead.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from zoo.cards.directory import natural_key
from zoo.cards.index import Entry
from zoo.cards.summary import BRIEF_KEYS, brief, headline, names, summarize

FORMAT = 7  # bump when the tables change: older files are then rebuilt

SCHEMA = """
CREATE TABLE meta (stamp TEXT NOT NULL);
CREATE TABLE cards (
    pos INTEGER PRIMARY KEY,      -- natural id order
    key TEXT NOT NULL UNIQUE,     -- the id, lower-case
    id TEXT NOT NULL,
    registry TEXT NOT NULL,
    source TEXT NOT NULL,
    alias TEXT NOT NULL,
    width REAL NOT NULL,
    resolution INTEGER NOT NULL,
    formats TEXT NOT NULL,        -- JSON list of the artifacts' formats
    names TEXT NOT NULL,          -- JSON list of its lower-case names (id, short id, upstream name, alias)
    summary TEXT NOT NULL,        -- the `zoo list --json` record
    card TEXT NOT NULL,
    shadowed TEXT NOT NULL        -- JSON list: other sources' cards with this id, not used (Entry.shadowed)
);
-- Every card's brief `zoo list` record and its CardTable, column by column, as JSON: one parse for 10,000 cards.
CREATE TABLE columns (name TEXT PRIMARY KEY, data TEXT NOT NULL);
"""
# What a comparison reads of each card (CardTable). `pos` is the card's position, `n` an item's place in its card.
CARD_COLUMNS = ("pos", "id", "source", "width", "resolution", "top1", "top5", "params", "macs", "reported_flops_g",
                "flops_convention", "artifact_file", "size_bytes", "derived_from")
CLAIM_COLUMNS = ("pos", "id", "metric", "value", "device", "batch", "precision", "runtime", "threads", "reference",
                 "artifact")
ARTIFACT_COLUMNS = ("pos", "id", "file", "sha256", "precision")
BRIEF_COLUMNS = (*BRIEF_KEYS, "artifacts")  # summary.brief, every card's in one column each


@dataclass
class CardTable:
    """What a comparison reads of a set of cards, column by column (CARD_COLUMNS; CLAIM_COLUMNS, one value per
    claim; ARTIFACT_COLUMNS, one per artifact, each card's in its order): 10,000 cards in one JSON parse, no card
    parsed. derived_from is the card's derived_from (or None)."""

    cards: dict[str, list]
    claims: dict[str, list]
    artifacts: dict[str, list]

    @classmethod
    def of(cls, entries: list[Entry]) -> "CardTable":
        rows = [_facts(pos, e.card) for pos, e in enumerate(entries)]
        return cls(_columns([r[0] for r in rows], CARD_COLUMNS), _columns([c for r in rows for c in r[1]], CLAIM_COLUMNS),
                   _columns([a for r in rows for a in r[2]], ARTIFACT_COLUMNS))

    @cached_property
    def precisions(self) -> dict[tuple[str, str], str | None]:
        """(card id, artifact file) -> that artifact's precision (built once: selection and ranking both ask)."""
        return dict(zip(zip(self.artifacts["id"], self.artifacts["file"]), self.artifacts["precision"]))

    def at(self, positions: list[int]) -> "CardTable":
        """The part of the table about the cards at these positions."""
        wanted = set(positions)

        def keep(columns: dict[str, list]) -> dict[str, list]:
            rows = [i for i, pos in enumerate(columns["pos"]) if pos in wanted]
            return {name: [values[i] for i in rows] for name, values in columns.items()}

        return CardTable(keep(self.cards), keep(self.claims), keep(self.artifacts))


def _columns(rows: list[tuple], names: tuple) -> dict[str, list]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def _facts(pos: int, card: dict) -> tuple[tuple, list[tuple], list[tuple]]:
    """(card row, claim rows, artifact rows) of one card, as CardTable holds them."""
    complexity, artifacts = card.get("complexity", {}), card.get("artifacts", [])
    row = (pos, card["id"], card["source"], card["width"], card["resolution"], headline(card, "top1"),
           headline(card, "top5"), complexity.get("params"), complexity.get("macs"), complexity.get("reported_flops_g"),
           complexity.get("flops_convention"), artifacts[0]["file"] if artifacts else None,
           artifacts[0].get("size_bytes") if artifacts else None, card.get("derived_from"))
    claims = [(pos, card["id"], c["metric"], c["value"], c.get("device"), c.get("batch"), c.get("precision"),
               c.get("runtime"), c.get("threads"), c.get("reference"), c.get("artifact")) for c in card.get("claims", [])]
    files = [(pos, card["id"], a["file"], a.get("sha256"), a.get("precision")) for a in artifacts]
    return row, claims, files


def _merged(entries: list[Entry]) -> list[Entry]:
    by_key: dict[str, Entry] = {}
    for entry in entries:  # one card per id: load_registry chose it (registry.merged); here, the last one given
        by_key[entry.id.lower()] = entry
    return sorted(by_key.values(), key=lambda e: natural_key(e.id))


def _fill(db: sqlite3.Connection, entries: list[Entry], stamp: str) -> None:
    db.executescript(SCHEMA)
    db.execute("INSERT INTO meta VALUES (?)", (stamp,))
    dump = lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    merged = _merged(entries)
    rows, briefs = [], []
    for pos, e in enumerate(merged):
        summary = summarize(e)
        rows.append((pos, e.id.lower(), e.id, e.registry, e.card["source"], summary["alias"], e.card["width"],
                     e.card["resolution"], dump([a["format"] for a in e.card.get("artifacts", [])]),
                     dump(sorted(names(e.card))), dump(summary), dump(e.card), dump(list(e.shadowed))))
        briefs.append(brief(summary))
    db.executemany(f"INSERT INTO cards VALUES ({','.join('?' * 13)})", rows)
    table = CardTable.of(merged)
    db.executemany("INSERT INTO columns VALUES (?, ?)",
                   [("cards", dump(table.cards)), ("claims", dump(table.claims)), ("artifacts", dump(table.artifacts)),
                    ("brief", dump({key: [b[key] for b in briefs] for key in BRIEF_COLUMNS}))])
    db.commit()


def in_memory(entries: list[Entry]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    _fill(db, entries, "")
    return db


def _opened(path: Path, stamp: str) -> sqlite3.Connection | None:
    """The catalog at path, read-only, when it was built from sources with this stamp; else None."""
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT stamp FROM meta").fetchone()
        if row and row[0] == stamp:
            return db
    except sqlite3.Error:  # missing, half-written by a crash elsewhere, or not a catalog: rebuilt
        pass
    db.close()
    return None


def open_catalog(path: Path, stamp: str, load, *, fresh: bool = False) -> sqlite3.Connection:
    """The catalog at path when it was built from sources with this stamp (unless `fresh`: it was found damaged);
    otherwise `load()` (the entries, verified) written to a new file that replaces it atomically, so a concurrent
    reader keeps the old one."""
    import os
    import tempfile

    stamp, path = f"{FORMAT}:{stamp}", Path(path).absolute()  # a relative ZOO_HOME has no file: URI
    db = None if fresh else _opened(path, stamp)
    if db is not None:
        return db
    entries = load()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".sqlite")
        os.close(fd)
        try:
            db = sqlite3.connect(tmp)
            _fill(db, entries, stamp)
            db.close()
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, sqlite3.Error):
        db = sqlite3.connect(":memory:")  # a read-only ZOO_HOME costs every call its build, nothing else
        _fill(db, entries, stamp)
        return db
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
