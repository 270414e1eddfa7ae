"""The SQLite results store under ZOO_HOME: every eval and bench run, with what produced it.

One table of runs. Each row records the card, the artifact's sha256, the runtime and its version,
provider, threads, batch, the preprocessing, the dataset fingerprint (eval), the machine and
its fingerprint, the zoo version and a UTC timestamp; the measured figures live in `metrics`
(JSON), so bench runs (latency) and eval runs (accuracy) share the table.
The schema grows by numbered, append-only migrations tracked in PRAGMA user_version.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from . import settings

KINDS = ("eval", "bench")
JSON_COLUMNS = ("preprocess", "dataset", "machine", "metrics")
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
)
COLUMNS = ("kind", "card_id", "artifact_file", "artifact_sha256", "runtime", "runtime_version", "provider", "threads",
           "batch", "preprocess", "dataset_fingerprint", "dataset", "device", "machine_fingerprint", "machine",
           "zoo_version", "created_at", "metrics")


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


def fingerprint(facts: dict) -> str:
    """A short, stable hash of a machine's facts: runs on the same machine share it."""
    import hashlib

    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def machine() -> dict:
    """This machine as a run records it: CPU model, cores, OS, Python; `fingerprint` hashes them."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(), "os": platform.platform(terse=True),
            "python": platform.python_version()}
    info["fingerprint"] = fingerprint(info)
    info["device"] = f"{cpu} ({info['cores']} cores)"
    return info


def record_run(run: dict, path: Path | None = None) -> int:
    """Append one run (keys: COLUMNS; created_at, device and machine filled in when absent); returns its id."""
    if run.get("kind") not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {run.get('kind')!r}")
    row = dict(run)
    if "machine" not in row:
        row["machine"] = machine()
    for key, source in (("machine_fingerprint", "fingerprint"), ("device", "device")):
        if row.get(key) is None:
            row[key] = row["machine"].get(source)
    row.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if "zoo_version" not in row:
        from . import __version__

        row["zoo_version"] = __version__
    values = [json.dumps(row.get(c), sort_keys=True) if c in JSON_COLUMNS else row.get(c) for c in COLUMNS]
    with closing(connect(path)) as db, db:
        cursor = db.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", values)
        return cursor.lastrowid


def _decode(row: sqlite3.Row) -> dict:
    run = dict(row)
    for column in JSON_COLUMNS:
        run[column] = json.loads(run[column]) if run[column] is not None else None
    return run


def list_runs(*, kind: str | None = None, card_id: str | None = None, limit: int | None = None,
              path: Path | None = None) -> list[dict]:
    """Stored runs, newest first; JSON columns decoded. An absent store has no runs (and is not created)."""
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
        return [_decode(r) for r in db.execute(sql, args)]


def latest_runs(kind: str = "eval", device: str | None = None, path: Path | None = None) -> list[dict]:
    """The newest run of `kind` per card id (one dict per card, newest first).

    `device`: only runs whose device string contains it (case-insensitive).
    """
    latest: dict[str, dict] = {}
    for run in list_runs(kind=kind, path=path):
        if device and device.lower() not in run["device"].lower():
            continue
        latest.setdefault(run["card_id"], run)
    return list(latest.values())
