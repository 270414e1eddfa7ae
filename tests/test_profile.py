"""`zoo bench --profile`: ONNX Runtime's per-operator profile (zoo.measure.profile) of real models, summarised,
stored with the run, and an int8 card's beside its float parent's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.measure.profile import FAMILY_OF, profile_file, summarise, versus

CORAL = "coral/mobilenet_v2_1.0_224_quant"
FLOAT, INT8 = CORAL + "+float", CORAL + "+float+int8"


def test_a_profile_accounts_for_every_node_of_every_run(synthetic_onnx):
    p = profile_file(synthetic_onnx(width=0.5, resolution=160), threads=1, runs=6, warmup=2)
    assert p["runs"] == 6 and p["batch"] == 1 and p["threads"] == 1
    # the per-type rows add up to the kernel time, their shares to 1; a MobileNetV2 is mostly convolutions
    assert sum(r["ms"] for r in p["by_op"]) == pytest.approx(p["kernel_ms"], rel=0.01)
    assert sum(r["share"] for r in p["by_op"]) == pytest.approx(1, abs=0.01)
    assert sum(r["share"] for r in p["by_family"]) == pytest.approx(1, abs=0.01)
    assert p["by_family"][0]["family"] == "conv" and p["by_family"][0]["share"] > 0.5
    assert p["kernel_ms"] <= p["run_ms"] and p["by_op"] == sorted(p["by_op"], key=lambda r: -r["ms"])
    # the 52 convolutions of a MobileNetV2 (its classifier is a Gemm): each runs once per run, whatever is fused
    convs = sum(r["calls"] for r in p["by_op"] if r["family"] == "conv")
    assert convs == 52 and all(r["calls"] == 1 for r in p["by_node"])
    assert len(p["by_node"]) <= 15 and p["nodes"] >= len(p["by_node"])


def test_a_profile_names_its_provider_as_bench_does(synthetic_onnx):
    from zoo.errors import UsageError

    model = synthetic_onnx(width=0.35, resolution=96)
    assert profile_file(model, runs=1, warmup=0, provider="cpu")["provider"] == "CPUExecutionProvider"
    with pytest.raises(UsageError, match="execution provider 'cuda' is not available"):  # no GPU here
        profile_file(model, runs=1, warmup=0, provider="cuda")


def test_only_the_last_runs_are_summarised():
    """Warm-up runs are left out: the summary takes the node events inside the last `runs` model runs."""
    def run(ts, dur, node_ms):
        return [{"cat": "Session", "name": "model_run", "ts": ts, "dur": dur},
                {"cat": "Node", "name": "conv_kernel_time", "ts": ts + 1, "dur": node_ms * 1000,
                 "args": {"op_name": "QLinearConv", "output_type_shape": [{"uint8": [1, 8, 8, 4]}]}},
                {"cat": "Node", "name": "add_kernel_time", "ts": ts + 2, "dur": 1000, "args": {"op_name": "Add"}}]

    events = run(0, 99_000, 90) + run(100_000, 5_000, 3) + run(200_000, 5_000, 3)
    p = summarise(events, runs=2)
    assert p["runs"] == 2 and p["run_ms"] == 5.0 and p["kernel_ms"] == 4.0
    assert p["by_op"] == [{"op": "QLinearConv", "ms": 3.0, "share": 0.75, "calls": 1.0, "family": "conv"},
                          {"op": "Add", "ms": 1.0, "share": 0.25, "calls": 1.0, "family": "add"}]
    assert p["by_node"][0]["output_shape"] == [1, 8, 8, 4] and FAMILY_OF["QLinearAdd"] == "add"
    side = versus(p, summarise(run(0, 9_000, 6), runs=1))
    assert side[0] == {"family": "conv", "int8_ms": 3.0, "float_ms": 6.0, "ratio": 0.5}
    assert side[-1] == {"family": "total (kernels)", "int8_ms": 4.0, "float_ms": 7.0, "ratio": round(4 / 7, 3)}


@pytest.fixture
def int8_card(tmp_path, sample_dir, coral_dir, link_sample):
    names = sorted(p.name for p in sample_dir.glob("*.JPEG"))[:12]
    zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])
    zoo.quantize(FLOAT, link_sample(tmp_path / "calib", names), calib_n=12)


def test_bench_profile_of_an_int8_card_shows_it_beside_its_float_parent(int8_card):
    from typer.testing import CliRunner

    import zoo_cli

    args = ["bench", INT8, "--iters", "8", "--warmup", "1", "--threads", "1", "--profile"]
    result = CliRunner().invoke(zoo_cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    p = record["profile"]
    assert {r["family"] for r in p["by_op"]} >= {"conv"} and "QLinearConv" in {r["op"] for r in p["by_op"]}
    assert "QLinearConv" not in {r["op"] for r in p["float"]["by_op"]}  # the parent is float
    families = {r["family"]: r for r in p["vs_float"]}
    assert families["conv"]["int8_ms"] == next(r["ms"] for r in p["by_family"] if r["family"] == "conv")
    assert families["conv"]["float_ms"] == next(r["ms"] for r in p["float"]["by_family"] if r["family"] == "conv")
    assert p["vs_float"][-1]["family"] == "total (kernels)"
    # stored with the run; asked again, the stored run (with its profile) is reused and shown as a table
    [run] = [r for r in zoo.runs(kind="bench") if r.card_id == INT8]
    assert run.metrics["profile"] == p and run.settings["profile"] is True
    text = CliRunner().invoke(zoo_cli.app, args)
    assert text.exit_code == 0 and "reused" in text.stdout, text.output
    lines = text.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"profile of {INT8}"))
    assert lines[start + 1].strip().startswith("int8 against float")
    assert lines[start + 2].split() == ["family", "int8", "ms", "float", "ms", "int8/float"]
    # `zoo report` shows the stored profile in a section of its own
    report = CliRunner().invoke(zoo_cli.app, ["report", "-o", str(Path(zoo.settings.zoo_home()) / "r.html"), INT8])
    assert report.exit_code == 0, report.output
    assert "Where the time goes" in (Path(zoo.settings.zoo_home()) / "r.html").read_text()
    # a bench without --profile does not reuse the profiled run's settings for nothing: it is a run of its own
    plain = CliRunner().invoke(zoo_cli.app, [a for a in args if a != "--profile"] + ["--json"])
    assert plain.exit_code == 0 and "profile" not in json.loads(plain.stdout.splitlines()[0])


def test_the_report_section_renders_a_profile(synthetic_onnx):
    from zoo.measure.profile import profile_run
    from zoo.results.int8_report import profile_section

    model = synthetic_onnx(width=0.5, resolution=96)
    p = profile_run(model, model, threads=1, runs=3, warmup=1)
    text = profile_section("x/<b>", p, run_id=7)
    assert "x/&lt;b&gt; (run 7)" in text and text.count("<table>") == 3 == text.count("</table>")
    assert all(r["op"] in text for r in p["by_op"]) and "total (kernels)" in text
