"""The SQLite results store on real files: migrations, round trips, newest run per card."""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from zoo.cards.catalog import CardTable
from zoo.cards.index import Entry
from zoo.measure.machine import host
from zoo.results import store
from zoo.results.records import Run
from zoo.results.selection import select


def _run(card_id: str, kind: str = "eval", **extra) -> Run:
    machine = host()
    fields = {"kind": kind, "card_id": card_id, "artifact_file": "m.onnx", "artifact_sha256": "ab" * 32,
              "runtime": "onnxruntime", "runtime_version": "1.0", "provider": "CPUExecutionProvider", "threads": 2,
              "batch": 32, "preprocess": {"resize": "shorter_side_crop"}, "dataset_fingerprint": "f" * 64,
              "dataset": {"n_images": 3}, "metrics": {"top1": 50.0, "top5": 80.0, "n": 3},
              "machine": machine, "machine_fingerprint": machine["fingerprint"], "device": machine["device"]}
    return Run(**{**fields, **extra})


def test_store_lives_under_zoo_home_and_is_migrated(zoo_home):
    assert store.store_path() == zoo_home / "results.db"
    assert store.list_runs() == [] and not store.store_path().exists()  # reading never creates it
    run_id = store.record(_run("a/x"))
    db = sqlite3.connect(store.store_path())
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(store.MIGRATIONS)
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert set(_run("a/x").to_row()) <= columns
    db.close()
    store.connect().close()  # reopening runs no migration twice
    assert [r.id for r in store.list_runs()] == [run_id]


def test_round_trip_records_what_produced_the_run(zoo_home):
    import zoo

    store.record(_run("a/x"))
    (run,) = store.list_runs()
    assert run.metrics == {"top1": 50.0, "top5": 80.0, "n": 3}
    assert run.preprocess == {"resize": "shorter_side_crop"} and run.dataset == {"n_images": 3}
    assert run.zoo_version == zoo.__version__ and run.created_at.endswith("+00:00")
    assert run.machine["cores"] and run.machine_fingerprint == run.machine["fingerprint"]
    assert run.device == run.machine["device"]
    assert run.top1 == 50.0 and run.n_images == 3  # the typed accessors read the same figures


def test_filters_and_latest_run_per_card(zoo_home):
    first = store.record(_run("a/x"))
    store.record(_run("b/y", "bench", metrics={"p50_ms": 4.2}, device="Board Z (4 cores)"))
    newest = store.record(_run("a/x", metrics={"top1": 60.0, "n": 3}))
    assert [r.id for r in store.list_runs(card_id="a/x")] == [newest, first]
    assert [r.card_id for r in store.list_runs(kind="bench")] == ["b/y"]
    assert len(store.list_runs(limit=1)) == 1
    entries = [Entry({"id": i, "source": i[0], "width": 1.0, "resolution": 224, "artifacts": []}, "test")
               for i in ("a/x", "b/y")]
    runs, table = store.list_runs(), CardTable.of(entries)
    latest = select(table, runs, device="board z", host=host(), target_names=set())
    assert [(i, r.id, r.top1) for i, r in latest.evals.items()] == [("a/x", newest, 60.0)]  # of equal size, the newest
    smaller = store.record(_run("a/x", metrics={"top1": 70.0, "n": 2}))  # a --limit run never hides a larger one
    again = select(table, store.list_runs(), device=None, host=host(), target_names=set())
    assert again.evals["a/x"].id == newest and smaller in {r.id for r in again.measured}
    assert list(latest.benches) == ["b/y"] and latest.benches["b/y"][0].latency_ms == 4.2  # one run per footing
    assert select(table, runs, device="other", host=host(), target_names=set()).benches == {}


def test_unknown_kind_is_refused(zoo_home):
    with pytest.raises(ValueError, match="kind must be one of"):
        store.record(_run("a/x", kind="train"))
    with pytest.raises(ValueError, match="--kind must be one of eval, bench"):  # reading too: never a silent []
        store.list_runs(kind="x")
    with pytest.raises(sqlite3.IntegrityError):  # the table refuses it too
        with closing(store.connect()) as db, db:
            db.execute("INSERT INTO runs (kind, card_id, artifact_sha256, runtime, runtime_version, device, "
                       "machine_fingerprint, machine, zoo_version, created_at, metrics) "
                       "VALUES ('train', 'a/x', 's', 'r', 'v', 'd', 'm', '{}', '0', 't', '{}')")
