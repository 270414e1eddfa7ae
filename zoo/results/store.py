"""The SQLite results store under ZOO_HOME: every eval and bench run (a records.Run), with what produced it.

One table of runs: the card, the artifact's sha256, the runtime and its version, provider, threads,
batch, the preprocessing, the dataset fingerprint (eval), the machine and its fingerprint, the zoo
version and a UTC timestamp; the measured figures live in `metrics` (JSON), so bench runs (latency)
and eval runs (accuracy) share the table. The schema grows by numbered, append-only migrations
tracked in PRAGMA user_version.

A finished run is never dropped: when the store cannot take it (a full disk, locked by another process past
ZOO_STORE_WAIT, not writable), it is kept as a JSON file (ZOO_HOME/pending-runs, else the temporary folder)
that the next command opening the store imports, and RunNotStored says where. A store that is not SQLite, is
locked or is damaged is one StorageError naming it and the fix; rows whose JSON is damaged are left out with
one warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import uuid
import warnings
from contextlib import closing
from pathlib import Path

from zoo import settings
from zoo.errors import RunNotStored, StorageError, UsageError
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


def _failure(exc: sqlite3.Error, path: Path) -> StorageError:
    """One line for what SQLite said about the store: locked, not a store (or damaged), or not writable."""
    name, text = getattr(exc, "sqlite_errorname", ""), str(exc)
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in text:
        return StorageError(f"the results store {path} is locked by another process (waited "
                            f"{settings.store_wait_s():g} s)",
                            f"Try again when it is done, or set {settings.ENV_STORE_WAIT} to wait longer")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
        return StorageError(f"the results store {path} is not a zoo results store or is damaged ({text})",
                            f"Move it aside (mv {path} {path}.bad): a new store is made on the next run")
    return StorageError(f"cannot write the results store {path} ({text})",
                        "Free space there and check its permissions, then run the command again")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations this store lacks, one process at a time (two first runs at once would both create
    the table)."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    from filelock import FileLock

    with FileLock(str(path) + ".lock", timeout=settings.store_wait_s()):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with db:
                db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the store; callers close it. Runs kept while the store could not
    take them are imported first (best effort: they stay kept until it can)."""
    from filelock import Timeout

    path = Path(path) if path else store_path()
    db = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=settings.store_wait_s())
        db.row_factory = sqlite3.Row
        _migrate(db, path)
    except (sqlite3.Error, Timeout) as exc:
        if db is not None:
            db.close()
        raise _failure(exc if isinstance(exc, sqlite3.Error) else sqlite3.OperationalError("database is locked"),
                       path) from None
    except OSError as exc:
        if db is not None:
            db.close()
        from zoo.files import storage_error

        raise storage_error(exc, path) from None
    _import_pending(db, path)
    return db


def _insert(db: sqlite3.Connection, rows: list[dict]) -> list[int | None]:
    """Insert rows in one transaction; a row already stored (a kept run imported twice) is not inserted again
    (its id: None)."""
    ids = []
    db.execute("BEGIN IMMEDIATE")  # the duplicate check and the insert see the same store
    try:
        for row in rows:
            if row.get("_kept") and db.execute(
                    "SELECT 1 FROM runs WHERE kind = ? AND card_id = ? AND created_at = ? AND artifact_sha256 = ? "
                    "AND metrics = ?", [row.get(k) for k in ("kind", "card_id", "created_at", "artifact_sha256",
                                                             "metrics")]).fetchone():
                ids.append(None)
                continue
            values = {k: v for k, v in row.items() if not k.startswith("_")}
            cursor = db.execute(f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                                list(values.values()))
            ids.append(cursor.lastrowid)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return ids


def record(run: Run, path: Path | None = None) -> int:
    """Append one run in one transaction; returns its id. When the store cannot take it, the run is kept (see
    the module's docstring) and RunNotStored says why and where."""
    row = run.to_row()
    path = Path(path) if path else store_path()
    try:
        with closing(connect(path)) as db:
            run.id = _insert(db, [row])[0]
            return run.id
    except sqlite3.Error as exc:
        failure = _failure(exc, path)
    except StorageError as exc:
        failure = exc
    kept = _keep(row, path)
    where = f"kept in {kept}: the next zoo command that opens the store stores it" if kept else \
        f"nowhere could keep it either; the run, for the record: {json.dumps(row, sort_keys=True)}"
    raise RunNotStored(f"{failure.message}; the run of {run.card_id} was not stored but {where}", failure.hint,
                       kept=str(kept) if kept else None)


# ---------------------------------------------------------------- runs kept while the store could not take them

def pending_dirs(path: Path | None = None) -> list[Path]:
    """Where runs are kept for this store: pending-runs beside it (ZOO_HOME/pending-runs), else a folder of the
    temporary directory named for the store (a full ZOO_HOME disk may leave room there)."""
    path = Path(path) if path else store_path()
    tag = hashlib.sha256(str(path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [path.parent / "pending-runs", Path(tempfile.gettempdir()) / f"zoo-pending-runs-{tag}"]


def _ours(directory: Path) -> bool:
    """Whether a folder of kept runs is this user's alone: one in the shared temporary directory that another user
    made (or can write in) could feed the store runs nobody measured."""
    try:
        status = directory.lstat()
    except OSError:
        return False
    return directory.is_dir() and status.st_uid == os.getuid() and not status.st_mode & 0o022


def _pending(path: Path) -> list[Path]:
    return [f for d in pending_dirs(path) if _ours(d) for f in sorted(d.glob("*.json"))]


def _keep(row: dict, path: Path) -> Path | None:
    """Write a run the store could not take to the first place that holds it; None when none does."""
    from zoo.files import write_bytes_atomic

    data = (json.dumps({"format": 1, "store": str(path), "row": row}, sort_keys=True) + "\n").encode()
    for directory in pending_dirs(path):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if _ours(directory):
                name = f"{row['created_at'].replace(':', '')}-{uuid.uuid4().hex[:12]}.json"
                return write_bytes_atomic(directory / name, data)
        except OSError:
            continue
    return None


def _import_pending(db: sqlite3.Connection, path: Path) -> None:
    """Store the runs kept for this store, then remove their files; any failure leaves them kept."""
    files = _pending(path)
    if not files:
        return
    rows, done = [], []
    for file in files:
        try:
            row = json.loads(file.read_text(encoding="utf-8"))["row"]
            Run.from_row(row)  # a kept file that is not a run is set aside, not stored
        except (OSError, ValueError, KeyError, TypeError):
            try:
                file.replace(file.with_suffix(".bad"))
                warnings.warn(f"{file} is not a kept run; it was renamed to {file.with_suffix('.bad').name}")
            except OSError:
                pass
            continue
        rows.append({**row, "_kept": True})
        done.append(file)
    try:
        _insert(db, rows)
    except sqlite3.Error:
        return
    for file in done:
        file.unlink(missing_ok=True)
    if done:
        warnings.warn(f"stored {len(done)} run(s) kept while the results store could not take them")


# ---------------------------------------------------------------- reading

def _runs(rows, path: Path) -> list[Run]:
    """Rows as runs; a row whose JSON is damaged is left out, and one warning names them and the fix."""
    runs, bad = [], []
    for row in rows:
        try:
            runs.append(Run.from_row(row))
        except (ValueError, TypeError):
            bad.append(row["id"])
    if bad:
        ids = ", ".join(map(str, bad))
        warnings.warn(f"the results store {path}: run(s) {ids} hold damaged JSON and were left out; remove them "
                      f"with: sqlite3 {path} 'DELETE FROM runs WHERE id IN ({ids})'")
    return runs


def _read(path: Path, sql: str, args: list) -> list[Run]:
    try:
        with closing(connect(path)) as db:
            return _runs(db.execute(sql, args).fetchall(), path)
    except sqlite3.Error as exc:
        raise _failure(exc, path) from None


def find_run(kind: str, card_id: str, *, artifact_sha256: str, runtime: str, runtime_version: str | None,
             settings: dict, dataset_fingerprint: str | None = None, machine_fingerprint: str | None = None,
             path: Path | None = None) -> Run | None:
    """The newest stored run measured the same way (None: none, or no store yet). runtime_version and
    machine_fingerprint None match any."""
    path = Path(path) if path else store_path()
    if not path.exists() and not _pending(path):
        return None
    sql = ("SELECT * FROM runs WHERE kind = ? AND card_id = ? AND artifact_sha256 = ? AND runtime = ? "
           "AND settings = ?")
    args = [kind, card_id, artifact_sha256, runtime, canonical_json(settings)]
    for column, value in (("runtime_version", runtime_version), ("dataset_fingerprint", dataset_fingerprint),
                          ("machine_fingerprint", machine_fingerprint)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    found = _read(path, sql + " ORDER BY id DESC LIMIT 1", args)
    return found[0] if found else None


def list_runs(*, kind: str | None = None, card_id: str | None = None, limit: int | None = None,
              path: Path | None = None) -> list[Run]:
    """Stored runs, newest first. An absent store has no runs (and is not created)."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path) if path else store_path()
    if not path.exists() and not _pending(path):
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
    return _read(path, sql, args)
