"""The SQLite results store under ZOO_HOME: every eval and bench run (a records.Run), with what produced it.

One table of runs: the card, the artifact's sha256, the runtime and its version, provider, threads,
batch, the preprocessing, the dataset fingerprint (eval), the machine and its fingerprint, the zoo
version and a UTC timestamp; the measured figures live in `metrics` (JSON), so bench runs (latency)
and eval runs (accuracy) share the table. The schema grows by numbered, append-only migrations
tracked in PRAGMA user_version.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from zoo import settings
from zoo.errors import UsageError
from zoo.results.records import KINDS, Run, canonical_json

MIGRATIONS = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('eval', 'bench')),
        card_id TEXT NOT NULL,
        artifact_file TEXT,
        artifact_sha256 TEXT NOT NULL,
        runtime TEXT NOT NULL,
        runtime_version TEXT NOT NULL,
        provider TEXT,
        threads INTEGER,
        batch INTEGER,
        preprocess TEXT,
        dataset_fingerprint TEXT,
        dataset TEXT,
        device TEXT NOT NULL,
        machine_fingerprint TEXT NOT NULL,
        machine TEXT NOT NULL,
        zoo_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        metrics TEXT NOT NULL
    );
    CREATE INDEX runs_card ON runs (card_id, kind, created_at);
    """,
    "ALTER TABLE runs ADD COLUMN settings TEXT",
    # The precision of the file that ran (older runs: NULL, read from the card's artifact where one matches).
    "ALTER TABLE runs ADD COLUMN precision TEXT",
    # Every run has settings: runs the facade stored without them get what is known, marked `migrated` so that
    # they are listed and ranked but never reused for a new measurement (which options made them is unknown).
    # The int8-against-float figures get one name per kind (an eval's is a McNemar test, a bench's a speed ratio).
    """
    UPDATE runs SET settings = CASE kind
        WHEN 'eval' THEN json_object('migrated', json('true'), 'provider', provider, 'preprocess', json(preprocess))
        ELSE json_object('migrated', json('true'), 'provider', provider, 'threads', threads, 'batch', batch) END
      WHERE settings IS NULL;
    UPDATE runs SET metrics = json_remove(json_set(metrics, '$.accuracy_vs_float',
                                                   json(json_extract(metrics, '$.versus_float'))), '$.versus_float')
      WHERE kind = 'eval' AND json_type(metrics, '$.versus_float') = 'object';
    UPDATE runs SET metrics = json_remove(json_set(metrics, '$.speed_vs_float',
                                                   json(json_extract(metrics, '$.versus_float'))), '$.versus_float')
      WHERE kind = 'bench' AND json_type(metrics, '$.versus_float') = 'object';
    """,
)


def store_path() -> Path:
    return settings.results_store()


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the store; callers close it."""
    path = Path(path) if path else store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with db:
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return db


def record(run: Run, path: Path | None = None) -> int:
    """Append one run in one transaction; returns its id."""
    row = run.to_row()
    with closing(connect(path)) as db, db:
        cursor = db.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values()))
        run.id = cursor.lastrowid
        return run.id


def find_run(kind: str, card_id: str, *, artifact_sha256: str, runtime: str, runtime_version: str | None,
             settings: dict, dataset_fingerprint: str | None = None, machine_fingerprint: str | None = None,
             path: Path | None = None) -> Run | None:
    """The newest stored run measured the same way (None: none, or no store yet). runtime_version and
    machine_fingerprint None match any."""
    path = Path(path) if path else store_path()
    if not path.exists():
        return None
    sql = ("SELECT * FROM runs WHERE kind = ? AND card_id = ? AND artifact_sha256 = ? AND runtime = ? "
           "AND settings = ?")
    args = [kind, card_id, artifact_sha256, runtime, canonical_json(settings)]
    for column, value in (("runtime_version", runtime_version), ("dataset_fingerprint", dataset_fingerprint),
                          ("machine_fingerprint", machine_fingerprint)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    with closing(connect(path)) as db:
        row = db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
    return Run.from_row(row) if row else None


def list_runs(*, kind: str | None = None, card_id: str | None = None, limit: int | None = None,
              path: Path | None = None) -> list[Run]:
    """Stored runs, newest first. An absent store has no runs (and is not created)."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path) if path else store_path()
    if not path.exists():
        return []
    where, args = [], []
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if card_id:
        where.append("card_id = ?")
        args.append(card_id)
    sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    with closing(connect(path)) as db:
        return [Run.from_row(r) for r in db.execute(sql, args)]
