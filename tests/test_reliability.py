"""Robustness under real faults, in real processes: parallel commands on one ZOO_HOME, full output devices and
file-size limits (RLIMIT_FSIZE, as `ulimit -f`), a results store another process holds, damaged state files,
hostile model files, paths the file system refuses. Each ends in whole results or one `zoo: error:` line and an
exit code, and a finished measurement is never lost."""
from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from zoo.results import store

ROOT = Path(__file__).resolve().parents[1]
TINY = ["tf-slim/mobilenet_v2_0.35_96", "tf-slim/mobilenet_v2_0.5_96"]  # the smallest architectures
QUICK = ["--synthetic-weights", "--iters", "2", "--seconds", "0", "--warmup", "0", "--rounds", "1"]
CORAL = "coral/mobilenet_v2_1.0_224_quant"


def zoo_process(*args: str, limit: int | None = None, stdout=subprocess.PIPE, env: dict | None = None,
                start: bool = False):
    """`zoo ARGS` in a process of its own (its real stdout, exit code and file-size limit in bytes)."""
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-c", "import zoo_cli; zoo_cli.main()", *args]
    options = dict(stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})},
                   preexec_fn=limited if limit else None)
    if start:
        return subprocess.Popen(command, **options)
    return subprocess.run(command, timeout=300, **options)


def one_error_line(proc, code: int, *words: str) -> str:
    """The process ended with `code` and exactly one `zoo: error:` line naming `words` (warnings aside)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("zoo: warning:")]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("zoo: error: ")]
    assert len(errors) == 1, proc.stderr
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


# ---------------------------------------------------------------- 11: parallel commands on one ZOO_HOME

def test_parallel_bench_sweeps_of_the_same_cards_all_succeed_and_store_every_run(zoo_home):
    procs = [zoo_process("bench", *TINY, *QUICK, "--force", start=True) for _ in range(4)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in outcomes] == [0] * 4, outcomes
    assert all("Traceback" not in err for _, err in outcomes)
    assert sorted(r.card_id for r in store.list_runs()) == sorted(TINY * 4)  # 8 of 8 runs stored


def test_parallel_forced_conversions_of_one_card_all_succeed(zoo_home):
    procs = [zoo_process("convert", TINY[0], "--synthetic-weights", "--force", "--json", start=True) for _ in range(3)]
    outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in outcomes] == [0] * 3, outcomes
    records = [json.loads(out) for _, out, _ in outcomes]
    assert len({r["sha256"] for r in records}) == 1 and Path(records[0]["path"]).is_file()
    assert not list(Path(records[0]["path"]).parent.glob(".*"))  # no temporary file left behind


# ---------------------------------------------------------------- 13: full output devices, file-size limits

@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["--version"], ["show", CORAL], ["runs", "--json"],
                                  ["cards", "schema"], ["compare", "--metric", "storage", "--json"]])
def test_output_that_cannot_be_written_is_one_line_and_a_failure(args):
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC, as on a full disk
        proc = zoo_process(*args, stdout=full)
    one_error_line(proc, 11, "cannot write the output to /dev/full", "No space left on device")


@pytest.fixture
def fetched_coral(zoo_home, coral_dir):
    zoo.fetch([CORAL], mirrors=[str(coral_dir)])
    return coral_dir


@pytest.mark.parametrize("args, where", [
    (["fetch", "coral/tf2_mobilenet_v2_1.0_224_ptq"], "cache/partial"),
    (["convert", TINY[0], "--synthetic-weights"], "converted/synthetic"),
    (["convert", CORAL, "--dequantize"], "converted/"),
    (["report", "-o", "{tmp}/report.html"], "report.html"),
])
def test_writes_past_a_file_size_limit_are_one_line_and_leave_nothing_half_written(fetched_coral, tmp_path, args,
                                                                                   where):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = zoo_process(*args, "--mirror" if args[0] in ("fetch", "convert") else "--json",
                       *([str(fetched_coral)] if args[0] in ("fetch", "convert") else []), limit=256 * 1024)
    one_error_line(proc, 11, "cannot", where, "File too large")
    home = Path(os.environ["ZOO_HOME"])
    assert not [p for p in (home / "converted").rglob("*") if p.is_file()]  # no conversion cached
    assert not list(tmp_path.glob("*report*")) and not list((home / "derived").glob("*"))


def test_a_finished_eval_the_store_cannot_take_is_kept_and_stored_later(fetched_coral, zoo_home, sample_dir, tmp_path,
                                                                        link_sample):
    images = link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:8])
    zoo.bench_sweep([TINY[0]], synthetic=True, iters=2, seconds=0, warmup=0, rounds=1)  # a store of a few pages
    full = store.store_path().stat().st_size
    proc = zoo_process("eval", CORAL, "--data", str(images), "--json", limit=full)  # the store cannot grow
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "was not stored but kept in" in line]
    assert len(notes) == 1 and "cannot write the results store" in notes[0], proc.stderr
    kept = Path(notes[0].split("kept in ")[1].split(":")[0])
    assert kept.is_file() and kept.parent == zoo_home / "pending-runs"
    measured = json.loads(proc.stdout.splitlines()[0])
    assert measured["run_id"] is None and measured["kept_in"] == str(kept)
    # the next command that opens the store takes it, once
    runs = json.loads(zoo_process("runs", "--json").stdout)
    assert [r["card_id"] for r in runs] == [CORAL, TINY[0]] and runs[0]["metrics"]["top1"] == measured["top1"]
    assert not kept.exists() and len(store.list_runs()) == 2


# ---------------------------------------------------------------- 15: a results store another process holds

@pytest.fixture
def held_store(zoo_home):
    """Another process holding the results store (BEGIN EXCLUSIVE) until the test ends."""
    zoo.bench_sweep([TINY[0]], synthetic=True, iters=2, seconds=0, warmup=0, rounds=1)
    code = ("import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(store.store_path())], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    yield holder
    holder.kill()
    holder.wait()


def test_a_locked_store_is_one_line_after_the_stated_wait_and_no_run_is_lost(held_store, monkeypatch):
    wait = {"ZOO_STORE_WAIT": "1"}
    started = time.monotonic()
    proc = zoo_process("runs", env=wait)
    one_error_line(proc, 11, "results store", "is locked by another process (waited 1 s)", "ZOO_STORE_WAIT")
    assert time.monotonic() - started < 30
    # a bench that finishes while the store is held keeps its run, says where, and it is stored afterwards
    proc = zoo_process("bench", TINY[1], *QUICK, "--force", env=wait)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "is locked by another process" in proc.stderr and "was not stored but kept in" in proc.stderr
    held_store.kill()
    held_store.wait()
    assert sorted(r.card_id for r in store.list_runs()) == sorted(TINY)


# ---------------------------------------------------------------- 12: damaged state files, hostile model files

def run_cli(*args: str):
    from typer.testing import CliRunner

    import zoo_cli

    return CliRunner().invoke(zoo_cli.app, list(args))


def one_line(result, code: int, *words: str) -> str:
    """A CliRunner result that ends in one `zoo: error:` line with `code`, naming `words`."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("zoo: error: ")]
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.mark.parametrize("name, text, args, code, words", [
    ("results.db", "not a database, only text " * 40, ["runs"], 11,
     ["results.db is not a zoo results store", "Move it aside"]),
    ("results.db", "not a database, only text " * 40, ["compare", "--metric", "latency"], 11, ["results.db"]),
    ("pins.lock.json", "[1, 2]", ["cache", "ls"], 5, ["pins.lock.json", "Fix or delete it"]),
    ("pins.lock.json", '{"format": 1, "pins": [1]}', ["cache", "prune"], 5, ["pins.lock.json"]),
    ("pins.lock.json", '{"format": 1, "pins": {"a/b/c.onnx": {"sha256": 5}}}', ["cache", "ls"], 5,
     ["malformed pin for 'a/b/c.onnx'"]),
    ("registries/remotes.json", '["acme"]', ["list"], 4, ["remotes.json", "add the registries again"]),
    ("registries/remotes.json", '{"acme": {"url": 5}}', ["registry", "ls"], 4, ["remotes.json"]),
    ("targets.json", "[1]", ["target", "ls"], 8, ["targets.json", "zoo target add"]),
    ("targets.json", '{"x5": 5}', ["bench", CORAL, "--target", "x5"], 8, ["targets.json"]),
])
def test_a_damaged_state_file_is_one_line_naming_it_and_the_fix(zoo_home, name, text, args, code, words):
    path = zoo_home / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    one_line(run_cli(*args), code, *words)
    assert path.read_text() == text  # left as it was, for the user to look at


def test_store_rows_with_damaged_json_are_left_out_with_one_warning(zoo_home):
    zoo.bench_sweep(TINY, synthetic=True, iters=2, seconds=0, warmup=0, rounds=1)
    with sqlite3.connect(store.store_path()) as db:
        db.execute("UPDATE runs SET metrics = '{not json' WHERE card_id = ?", (TINY[0],))
    with pytest.warns(UserWarning, match=r"run\(s\) 1 hold damaged JSON and were left out; remove them with: sqlite3"):
        assert [r.card_id for r in store.list_runs()] == [TINY[1]]
    result = run_cli("runs", "--json")
    assert result.exit_code == 0 and [r["card_id"] for r in json.loads(result.stdout)] == [TINY[1]]
    assert result.stderr.count("zoo: warning:") == 1
    assert run_cli("compare", "--metric", "latency", "--json").exit_code == 0


@pytest.mark.parametrize("damage", [
    "UPDATE cards SET card = '{not json', summary = 'x'",
    "UPDATE columns SET data = '[1'",
    "DROP TABLE columns",
])
def test_a_damaged_catalog_is_rebuilt(zoo_home, damage):
    assert run_cli("list").exit_code == 0
    (catalog,) = (zoo_home / "catalog").glob("*.sqlite")
    with sqlite3.connect(catalog) as db:
        db.executescript(damage)
    with pytest.warns(UserWarning, match="was damaged .* it was rebuilt from the cards"):
        assert len(zoo.list_cards()) == len(zoo.list_cards(brief=True)) >= 80
    assert zoo.show(CORAL)["card"]["id"] == CORAL and zoo.compare(metric="storage")["id"].notna().all()
    result = run_cli("list")  # rebuilt for good: no warning the next time
    assert result.exit_code == 0 and "warning" not in result.stderr


def _tflite(coral_dir: Path, tmp_path: Path, change: str) -> Path:
    """The coral TF1 model with one field of its input tensor changed in place (the flatbuffer read with the
    `tflite` package): `channels` makes it take 4 channels, `name` gives it a name that is not UTF-8."""
    import tflite

    data = bytearray((coral_dir / "mobilenet_v2_1.0_224_quant.tflite").read_bytes())
    graph = tflite.Model.GetRootAsModel(bytes(data), 0).Subgraphs(0)
    table = graph.Tensors(graph.Inputs(0))._tab
    if change == "channels":
        shape = table.Vector(table.Offset(4))  # Tensor.shape: [1, 224, 224, 3]
        data[shape + 12:shape + 16] = (4).to_bytes(4, "little")
    else:
        name = table.Indirect(table.Offset(10) + table.Pos)  # Tensor.name: length, then the bytes
        data[name + 4] = 0xFF
    path = tmp_path / f"{change}.tflite"
    path.write_bytes(bytes(data))
    return path


def _hostile_card(tmp_path: Path, model: Path) -> Path:
    """A card directory holding a copy of the coral card for `model` (served from a mirror directory)."""
    import hashlib

    import yaml

    card = yaml.safe_load((ROOT / "cards" / "coral" / "mobilenet_v2_1.0_224_quant.yaml").read_text())
    card.update(id=f"hostile/{model.stem}", source="hostile", name=model.stem)
    card["artifacts"][0].update(file=model.name, sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
                                size_bytes=model.stat().st_size)
    cards = tmp_path / "cards"
    cards.mkdir(exist_ok=True)
    (cards / f"{model.stem}.yaml").write_text(yaml.safe_dump(card))
    return cards


def test_a_tflite_model_that_onnx_runtime_cannot_run_is_one_line(zoo_home, coral_dir, tmp_path):
    model = _tflite(coral_dir, tmp_path, "channels")
    cards = _hostile_card(tmp_path, model)
    one_line(run_cli("--registry", str(cards), "convert", "hostile/channels", "--mirror", str(tmp_path)), 10,
             "the converted model does not run in ONNX Runtime", "Input channels")
    assert not [p for p in (zoo_home / "converted").rglob("*") if p.is_file()]
    result = run_cli("--registry", str(cards), "bench", "hostile/channels", "--runtime", "onnxruntime",
                     "--mirror", str(tmp_path), "--iters", "2")
    one_line(result, 10, "does not run in ONNX Runtime")


def test_inspect_of_a_tflite_name_that_is_not_utf8_is_one_line(coral_dir, tmp_path):
    one_line(run_cli("inspect", str(_tflite(coral_dir, tmp_path, "name"))), 2, "not a readable TFLite model",
             "can't decode byte 0xff")


def _onnx(tmp_path: Path, name: str, nodes, inputs=None, initializers=()) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    weights = [numpy_helper.from_array(np.ones(shape, np.float32), n) for n, shape in initializers]
    graph = helper.make_graph(nodes, name, inputs or [x], [out], weights)
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 17)]), path)
    return path


def test_inspect_of_malformed_onnx_graphs_is_one_line_or_counts_what_it_can(tmp_path):
    from onnx import TensorProto, helper

    make = helper.make_node
    weight = [("w", (8, 3, 3, 3))]
    one_line(run_cli("inspect", str(_onnx(tmp_path, "no_output", [make("Conv", ["input", "w"], [])],
                                          initializers=weight))), 2, "shape inference fails", "out of bounds")
    for path in (_onnx(tmp_path, "one_input", [make("Conv", ["input"], ["logits"])]),
                 _onnx(tmp_path, "negative", [make("Conv", ["input", "w"], ["logits"])], initializers=weight,
                       inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, -5, 224])])):
        info = json.loads(run_cli("inspect", str(path), "--json").stdout)
        assert info["macs"] == 0 and info["uncounted_nodes"] == ["Conv"]  # never a negative or a guessed count


def test_a_card_file_name_that_is_not_utf8_is_one_line(tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / os.fsdecode(b"caf\xff.yaml")).write_text((ROOT / "cards/coral/mobilenet_v2_1.0_224_quant.yaml").read_text())
    one_line(run_cli("--registry", str(cards), "list"), 4, "is not UTF-8")


def test_keygen_with_a_name_too_long_is_one_line(tmp_path):
    one_line(run_cli("registry", "keygen", str(tmp_path / ("k" * 300))), 2, "File name too long")
    one_line(run_cli("registry", "keygen", str(tmp_path / ("k" * 253))), 2, "File name too long")  # its .pub
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 12, 19: one short line per card, one summary

def test_every_card_of_a_sweep_has_one_short_line_with_its_reason_and_each_hint_comes_once(zoo_home, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # tf-slim's weights cannot be had: timed with synthetic weights
    rdk = ["rdk/mobilenetv2_224x224_nv12-x5", "rdk/mobilenetv2_224x224_nv12-s100"]
    args = ["bench", TINY[0], *rdk, "--iters", "2", "--seconds", "0", "--warmup", "0", "--rounds", "1"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(len(line) <= 200 for line in lines), lines  # 3 cards, then the counts
    assert [line.split()[0] for line in lines[:3]] == ["skipped", "skipped", "measured"]
    assert all("runs on an RDK BPU only" in line for line in lines[:2])
    assert "synthetic weights: mobilenet_v2_0.35_96.tgz not cached" in lines[2] and "onnxruntime" in lines[2]
    assert result.stderr.count("zoo target add") == 1  # the hint, once, for both cards
    records = [json.loads(line) for line in run_cli(*args, "--json").stdout.splitlines()]
    skipped = [r for r in records if r.get("status") == "skipped"]
    assert len(skipped) == 2 and all("RDK BPU only" in r["reason"] and "zoo target add" in r["hint"] for r in skipped)
    assert records[-1]["summary"]["hints"][0]["cards"] == rdk


def test_a_quantize_sweep_that_quantizes_nothing_says_why_for_each_card(zoo_home, tmp_path, sample_dir, link_sample):
    images = link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:12])
    args = ["quantize", CORAL, "rdk/mobilenetv2_224x224_nv12-x5", "--calib", str(images), "--calib-n", "10"]
    one_line(run_cli(*args), 1, "nothing quantized", f"{CORAL}: {CORAL} is already quantized", "rdk/")
    result = run_cli(*args, "--json")
    records = json.loads(result.stdout)
    assert [r["status"] for r in records] == ["skipped", "skipped"] and all(r["reason"] for r in records)


def test_compare_measure_ends_with_one_summary(zoo_home, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    args = ["compare", TINY[0], "rdk/mobilenetv2_224x224_nv12-x5", "--metric", "latency", "--measure"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    summary = [line for line in result.stderr.splitlines() if line.startswith("--measure:")]
    assert summary == ["--measure: 2 card(s): 1 measured, 0 reused, 1 skipped, 0 failed"]
    assert result.stderr.count("zoo target add") == 1
    assert all(len(line) <= 200 for line in result.stderr.splitlines() if line.startswith(("measured", "skipped")))
    again = run_cli(*args)  # the card that cannot run here is tried again (and says so), never the measured one
    assert again.exit_code == 0 and "--measure: 1 card(s): 0 measured, 0 reused, 1 skipped" in again.stderr
    assert "--measure: nothing to measure" in run_cli("compare", TINY[0], *args[3:]).stderr


# ---------------------------------------------------------------- 14: output paths checked before any work

@pytest.mark.parametrize("args, words", [
    (["registry", "build", "--out", "{tmp}/" + "o" * 250 + ".json"], "too long for the file system"),
    (["registry", "build", "--out", "/proc/zoo/index.json"], "its folder cannot be made"),
    (["registry", "build", "--out", "/proc/self/index.json"], "cannot write in /proc/self"),
    (["preprocess", CORAL, "{image}", "-o", "{tmp}/" + "p" * 300 + ".npz"], "File name too long"),
])
def test_output_paths_that_cannot_be_written_are_one_line_before_any_work(tmp_path, sample_dir, args, words):
    image = str(next(sample_dir.glob("*.JPEG")))
    result = run_cli(*[a.format(tmp=tmp_path, image=image) for a in args])
    one_line(result, 2, words)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["zoo-home"])  # nothing written there


def test_a_zoo_home_longer_than_the_file_system_allows_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / ("h/" * 2500)))
    one_line(run_cli("list"), 2, "ZOO_HOME=", "File name too long", "Set ZOO_HOME to a writable directory")


# ---------------------------------------------------------------- 16: --ray at a service that is not Ray

def test_ray_at_a_service_that_is_not_ray_is_refused_in_seconds_naming_what_answered(server):
    import socket
    import threading

    banner = socket.socket()
    banner.bind(("127.0.0.1", 0))
    banner.listen()

    def greet():  # a service that speaks first, as sshd does
        conn, _ = banner.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        time.sleep(5)
        conn.close()

    threading.Thread(target=greet, daemon=True).start()
    for address, said in ((server.url.removeprefix("http://"), "it said"),
                          (f"127.0.0.1:{banner.getsockname()[1]}", "SSH-2.0-OpenSSH_9.2p1")):
        started = time.monotonic()
        proc = zoo_process("bench", TINY[0], *QUICK, "--ray", address)  # before: more than 120 s
        one_error_line(proc, 2, f"--ray {address}: a service that is not Ray answers there", said)
        assert time.monotonic() - started < 60
    banner.close()


# ---------------------------------------------------------------- 17, 18: fetch takes wildcards; every file is listed

def test_fetch_takes_wildcards_like_list_eval_and_bench(zoo_home, coral_dir):
    records = zoo.fetch(["coral/*", CORAL], mirrors=[str(coral_dir)])
    assert sorted(r["id"] for r in records) == sorted(e["id"] for e in zoo.list_cards("coral/*"))
    assert {r["resolved"]["query"] for r in records} == {"coral/*"}
    one_line(run_cli("fetch", "nosuch/*"), 3, "no card matches 'nosuch/*'")


def test_cache_ls_and_prune_cover_every_file_zoo_makes(zoo_home, coral_dir):
    zoo.convert(TINY[0], synthetic=True)
    zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])  # a derived card and the model it is made of
    # fetched as the derived card's artifact, the model zoo made is cached under a second name, not copied
    (fetched,) = zoo.fetch([f"{CORAL}+float"])
    (model,) = (zoo_home / "converted").glob("*/v*/tflite_float.onnx")
    assert Path(fetched["path"]).stat().st_ino == model.stat().st_ino
    shared = run_cli("cache", "ls")
    disk = sum({(p.stat().st_ino, p.stat().st_size) for p in zoo_home.rglob("*") if p.is_file()}, ())[1::2]
    assert f", {sum(disk):,} of them on disk (a model zoo made and its cached copy are one file" in shared.stderr
    listed = {r["kind"]: r for r in zoo.cache_ls()}
    assert set(listed) >= {"file", "synthetic", "converted", "derived-card", "catalog"}
    on_disk = sum(p.stat().st_size for p in zoo_home.rglob("*") if p.is_file() and p.parent.name != "locks")
    assert sum(r["size"] for r in zoo.cache_ls()) == on_disk  # nothing zoo made goes uncounted
    assert listed["converted"]["cards"] == [f"{CORAL}+float"]
    pruned = zoo.cache_prune()
    assert {r["kind"] for r in pruned} == {"synthetic"} and pruned[0]["size"] > 1_000_000
    assert not (zoo_home / "converted" / "synthetic").exists()
    assert {r["kind"] for r in zoo.cache_ls()} == {"file", "converted", "derived-card", "catalog"}
    assert zoo.get(f"{CORAL}+float")  # the derived card still has its model
    result = run_cli("cache", "ls")
    assert result.exit_code == 0 and "converted" in result.stdout and "bytes in" in result.stderr


# ---------------------------------------------------------------- 20, 21: LiteRT in the core install, smaller things

def test_litert_is_a_core_dependency_where_it_has_a_wheel():
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (litert,) = [Requirement(r) for r in project["dependencies"] if r.startswith("ai-edge-litert")]
    wheels = [("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"), ("win32", "AMD64")]
    assert all(litert.marker.evaluate({"sys_platform": s, "platform_machine": m}) for s, m in wheels)
    assert not any(litert.marker.evaluate({"sys_platform": s, "platform_machine": m})
                   for s, m in [("linux", "armv7l"), ("darwin", "x86_64"), ("linux", "riscv64")])


def test_without_litert_a_tflite_card_runs_on_onnx_runtime_and_every_line_says_so(zoo_home, coral_dir, tmp_path,
                                                                                   sample_dir, link_sample,
                                                                                   monkeypatch):
    images = link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:4])
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter"):  # a platform without a LiteRT wheel
        monkeypatch.setitem(sys.modules, name, None)
    result = run_cli("eval", "coral/*", "--data", str(images), "--mirror", str(coral_dir))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("LiteRT is not installed here") == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("measured")]
    assert len(lines) == 2 and all("onnxruntime · uint8" in line for line in lines)
    again = run_cli("eval", "coral/*", "--data", str(images), "--mirror", str(coral_dir))
    assert all("onnxruntime" in line for line in again.stdout.splitlines() if line.startswith("reused"))
    hint = one_line(run_cli("inspect", str(coral_dir / "mobilenet_v2_1.0_224_quant.tflite")), 2, "needs LiteRT")
    assert hint.split("Install it with: ")[1] in (ROOT / "README.md").read_text()  # the README's command


def test_a_reused_bench_prints_its_whole_result(zoo_home):
    first, again = (json.loads(run_cli("bench", TINY[0], *QUICK, "--json").stdout.splitlines()[0]) for _ in range(2))
    assert (first["status"], again["status"]) == ("measured", "reused")
    for key in ("p50_ms", "p90_ms", "std_ms", "mean_ms", "fps", "device", "precision", "run_id"):
        assert again[key] == first[key] and again[key] is not None, key
    assert again["runtime"] == first["runtime"] and again["runtime"]["name"] == "onnxruntime"  # the README's keys
    assert again["runtime"]["version"] and again["environment"] == first["environment"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_get_the_users_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        # a few cards: what is checked is the files' mode, not what they draw
        assert run_cli("report", "-o", str(tmp_path / "r.html"), "tf-slim/mobilenet_v2_0.35_*").exit_code == 0
        assert run_cli("compare", "tf-slim/mobilenet_v2_0.35_*", "--metric", "macs", "--plot",
                       str(tmp_path / "p.png")).exit_code == 0
        run_cli("registry", "keygen", str(tmp_path / "k.key"))
    finally:
        os.umask(old)
    for name in ("r.html", "p.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600  # a private key stays private


def test_a_bench_that_reuses_its_run_does_not_say_it_is_timing(zoo_home):
    first, again = (run_cli("bench", TINY[0], *QUICK) for _ in range(2))
    assert first.stderr.startswith(f"timing {TINY[0]} (synthetic weights) on this host ...")
    assert again.stdout.startswith("reused ") and "timing" not in again.stderr
