"""Footings: measurements compared only with what they can be compared with, and ranks that survive noise.

Real runs on this host (ONNX Runtime, LiteRT, the real coral files and sample images) where they can exist here;
accelerator runs from the real output recorded on an NVIDIA H200 (../shared/data/gpu-h200), since no GPU exists
here: the driver's own `nvidia-smi` answers are replayed by an executable on PATH, and the bench results zoo
printed there are read back as runs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import zoo
from zoo.measure import latency, machine
from zoo.results import store
from zoo.results.ranking import rank_groups, separable_front
from zoo.results.records import Run

CORAL = "coral/mobilenet_v2_1.0_224_quant"
AXIS = "axis/mobilenet_v2_1.0_224_quant"  # publishes coral's very bytes


@pytest.fixture
def h200(shared_data) -> Path:
    return shared_data / "gpu-h200"


@pytest.fixture
def coral_mirror(coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    return coral_dir


@pytest.fixture
def recorded_nvidia_smi(h200, tmp_path, monkeypatch):
    """An `nvidia-smi` on PATH that answers zoo's query with what the real one printed on the H200."""
    folder = tmp_path / "bin"
    folder.mkdir()
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\ncat '{h200 / 'nvidia-smi-query-noheader-nounits.csv'}'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tool


# ---------------------------------------------------------------- the accelerator is the device

def test_an_accelerator_is_named_from_its_driver(recorded_nvidia_smi, h200, monkeypatch):
    gpu = machine.accelerator("CUDAExecutionProvider", 0)
    assert gpu["device"] == "NVIDIA H200 (140 GiB)" and gpu["driver"] == "580.159.04"
    assert gpu["memory_bytes"] == 143771 * 2**20 and gpu["uuid"].startswith("GPU-eb8b01d6")
    assert machine.accelerator("TensorrtExecutionProvider")["name"] == "NVIDIA H200"
    # CUDA_VISIBLE_DEVICES renumbers the devices a session sees: by index and by UUID
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-eb8b01d6")
    assert machine.accelerator("CUDAExecutionProvider", 0)["name"] == "NVIDIA H200"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    unreadable = machine.accelerator("CUDAExecutionProvider", 0)
    assert unreadable["name"] is None and "name unreadable" in unreadable["device"]
    assert "Xeon" not in unreadable["device"]  # never the host CPU


def test_a_gpu_run_is_named_after_the_gpu_and_ranked_apart_from_the_cpu(recorded_nvidia_smi, h200, tmp_path):
    """A bench result built the way latency builds it after a CUDA session, from samples recorded on the H200."""
    recorded = [json.loads(line) for line in (h200 / "zoo-bench_cuda_1.jsonl").read_text().splitlines()][:3]
    runs = []
    for i, old in enumerate(recorded):
        timed = latency.Timed({"id": old["card_id"]}, tmp_path / "m.onnx", None, True, "fp32")
        timed.path.write_bytes(b"not inspected")
        per_round = len(old["samples_ms"]) // 6
        timed.samples = [old["samples_ms"][k * per_round:(k + 1) * per_round] for k in range(6)]
        described = {**old["runtime"], "accelerator": machine.accelerator(old["runtime"]["provider"], 0)}
        timed.first = {"load_ms": old["load_ms"], "first_inference_ms": old["first_inference_ms"],
                       "model_peak_bytes": None, "runtime": described}
        result = latency._result(timed, "ab" * 32, target=None, batch=1, warmup=20, cpus=None, conditions=None)
        assert result["device"] == "NVIDIA H200 (140 GiB)" and result["environment"]["device"] != result["device"]
        runs.append(Run.from_bench({**result, "settings": {"provider": "cuda"}}))
    for run in runs:
        store.record(run)
    cpu = zoo.bench("timm/mobilenetv2_035", synthetic=True, iters=12, seconds=0, warmup=1)  # a real CPU run
    df = zoo.compare(["timm/*"], metric="latency", device="host")
    have = df[~df["missing"]]
    gpu_rows = have[have["provider"] == "cuda"]
    assert set(gpu_rows["device"]) == {"NVIDIA H200 (140 GiB)"} and gpu_rows["footing"].nunique() == 1
    cpu_row = have[have["id"].eq("timm/mobilenetv2_035") & have["provider"].eq("cpu")]
    assert cpu_row["latency_ms"].tolist() == [cpu["p50_ms"]]  # the CPU run did not replace the CUDA one
    assert cpu_row["footing"].iloc[0] != gpu_rows["footing"].iloc[0]


def test_old_accelerator_runs_are_footing_unknown_never_merged(h200):
    """Runs zoo stored before it named accelerators (recorded on the H200: device = the host CPU)."""
    for name in ("zoo-bench_cuda_1.jsonl", "zoo-bench_cpu_1.jsonl"):
        for line in (h200 / name).read_text().splitlines()[:2]:
            run = Run.from_bench(json.loads(line))
            run.machine_fingerprint = machine.host()["fingerprint"]  # as if measured on this host
            store.record(run)
    df = zoo.compare(["timm/*"], metric="latency", device="host")
    have = df[~df["missing"]]
    unknown = have[have["device"].str.startswith("footing unknown")]
    assert len(unknown) == 2 and set(unknown["provider"]) == {"cuda"}
    assert set(have.loc[have["provider"] == "cpu", "device"]) == {"Intel(R) Xeon(R) Processor (16 cores)"}


# ---------------------------------------------------------------- what makes a footing

def test_threads_make_their_own_footing():
    one = zoo.bench("timm/mobilenetv2_035", synthetic=True, threads=1, iters=6, seconds=0, warmup=1)
    default = zoo.bench("timm/mobilenetv2_035", synthetic=True, iters=6, seconds=0, warmup=1)
    assert one["run_id"] != default["run_id"]
    df = zoo.compare(["timm/mobilenetv2_035"], metric="latency", device="host")
    have = df[~df["missing"]]
    assert have["footing"].nunique() == 2 and have["threads"].isna().sum() == 1 and have["threads"].max() == 1
    assert {f.rsplit(" · ", 1)[-1] for f in have["footing"]} == {"1 thread", "default threads"}
    assert list(have["rank"]) == [1, 1]  # each first on its own footing


def test_an_int8_card_is_never_timed_as_an_fp32_stand_in():
    summary = zoo.bench_sweep(["stm32/mobilenet_v2_0.35_128_int8", "timm/mobilenetv2_035"], iters=2, seconds=0,
                              warmup=0)
    (skipped,) = summary["skipped"]
    assert skipped["card_id"] == "stm32/mobilenet_v2_0.35_128_int8" and "no int8 file to time" in skipped["reason"]
    assert summary["measured"] == ["timm/mobilenetv2_035"]
    assert [r.card_id for r in store.list_runs()] == ["timm/mobilenetv2_035"]


def test_the_same_file_is_timed_once_and_shown_for_both_cards(coral_mirror):
    summary = zoo.bench_sweep([AXIS, CORAL], runtime="onnxruntime", iters=20, seconds=0, warmup=1)
    records = {r["card_id"]: r for r in summary["records"]}
    assert records[AXIS]["p50_ms"] == records[CORAL]["p50_ms"]  # one measurement
    assert records[AXIS]["same_file_as"] == [CORAL] and records[CORAL]["same_file_as"] == [AXIS]
    df = zoo.compare(["coral/*", "axis/*"], metric="latency", device="host")
    have = df[~df["missing"]].set_index("id")
    assert have.loc[AXIS, "rank_group"] == have.loc[CORAL, "rank_group"] == "1–2"  # noise cannot order one file


def test_claims_beside_a_measurement_name_their_device(coral_mirror):
    zoo.bench(CORAL, iters=6, seconds=0, warmup=1)
    df = zoo.compare(["paddleclas/MobileNetV2_x0_25", CORAL, AXIS], metric="latency")
    measured = df[df["basis"] == "measured here"].set_index("id")
    assert measured.loc[CORAL, "latency_ms_claimed"] != measured.loc[CORAL, "latency_ms_claimed"]  # coral claims none
    # a measurement's neighbour claim is never shown without where it was made
    claimed = df[df["latency_ms_claimed"].notna()]
    assert claimed["claimed_device"].notna().all()


# ---------------------------------------------------------------- accuracy: one set of images at a time

def test_sample_accuracy_never_shares_the_claimed_axis(coral_mirror, sample_dir, tmp_path):
    from zoo.results import plots

    zoo.evaluate(CORAL, sample_dir, limit=40)
    zoo.evaluate(CORAL, sample_dir, limit=20)  # smaller: never replaces the 40-image run beside the claim
    df = zoo.compare(["coral/*", "axis/*", "tf-slim/*"], metric="accuracy", pareto=True)
    claimed = df[df["basis"] == "claimed"]
    assert claimed["footing"].nunique() == 1 and claimed["top1_pct"].notna().all()
    assert not df.loc[df["id"] == CORAL, "basis"].eq("claimed").any()  # coral claims no top-1
    measured = df[df["basis"] == "measured here"]
    assert sorted(measured["dataset_images"]) == [20, 40] and measured["footing"].nunique() == 2
    assert all(f.startswith("measured on imagenet-sample (") for f in measured["footing"])
    assert df.loc[df["id"] == AXIS, "measured_images"].dropna().tolist() == [40]  # the largest run, lent by file
    records = json.loads(df.to_json(orient="records"))
    assert {r["dataset_fingerprint"] is not None for r in records if r["basis"] == "measured here"} == {True}
    for title, y_title, rows in plots.panels(df, "accuracy"):
        kinds = set(rows["basis"])
        assert kinds == {"claimed"} or kinds == {"measured here"}, title  # never one panel for both
        assert ("claimed" in y_title) == (kinds == {"claimed"})
    # a frontier only within one panel's footing, and never through the measured sample figures
    assert not df.loc[df["basis"] == "claimed", "pareto"].isna().any()
    # the table says which run sits beside the claims: one note, for the set a shown "yours" cell names
    from typer.testing import CliRunner

    from zoo_cli import app

    zoo.convert(CORAL, dequantize=True)
    zoo.evaluate(CORAL + "+float", sample_dir, limit=30)  # no claim: shown only with --wide, beside its own set
    out = CliRunner().invoke(app, ["compare", "coral/*", "axis/*", "--metric", "accuracy"]).output
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("yours %")] == [
        "yours %: your largest run on imagenet-sample (40 images)"]
    # coral's card states no MACs: the eval counted them on the file it ran, so its rows have a place on the
    # MACs axis; a row with no place (no claimed top-1 on a latency panel) is named under the plot, never dropped
    # in silence
    df = zoo.compare(["coral/*"], metric="accuracy")
    assert (df.loc[df["id"] == CORAL, "macs_m"].round(2) == 300.78).all()
    zoo.bench(CORAL + "+float", iters=4, seconds=0, warmup=1, rounds=1)
    out = CliRunner().invoke(app, ["compare", "coral/*", "tf-slim/*", "--metric", "latency", "--plot",
                                   str(tmp_path / "latency.png")]).output
    assert f"not drawn: 1 measured row(s) without claimed top-1 to place them: {CORAL}+float\n" in out
    out = CliRunner().invoke(app, ["compare", "coral/*", "tf-slim/*", "--metric", "accuracy", "--plot",
                                   str(tmp_path / "accuracy.png")]).output
    assert "drew" in out and "not drawn" not in out


def test_top5_shows_the_column_it_ranks_by():
    from typer.testing import CliRunner

    from zoo_cli import app

    result = CliRunner().invoke(app, ["compare", "'tf-slim/*'".strip("'"), "--metric", "top5"])
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1]
    assert "top-5 %" in header and header.index("top-5 %") < header.index("top-1 %")


def test_widths_sort_by_value_not_by_digits():
    ids = [r["id"] for r in zoo.list_cards("d-li14/mobilenetv2_0.*")]
    assert ids == ["d-li14/mobilenetv2_0.1", "d-li14/mobilenetv2_0.25", "d-li14/mobilenetv2_0.35",
                   "d-li14/mobilenetv2_0.5", "d-li14/mobilenetv2_0.75"]


# ---------------------------------------------------------------- storage and inspect: the card's own file

def test_storage_and_inspect_describe_the_file_the_source_ships(coral_mirror):
    zoo.bench(CORAL, runtime="onnxruntime", iters=4, seconds=0, warmup=1)  # times the converted QDQ ONNX
    row = zoo.compare([CORAL], metric="storage").iloc[0]
    assert row["size_mb"] == 3.610798 and row["artifact_file"].endswith(".tflite")
    assert 3.0 < row["converted_mb"] < 3.6 and row["converted_mb"] != row["size_mb"]  # labelled apart
    info = zoo.inspect(CORAL)
    assert (info["format"], info["size_bytes"], info["counted_on"]) == ("tflite", 3_610_798, "card's file")
    assert info["params"] == 3_488_800 or abs(info["params"] - 3.49e6) < 2e4  # the .tflite's, not the ONNX's 3.471 M


# ---------------------------------------------------------------- noise

def test_rank_ranges_follow_the_intervals():
    # a: 1.0 [0.9, 1.1]; b: 1.05 [1.0, 1.2] overlaps a; c: 2.0 [1.9, 2.1] apart from both; d: a claim, exact
    best, worst = rank_groups([1.0, 1.05, 2.0, 3.0], [0.9, 1.0, 1.9, float("nan")], [1.1, 1.2, 2.1, float("nan")],
                              higher_is_better=False)
    assert list(zip(best, worst)) == [(1, 2), (1, 2), (3, 3), (4, 4)]
    best, worst = rank_groups([100.0, 95.0], [90.0, 94.0], [101.0, 96.0], higher_is_better=True)
    assert list(zip(best, worst)) == [(1, 2), (1, 2)]


def test_a_star_only_where_noise_cannot_move_a_point_off_the_front():
    import pandas as pd

    df = pd.DataFrame({"latency_ms": [1.0, 1.05, 3.0], "lo": [0.9, 1.0, 2.9], "hi": [1.1, 1.2, 3.1],
                       "top1_pct": [60.0, 70.0, 75.0]})
    # a (1.0 ms, 60 %) is possibly no faster than b (70 %): no star; b and c are separable: stars
    flags = separable_front(df, "latency_ms", False, "top1_pct", cost_interval=("lo", "hi"))
    assert flags.tolist() == [False, True, True]


def test_the_p50_interval_comes_from_round_medians():
    assert latency.median_interval([1, 2, 3, 4, 5]) is None  # five rounds cannot reach 95%
    low, high, coverage = latency.median_interval([5, 1, 4, 2, 3, 6])
    assert (low, high) == (1, 6) and coverage == pytest.approx(1 - 2 / 64)
    low, high, coverage = latency.median_interval(list(range(10)))
    assert (low, high) == (1, 8) and coverage > 0.95  # ten rounds: one extreme round each side left out


def test_a_run_says_when_the_machine_drifted_under_it():
    before = {"at_s": 100.0, "busy_s": 1000.0, "own_s": 10.0, "cpu_mhz": 3000.0, "temperature_c": 45.0,
              "gpu": {"clocks_sm_mhz": 1980}}
    # 10 s of wall time: the machine ran 35 CPU-seconds, this process 20 of them: others kept 1.5 cores busy
    after = {"at_s": 110.0, "busy_s": 1035.0, "own_s": 30.0, "cpu_mhz": 2100.0, "temperature_c": 61.0,
             "gpu": {"clocks_sm_mhz": 1980}}
    found = machine.drift(before, after)
    assert found["others_cores"] == 1.5 and len(found["moved"]) == 3
    assert any("other processes kept 1.5 cores busy" in m for m in found["moved"])
    assert any("CPU clock" in m for m in found["moved"]) and any("temperature" in m for m in found["moved"])
    quiet = machine.drift(before, {**before, "at_s": 110.0, "busy_s": 1020.0, "own_s": 30.0})  # zoo's own work
    assert quiet["moved"] == [] and quiet["others_cores"] == 0.0 and "GPU temperature" in quiet["unreadable"]


def test_a_busy_neighbour_is_seen_in_a_real_run(synthetic_onnx):
    import subprocess
    import sys

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (result,) = latency.bench_models([latency.Timed({"id": "x/y", "claims": []}, synthetic_onnx())],
                                         seconds=1.0, warmup=1, rounds=2, threads=1)
    finally:
        burner.kill()
    assert result["conditions"]["others_cores"] > 0.5 and result["conditions"]["moved"]


def test_models_timed_together_share_every_round_in_a_new_order(synthetic_onnx):
    card = {"id": "x/y", "claims": []}
    models = [latency.Timed(card, synthetic_onnx(), None, True) for _ in range(3)]
    order = []
    results = latency.bench_models(models, iters=12, seconds=0, warmup=0, rounds=4, seed=7,
                                   progress=lambda done, total: order.append(done))
    assert order == list(range(1, 13))  # 3 models x 4 rounds
    assert all(r["rounds"] == 4 and len(r["round_p50_ms"]) == 4 and r["iterations"] == 12 for r in results)
    assert all(r["conditions"]["before"]["loadavg_1m"] is not None for r in results)


def test_one_file_on_each_runtime_side_by_side(coral_mirror):
    """An int8 .tflite on LiteRT and on ONNX Runtime (its QDQ conversion): each ranked in its own footing, and
    shown side by side so a user sees which runtime makes it fast here."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from zoo_cli import app

    for runtime in ("litert", "onnxruntime"):
        proc = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "bench", CORAL, "--runtime",
                               runtime, "--threads", "1", "--iters", "20", "--seconds", "0", "-q"],
                              capture_output=True, text=True, env=os.environ)
        assert proc.returncode == 0, proc.stderr
        assert "XNNPACK" not in proc.stderr  # LiteRT's own log line stays out of zoo's output
    result = CliRunner().invoke(app, ["compare", "coral/*", "--metric", "latency", "--device", "host"])
    assert result.exit_code == 0, result.output
    text = result.stdout[result.stdout.index("one file on each runtime here"):].splitlines()
    assert "1 thread" in text[0] and text[1].split()[1:] == ["litert", "·", "uint8", "onnxruntime", "·", "uint8"]
    assert text[2].split()[0] == CORAL and len(text[2].split()) == 5  # a p50 and its interval per runtime
    df = zoo.compare(["coral/*"], metric="latency", device="host")
    assert df.loc[~df["missing"], "footing"].nunique() == 2  # still ranked apart: the runtime is a footing
