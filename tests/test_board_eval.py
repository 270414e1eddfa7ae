"""Accuracy on a target board (`zoo eval --target`), over a real OpenSSH server on 127.0.0.1: this machine plays the
board, with its own Python, numpy, ONNX Runtime and LiteRT. The host decodes and preprocesses; the board runs the
models; the figures must be the host's, image by image, and survive a dropped connection and a killed command."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from zoo import settings
from zoo.errors import NothingMeasured, UnsupportedArtifactError, UsageError
from zoo.measure import accuracy, targets
from zoo.measure.targets import board_runner
from zoo.measure.targets.evaluate import Journal
from zoo.results import store

ROOT = Path(__file__).resolve().parents[1]
QUANT = "coral/mobilenet_v2_1.0_224_quant"
FLOAT = QUANT + "+float"
LIMIT = 48  # images: six batches of 8


@pytest.fixture
def board(zoo_home, sshd, coral_dir, monkeypatch):
    """A loopback board named "board" (ONNX Runtime and LiteRT), and the coral card's float derivative made."""
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    zoo.convert(QUANT, dequantize=True)
    return targets.add("board", sshd.destination, runtime="onnxruntime", port=sshd.port,
                       identity=str(sshd.client_key), python=sys.executable)


def per_image(run) -> tuple:
    top1, hit, read = accuracy.unpack_per_image(run.metrics["per_image"])
    return top1.tolist(), hit.tolist(), read.tolist()


def test_the_board_scores_each_image_as_the_host_does(board, sample_dir):
    host = zoo.eval_sweep([FLOAT, QUANT], sample_dir, limit=LIMIT, runtime="onnxruntime")
    host_litert = zoo.evaluate(QUANT, sample_dir, limit=LIMIT, runtime="litert")
    events = []
    on_board = zoo.eval_sweep([FLOAT, QUANT], sample_dir, limit=LIMIT, target="board", progress=events.append)
    litert = zoo.evaluate(QUANT, sample_dir, limit=LIMIT, target="board", runtime="litert")
    assert on_board["measured"] == [FLOAT, QUANT] and litert["status"] == "measured"
    # the .tflite runs as its QDQ conversion because the board runs ONNX Runtime, not because LiteRT is missing here
    assert not [e for e in events if e["event"] == "note" and "LiteRT is not installed" in e["message"]]
    runs = {(r.card_id, r.device == "board", r.runtime): r for r in store.list_runs(kind="eval")}
    assert len(runs) == 6
    for card, runtime in ((FLOAT, "onnxruntime"), (QUANT, "onnxruntime"), (QUANT, "litert")):
        here, there = runs[(card, False, runtime)], runs[(card, True, runtime)]
        assert (there.top1, there.top5) == (here.top1, here.top5) and there.n_images == here.n_images == LIMIT
        assert per_image(there) == per_image(here)
        assert there.dataset_fingerprint == here.dataset_fingerprint and there.artifact_sha256 == here.artifact_sha256
        assert there.settings["target"] == "board" and there.machine["target"] == "board"
        assert there.provider == ("CPUExecutionProvider" if runtime == "onnxruntime" else "cpu")
        assert there.metrics["engine"]["name"] == "target" and there.metrics["engine"]["peak_rss_bytes"] > 0
    # the int8 file runs as itself on the board: its QDQ conversion on ONNX Runtime, the .tflite on LiteRT
    assert runs[(QUANT, True, "onnxruntime")].precision == runs[(QUANT, True, "litert")].precision == "uint8"
    assert runs[(FLOAT, True, "onnxruntime")].precision == "fp32"
    # the two cards shared each decoded image, and the progress bar reached the whole
    engine = runs[(FLOAT, True, "onnxruntime")].metrics["engine"]
    assert engine["shared_decode"] == 2 and engine["sent_bytes"] < engine["tensor_bytes"]
    advances = [e for e in events if e["event"] == "advance"]
    assert advances[-1]["done"] == advances[-1]["units"] == 2 * LIMIT
    # board against host, image by image (McNemar): the same file on the same runtime agrees on every image
    rows = {(r["card_id"], r["board"]["runtime"]): r for r in zoo.board_vs_host(target="board")}
    assert len(rows) == 3
    same = rows[(FLOAT, "onnxruntime")]
    assert (same["n"], same["host_only"], same["board_only"], same["same_top1_pct"], same["p_value"]) == \
        (LIMIT, 0, 0, 100.0, 1.0)
    assert same["host"]["run_id"] == runs[(FLOAT, False, "onnxruntime")].id == host["records"][0]["run_id"]
    assert not same["significant"] and "within noise" in same["verdict"]
    assert rows[(QUANT, "litert")]["host"]["runtime"] == "litert"  # the same runtime's host run is preferred
    assert rows[(QUANT, "onnxruntime")]["host"]["runtime"] == "onnxruntime"
    assert host_litert["run_id"] == rows[(QUANT, "litert")]["host"]["run_id"]
    # nothing is left behind: each finished eval's journal is removed once its run is stored
    assert list(settings.board_evals_dir().glob("*.jsonl")) == []
    # measured the same way again: reused, not sent to the board again
    again = zoo.eval_sweep([FLOAT], sample_dir, limit=LIMIT, target="board")
    assert again["reused"] == [FLOAT]
    # compare: the board's figures in their own sections, never as "yours" beside a claim, and the agreement said
    from typer.testing import CliRunner

    from zoo_cli import app

    df = zoo.compare([FLOAT, QUANT], metric="accuracy")
    board_rows = df[df["basis"] == "measured on target"]
    assert len(board_rows) == 3 and all(f.endswith(" · board") for f in board_rows["footing"])
    assert set(board_rows["footing"]).isdisjoint(df.loc[df["basis"] == "measured here", "footing"])
    text = CliRunner().invoke(app, ["compare", FLOAT, QUANT, "--metric", "accuracy"])
    assert text.exit_code == 0 and f"{FLOAT} on board: the board agrees with the host within noise" in text.stderr


def test_a_connection_dropped_mid_eval_goes_on_at_the_next_batch(board, sshd, sample_dir):
    host = zoo.evaluate(FLOAT, sample_dir, limit=LIMIT, store=False)
    dropped = []

    def drop_after_two_batches(event):
        if event["event"] == "advance" and event["done"] >= 16 and not dropped:
            dropped.extend(sshd.sessions())
            for pid in dropped:  # the board's side of the connection, the runner with it
                os.kill(pid, signal.SIGKILL)

    result = zoo.evaluate(FLOAT, sample_dir, limit=LIMIT, target="board", batch=8, workers=1,
                          progress=drop_after_two_batches)
    assert dropped and result["engine"]["reconnects"] >= 1
    assert (result["top1"], result["top5"], result["n"]) == (host["top1"], host["top5"], LIMIT)
    assert result["per_image"] == host["per_image"]


def test_an_eval_killed_mid_run_goes_on_from_its_journal(board, sample_dir):
    host = zoo.evaluate(FLOAT, sample_dir, limit=LIMIT, store=False)
    command = [sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "eval", FLOAT, "--data", str(sample_dir),
               "--limit", str(LIMIT), "--target", "board", "--batch", "4", "--workers", "1", "--json"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journals = settings.board_evals_dir()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        lines = [len(p.read_text().splitlines()) for p in journals.glob("*.jsonl")] if journals.is_dir() else []
        if lines and lines[0] >= 4:  # its header and three batches
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert store.list_runs() == []
    [journal] = journals.glob("*.jsonl")
    kept = len(journal.read_text().splitlines()) - 1
    assert kept >= 3

    events = []
    result = zoo.evaluate(FLOAT, sample_dir, limit=LIMIT, target="board", batch=4, progress=events.append)
    resumed = result["engine"]["resumed_images"]
    assert resumed >= 12 and resumed % 4 == 0
    assert any("going on from" in e.get("message", "") for e in events)
    assert (result["top1"], result["top5"], result["n"]) == (host["top1"], host["top5"], LIMIT)
    assert result["per_image"] == host["per_image"]
    assert [r.card_id for r in store.list_runs()] == [FLOAT]
    assert not journal.exists()


def test_a_journal_keeps_whole_lines_and_counts_each_image_once(zoo_home):
    journal = Journal({"card": "c", "target": "t"})
    runtime = {"name": "onnxruntime", "version": "1"}
    assert journal.open(runtime, fresh=False) == 0
    journal.add([0, 1], [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], [2])
    journal.add([1, 3], [[6, 7, 8, 9, 10], [0, 1, 2, 3, 4]], [])  # image 1 again (a batch sent twice)
    journal.release()
    with open(journal.path, "a") as f:
        f.write('{"images": [4], "top5": [[1, 2')  # a kill in the middle of a line
    again = Journal({"card": "c", "target": "t"})
    assert again.open(runtime, fresh=False) == 4 and again.done[2] is None and again.done[1] == [6, 7, 8, 9, 10]
    again.add([4], [[9, 9, 9, 9, 9]], [])
    again.release()
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)  # the cut line is gone, not glued to
    other = Journal({"card": "c", "target": "t"})
    assert other.open({**runtime, "version": "2"}, fresh=False) == 0  # another runtime version: started over
    busy = Journal({"card": "c", "target": "t"})
    with pytest.raises(Exception, match="another zoo process"):
        busy.open(runtime, fresh=False)
    other.remove()
    assert not journal.path.exists()


def test_packed_tensors_come_back_bit_for_bit():
    import numpy as np

    rng = np.random.default_rng(1)
    for array in (rng.random((3, 224, 224, 3), dtype=np.float32), rng.integers(0, 256, (2, 5, 7, 3), np.uint8),
                  np.zeros((0, 3, 4, 4), np.float32), rng.integers(-99, 99, (4, 1001)).astype(np.int64)):
        meta, payload = board_runner.pack(array)
        back = board_runner.unpack(json.loads(json.dumps(meta)), payload)
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    with pytest.raises(ValueError, match="not a numeric tensor"):
        board_runner.unpack({"shape": [1], "dtype": "|O"}, b"")


def test_cards_the_board_cannot_run_are_skipped_with_the_reason(board, sshd, sample_dir):
    with pytest.raises(NothingMeasured) as caught:
        zoo.eval_sweep(["stm32/mobilenet_v2_0.35_224", "rdk/mobilenetv2_224x224_nv12-x5"], sample_dir, limit=8,
                       target="board")
    reasons = {r["card_id"]: r["reason"] for r in caught.value.summary["skipped"]}
    assert "runs only on" in reasons["stm32/mobilenet_v2_0.35_224"]
    assert "runs on an RDK BPU only" in reasons["rdk/mobilenetv2_224x224_nv12-x5"]
    targets.add("x5", sshd.destination, runtime="rdk-bpu", port=sshd.port, identity=str(sshd.client_key))
    with pytest.raises(NothingMeasured) as caught:
        zoo.eval_sweep([QUANT, "rdk/mobilenetv2_224x224_nv12-x5"], sample_dir, limit=8, target="x5")
    assert all("no BPU eval runner" in r["reason"] for r in caught.value.summary["skipped"])
    bare = sshd.fake_bin.parent / "python-without-packages"  # a board with Python but not numpy nor a runtime
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    targets.add("bare", sshd.destination, runtime="onnxruntime", port=sshd.port, identity=str(sshd.client_key),
                python=str(bare))
    with pytest.raises(NothingMeasured) as caught:
        zoo.eval_sweep([FLOAT, QUANT], sample_dir, limit=8, target="bare")
    [first, second] = caught.value.summary["skipped"]
    assert "bare: the board cannot import onnxruntime (No module named 'numpy')" in first["reason"]
    assert "bare" in second["reason"]  # what to do is said once for both cards, in the summary's hints
    assert [h["cards"] for h in caught.value.summary["hints"] if "Install onnxruntime and numpy" in h["hint"]]
    with pytest.raises(UsageError, match="leave out --target"):
        zoo.eval_sweep([QUANT], sample_dir, limit=8, target="board", ray=True)
    assert store.list_runs() == []


def test_bench_on_a_board_times_a_tflite_on_litert_or_its_conversion_on_onnxruntime(board, sshd):
    [litert] = zoo.bench_sweep([QUANT], target="board", runtime="litert", iters=6, seconds=0, warmup=1,
                               rounds=2)["records"]
    [ort] = zoo.bench_sweep([QUANT], target="board", iters=6, seconds=0, warmup=1, rounds=2)["records"]
    assert (litert["status"], litert["runtime"], litert["device"]) == ("measured", "litert", "board")
    assert (ort["status"], ort["runtime"], ort["device"]) == ("measured", "onnxruntime", "board")
    runs = {r.runtime: r for r in store.list_runs(kind="bench", card_id=QUANT)}
    assert runs["litert"].artifact_file.endswith(".tflite") and runs["onnxruntime"].artifact_file.endswith(".tflite")
    # the file as it is on the board's LiteRT, its QDQ conversion on the board's ONNX Runtime
    from importlib.metadata import version
    assert runs["litert"].runtime_version == version("ai-edge-litert")
    assert runs["onnxruntime"].runtime_version == version("onnxruntime")
    assert runs["litert"].precision == runs["onnxruntime"].precision == "uint8"
    # a runtime the board does not run, and a card with no .tflite on LiteRT
    with pytest.raises(UsageError, match="that board runs onnxruntime, or litert"):
        zoo.bench_sweep([QUANT], target="board", runtime="openvino")
    targets.add("x5", sshd.destination, runtime="rdk-bpu", port=sshd.port, identity=str(sshd.client_key))
    with pytest.raises(UsageError, match="that board runs rdk-bpu"):
        zoo.bench_sweep([QUANT], target="x5", runtime="litert")
    with pytest.raises(UnsupportedArtifactError, match="has no artifact that litert runs"):
        zoo.bench_sweep(["timm/mobilenetv2_050.lamb_in1k"], target="board", runtime="litert")


def test_compare_measure_on_a_board_evaluates_what_the_board_lacks(board, sample_dir, link_sample, tmp_path):
    images = link_sample(tmp_path / "images", sorted(p.name for p in sample_dir.glob("*.JPEG"))[:16])
    zoo.evaluate(QUANT, images)  # on this host: the board still lacks it
    df = zoo.compare([QUANT], metric="accuracy", measure=True, data=images, target="board")
    assert df.attrs["measured"]["measured"] == [QUANT]
    board_runs = [r for r in store.list_runs(kind="eval") if r.device == "board"]
    assert [(r.card_id, r.n_images) for r in board_runs] == [(QUANT, 16)]
    assert (df["basis"] == "measured on target").any() and (df["basis"] == "measured here").any()
    again = zoo.compare([QUANT], metric="accuracy", measure=True, data=images, target="board")
    assert again.attrs["measured"] is None  # nothing lacked: nothing measured twice
    # on this host, the board's run does not stand in for the host's
    zoo.compare([FLOAT], metric="accuracy", measure=True, data=images, target="board")
    here = zoo.compare([FLOAT], metric="accuracy", measure=True, data=images)
    assert here.attrs["measured"]["measured"] == [FLOAT]
