"""Target boards over a real OpenSSH server on 127.0.0.1: this machine plays the board."""
from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import pytest

import sshd_server
from zoo.measure import targets
from zoo.results import store
from zoo.errors import TargetError, UnsupportedArtifactError, UsageError
import zoo
from zoo.measure.targets.hrt import parse_perf



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
    assert info["litert_version"]  # this "board" has LiteRT too: eval --runtime litert runs there
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
    # one runner held the model for every round: loaded and first run once, timed apart; its memory on the board
    assert result["load_ms"] > 0 and result["first_inference_ms"] > 0
    assert 0 < result["model_peak_bytes"] < result["peak_rss_bytes"]
    # the board's clocks and temperatures, read there before and after: this VM has neither cpufreq nor thermal
    # zones (as ../shared/data/gpu-h200/sys-thermal-cpufreq.txt shows of another VM), and the run says so
    conditions = result["conditions"]
    assert conditions["before"]["cpufreq"] is None and conditions["after"]["thermal"] is None
    assert "temperature" in conditions["unreadable"] and conditions["throttled"] == []
    [run] = store.list_runs(kind="bench")
    assert run.device == "board" and run.metrics["p50_ms"] == result["p50_ms"]
    assert run.metrics["peak_rss_bytes"] == result["peak_rss_bytes"] and run.metrics["conditions"] == conditions
    # The model was copied once, under its sha256; a second run reuses it.
    ssh = targets.transport(targets.get("board"))
    remote = f"{targets.REMOTE_DIR}/{result['artifact']['sha256']}/{Path(result['artifact']['path']).name}"
    before = ssh.run(f"stat -c %Y.%i {remote}").stdout
    zoo.bench("timm/mobilenetv2_050.lamb_in1k", synthetic=True, target="board", iters=3, seconds=0, warmup=0,
              rounds=1)
    assert ssh.run(f"stat -c %Y.%i {remote}").stdout == before


def test_rdk_board_runs_hrt_model_exec(zoo_home, sshd, monkeypatch, rdk_dir, tmp_path):
    fake = sshd.fake_bin / "hrt_model_exec"
    calls = tmp_path / "calls"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat {rdk_dir / 'hrt_model_exec_perf_MobileNetV2.txt'}\n")
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
    # the tool's default 200 frames (0.2 s) are raised to the minimums: a warm-up run sizes the rounds, which
    # together last the default 3 s at the recorded 1152 FPS and reach MLPerf's 662 queries for a p99
    frames = [int(line.split("--frame_count ")[1].split()[0]) for line in calls.read_text().splitlines()]
    rounds = result["rounds"]
    assert frames[0] == 50 and len(frames) == 1 + rounds
    assert all(f == math.ceil(3.0 / rounds * 1152.067096) for f in frames[1:]) and sum(frames[1:]) >= 3456


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


def _sysfs(root: Path, mhz: list[float], max_mhz: float, governor: str, zones: dict[str, float]) -> Path:
    """A /sys tree in the kernel's own units (cpufreq in kHz, thermal zones in millidegrees C), for the readings a
    real board gives and this VM cannot (its /sys has neither)."""
    for number, clock in enumerate(mhz):
        folder = root / f"sys/devices/system/cpu/cpu{number}/cpufreq"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "scaling_cur_freq").write_text(f"{int(clock * 1000)}\n")
        (folder / "cpuinfo_max_freq").write_text(f"{int(max_mhz * 1000)}\n")
        (folder / "scaling_governor").write_text(governor + "\n")
    for number, (kind, celsius) in enumerate(zones.items()):
        folder = root / f"sys/class/thermal/thermal_zone{number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "type").write_text(kind + "\n")
        (folder / "temp").write_text(f"{int(celsius * 1000)}\n")
    return root


def test_clocks_and_temperatures_are_read_per_cpu_and_a_throttled_run_is_flagged(tmp_path):
    from zoo.cli.measure import conditions_lines
    from zoo.measure import machine

    cool = machine.clocks_and_heat(_sysfs(tmp_path / "before", [1500, 1500, 1500, 1500], 1500, "performance",
                                          {"cpu-thermal": 45.0, "gpu-thermal": 43.5}))
    assert cool["cpufreq"]["cpu3"] == {"cur_mhz": 1500.0, "max_mhz": 1500.0, "governor": "performance"}
    assert cool["thermal"] == {"thermal_zone0 (cpu-thermal)": 45.0, "thermal_zone1 (gpu-thermal)": 43.5}
    assert (cool["cpu_mhz"], cool["cpu_mhz_source"], cool["temperature_c"]) == (1500.0, "cpufreq", 45.0)
    hot = machine.clocks_and_heat(_sysfs(tmp_path / "after", [1000, 1000, 1500, 1500], 1500, "performance",
                                         {"cpu-thermal": 82.0, "gpu-thermal": 70.0}))
    assert machine.throttled(cool, hot) == ["CPU clock fell from 1500 to 1250 MHz", "temperature rose from 45 to 82 C"]
    drift = {**machine.drift(cool, hot), "throttled": machine.throttled(cool, hot)}
    lines = conditions_lines(drift)
    assert lines[0] == "clocks 1500 -> 1250 MHz (mean), governor performance; temperature 45 -> 82 C"
    assert lines[1].startswith("throttled: CPU clock fell") and "--cooldown" in lines[1]
    assert machine.throttled(cool, machine.clocks_and_heat(tmp_path / "before")) == []
    bare = machine.clocks_and_heat(tmp_path / "nothing")  # what a VM gives: no cpufreq, no thermal zones
    assert (bare["cpufreq"], bare["thermal"], bare["cpu_mhz"], bare["temperature_c"]) == (None, None, None, None)
    assert machine.throttled(bare, bare) == []
    assert conditions_lines({"before": bare, "after": bare, "throttled": []}) == [
        "clocks unreadable (no cpufreq); temperature unreadable (no thermal zone)"]


def test_bench_cli_on_a_board_shows_duration_percentiles_memory_and_conditions(zoo_home, sshd):
    from typer.testing import CliRunner

    from zoo_cli import app

    add_board(sshd)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["bench", "timm/mobilenetv2_050.lamb_in1k", "--synthetic-weights", "--target",
                                      "board", "--seconds", "0.6", "--rounds", "3", "--cooldown", "0.4"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.6 + 2 * 0.4  # timed, and idle before the second and third rounds
    out = result.stdout
    assert re.search(r"\d+ calls in 0\.[56] s timed, 3 rounds; with 99% confidence p90 <= [\d.]+ ms", out)
    assert "(runner on the board); the model's own" in out
    assert "clocks unreadable (no cpufreq); temperature unreadable (no thermal zone)" in out
    [run] = store.list_runs(kind="bench")
    assert run.settings["cooldown"] == 0.4
