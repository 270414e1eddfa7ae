"""Target boards over a real OpenSSH server on 127.0.0.1: this machine plays the board."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import sshd_server
from zoo.measure import targets
from zoo.results import store
from zoo.errors import TargetError, UnsupportedArtifactError, UsageError
import zoo
from zoo.measure.targets.hrt import parse_perf



@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server, proc = sshd_server.start(tmp_path_factory.mktemp("sshd"))
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def rdk_dir(shared_data):
    """Real `hrt_model_exec perf` output recorded on RDK X5 boards."""
    return shared_data / "rdk"


def add_board(sshd, name="board", runtime="onnxruntime", python=sys.executable):
    return targets.add(name, sshd.destination, runtime=runtime, port=sshd.port, identity=str(sshd.client_key),
                       python=python)


def test_recorded_x5_output_parses(rdk_dir):
    perf = parse_perf((rdk_dir / "hrt_model_exec_perf_MobileNetV2.txt").read_text())
    assert (perf["threads"], perf["mean_ms"], perf["fps"]) == (4, 3.420286, 1152.067096)
    assert (perf["frames"], perf["min_ms"], perf["max_ms"]) == (200, 2.476, 3.921)
    assert perf["runtime_version"] == "1.23.5_(3.15.47"
    other = parse_perf((rdk_dir / "hrt_model_exec_perf_ConvNeXt_atto.txt").read_text())
    assert (other["threads"], other["mean_ms"], other["fps"]) == (4, 5.397686, 732.104618)
    with pytest.raises(TargetError, match="printed no"):
        parse_perf("hrt_model_exec: error while loading model\n")


def test_add_ls_rm_and_bad_input(zoo_home, sshd):
    add_board(sshd)
    assert [t["name"] for t in targets.ls()] == ["board"]
    with pytest.raises(UsageError, match="exists"):
        add_board(sshd)
    with pytest.raises(UsageError, match="not USER@HOST"):
        targets.add("b2", "nohost", runtime="onnxruntime")
    with pytest.raises(UsageError, match="unknown target runtime"):
        targets.add("b2", "u@h", runtime="tensorrt")
    with pytest.raises(UsageError, match="may hold only"):
        targets.add("b 2", "u@h", runtime="onnxruntime")
    targets.rm("board")
    assert targets.ls() == []
    with pytest.raises(UsageError, match="no target named 'board'"):
        targets.rm("board")


def test_check_finds_the_runtime_or_says_what_is_missing(zoo_home, sshd):
    add_board(sshd)
    info = targets.check("board")
    assert info["reachable"] and info["runtime_version"] and info["os"].startswith("Linux")
    add_board(sshd, name="nopython", python="/nonexistent/python3")
    with pytest.raises(TargetError, match="cannot import onnxruntime"):
        targets.check("nopython")
    add_board(sshd, name="rdk", runtime="rdk-bpu")
    with pytest.raises(TargetError, match="hrt_model_exec is not on the board's PATH"):
        targets.check("rdk")


def test_onnxruntime_runner_on_the_board_is_stored_under_the_target(zoo_home, sshd):
    add_board(sshd)
    # two rounds (the default ten cost ~20 s here): what this checks is the board's side, and each round on a board
    # is a few ssh calls
    result = zoo.bench("timm/mobilenetv2_050.lamb_in1k", synthetic=True, target="board", iters=12,
                        seconds=0, warmup=1, rounds=2)
    assert result["device"] == "board" and result["iterations"] == 12
    assert result["min_ms"] <= result["p50_ms"] <= result["max_ms"]
    assert result["environment"]["target"] == "board" and result["runtime"]["name"] == "onnxruntime"
    [run] = store.list_runs(kind="bench")
    assert run.device == "board" and run.metrics["p50_ms"] == result["p50_ms"]
    # The model was copied once, under its sha256; a second run reuses it.
    ssh = targets.transport(targets.get("board"))
    remote = f"{targets.REMOTE_DIR}/{result['artifact']['sha256']}/{Path(result['artifact']['path']).name}"
    before = ssh.run(f"stat -c %Y.%i {remote}").stdout
    zoo.bench("timm/mobilenetv2_050.lamb_in1k", synthetic=True, target="board", iters=3, seconds=0, warmup=0,
              rounds=1)
    assert ssh.run(f"stat -c %Y.%i {remote}").stdout == before


def test_rdk_board_runs_hrt_model_exec(zoo_home, sshd, monkeypatch, rdk_dir):
    fake = sshd.fake_bin / "hrt_model_exec"
    fake.write_text(f"#!/bin/sh\ncat {rdk_dir / 'hrt_model_exec_perf_MobileNetV2.txt'}\n")
    fake.chmod(0o755)
    mirror = zoo_home / "mirror"
    mirror.mkdir(parents=True)
    (mirror / "mobilenetv2_224x224_nv12.bin").write_bytes(b"stand-in for the X5 .bin: the board is simulated")
    monkeypatch.setenv("ZOO_MIRROR", str(mirror))
    add_board(sshd, name="x5", runtime="rdk-bpu")
    try:
        with pytest.warns(UserWarning, match="trusting it on first use"):  # the card publishes no hash
            result = zoo.bench("rdk/mobilenetv2_224x224_nv12-x5", target="x5", threads=4, rounds=2)
    finally:
        fake.unlink()
    assert (result["runtime"]["threads"], result["mean_ms"], result["fps"]) == (4, 3.420286, 1152.067096)
    assert result["device"] == "x5" and result["p50_ms"] is None
    [run] = store.list_runs(kind="bench")
    assert run.runtime == "rdk-bpu" and run.metrics["mean_ms"] == 3.420286


def test_a_model_the_target_cannot_run(zoo_home, sshd, monkeypatch, rdk_dir):
    monkeypatch.setenv("ZOO_MIRROR", str(rdk_dir.parent / "coral"))
    add_board(sshd)
    # (a .tflite card on an ONNX board runs its QDQ ONNX conversion: tests/test_convert.py)
    with pytest.raises(UnsupportedArtifactError, match=r"its artifact \(keras-h5\) runs only on"):
        zoo.bench("stm32/mobilenet_v2_0.35_224", target="board", iters=1)
    add_board(sshd, name="rdk", runtime="rdk-bpu")
    with pytest.raises(TargetError, match="no artifact for the RDK BPU"):
        zoo.bench("coral/mobilenet_v2_1.0_224_quant", target="rdk", iters=1)
    assert store.list_runs() == []


def test_unreachable_and_refused_logins_are_one_clear_error(zoo_home, sshd, tmp_path):
    sshd_server_closed = sshd_server._free_port()
    targets.add("gone", sshd.destination, runtime="onnxruntime", port=sshd_server_closed,
                identity=str(sshd.client_key))
    with pytest.raises(TargetError, match="unreachable"):
        targets.check("gone")
    stranger = tmp_path / "stranger"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    targets.add("locked", sshd.destination, runtime="onnxruntime", port=sshd.port, identity=str(stranger))
    with pytest.raises(TargetError, match="authentication failed"):
        zoo.bench("timm/mobilenetv2_050.lamb_in1k", synthetic=True, target="locked", iters=1)
    assert store.list_runs() == []
