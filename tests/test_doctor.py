"""The quantization doctor (zoo.measure.doctor, zoo.engine.quantize.doctor) on the real coral float model quantized
badly on purpose: per-tensor int8 weights (minmax), which breaks MobileNetV2's depthwise convolutions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.measure.datasets import load_dataset
from zoo.measure.quantize import calibration_set

CORAL = "coral/mobilenet_v2_1.0_224_quant"
FLOAT, INT8 = CORAL + "+float", CORAL + "+float+int8"


@pytest.fixture(scope="module")
def bad(tmp_path_factory, sample_dir, coral_dir, link_sample):
    """(ZOO_HOME, calibration folder, held-out folder, the doctor's report): the coral float card quantized
    per-tensor (u8s8) on 40 sample images, its layers compared on 12, retried with --max-drop 10 on 100 others."""
    root = tmp_path_factory.mktemp("doctor")
    names = sorted(p.name for p in sample_dir.glob("*.JPEG"))
    link_sample(root / "calib", names[:40])
    link_sample(root / "held", names[500:600])
    from zoo.engine.quantize import doctor

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(root / "home"))
        zoo.convert(CORAL, dequantize=True, mirrors=[str(coral_dir)])
        report = doctor(zoo.get(FLOAT), calibration_set(load_dataset(root / "calib"), 40),
                        load_dataset(root / "held"), per_channel=False, format="u8s8", max_drop=10.0, images=12,
                        iters=20)
    return root / "home", root / "calib", root / "held", report


def test_the_doctor_names_the_broken_layers_and_max_drop_recovers_the_accuracy(bad, monkeypatch):
    _, _, _, report = bad
    layers, tries = report["layers"], report["tries"]
    # worst first: the first depthwise convolution loses the most dB (per-tensor weights cannot hold its channels)
    worst = layers[0]
    assert worst["what"].startswith("depthwise conv 3x3") and worst["lost_db"] > 15
    assert worst["lost_db"] == max(r["lost_db"] for r in layers if r["lost_db"] is not None)
    assert worst["input_sqnr_db"] > 30 > worst["sqnr_db"] and 0 < worst["cosine"] < 1
    # every layer is named by its node in the model and its measured figures are consistent
    assert all(r["lost_db"] == pytest.approx(r["input_sqnr_db"] - r["sqnr_db"], abs=0.02)
               for r in layers if r["lost_db"] is not None)
    assert len({r["node"] for r in layers}) == len(layers) and report["images"] == 12
    # the model as first quantized is broken; keeping the named layers in float recovers it within --max-drop
    assert tries[0]["keep_float"] == [] and tries[0]["drop_points"] > 30
    assert tries[1]["keep_float"] == [worst["node"]] and tries[1]["drop_points"] < tries[0]["drop_points"]
    chosen = tries[report["chosen"]]
    assert report["met"] and chosen["drop_points"] <= 10 and len(chosen["keep_float"]) <= 4
    assert all(t["drop_points"] > 10 for t in tries[:report["chosen"]])  # the first try that fits
    assert all(t["n"] == 100 and t["speedup"] > 0 and t["p50_ms"] > 0 for t in tries)
    # the derived card is the chosen try's model, and says which layers stayed float and why the format
    monkeypatch.setenv("ZOO_HOME", str(bad[0]))
    saved = zoo.get(INT8)
    quantization = saved["derived_from"]["quantization"]
    assert quantization["keep_float"] == sorted(chosen["keep_float"]) and quantization["format"] == "u8s8"
    assert quantization["per_channel"] is False and saved["artifacts"][0]["sha256"] == chosen["sha256"]


def test_layers_are_compared_on_this_hosts_real_int8_kernels(bad):
    """The model the doctor runs (every activation's quantized tensor an output) still computes what the plain
    int8 model computes: ONNX Runtime keeps its QLinearConv kernels, it does not fall back to float arithmetic."""
    import onnx
    import onnxruntime as ort

    from zoo.measure.doctor import _augmented

    _, calib, _, report = bad
    model = report["tries"][0]["path"]  # every layer quantized
    augmented, _, tensors = _augmented(report["quantize"]["prepared"], model)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(calib.parent / "optimized.onnx")
    plain = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    seeing = ort.InferenceSession(augmented, options, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(calib.parent / "optimized.onnx")).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32) * 2 - 1
    assert np.array_equal(plain.run(None, {"input": x})[0], seeing.run(None, {"input": x})[0])
    assert len(tensors) == len(seeing.get_outputs()) - 1


def test_explain_on_the_command_line(bad, monkeypatch):
    from typer.testing import CliRunner

    import zoo_cli

    home, calib, held, report = bad
    monkeypatch.setenv("ZOO_HOME", str(home))
    args = ["quantize", FLOAT, "--calib", str(calib), "--calib-n", "40", "--per-tensor", "--format", "u8s8",
            "--explain"]
    text = CliRunner().invoke(zoo_cli.app, args)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"{INT8}: u8s8 (uint8 activations, per-tensor int8 weights), minmax")
    header = lines[2].split()
    assert header[:3] == ["#", "node", "layer"] and "SQNR" in header and "cosine" in header
    assert lines[3].split()[1] == report["layers"][0]["node"]  # the worst layer first, as the library says
    # the report is kept beside the model, for `zoo report` (zoo.measure.doctor.saved): --json prints the same
    from zoo.measure.doctor import saved

    explained = saved(zoo.get(INT8))
    assert explained["tries"] == [] and explained["max_drop"] is None and explained["chosen"] is None
    assert explained["layers"][0]["node"] == report["layers"][0]["node"] and explained["images"] == 32
    assert [line.split()[1] for line in lines[3:13]] == [r["node"] for r in explained["layers"][:10]]
    # ... and `zoo report` shows it in a section of its own
    out = zoo.report(home / "report.html", [INT8])
    text = Path(out["path"]).read_text()
    assert "Quantization doctor" in text and report["layers"][0]["node"] in text
    # one card only; a bad --format is one line
    for bad_args, message in ((["quantize", "coral/*", "--calib", str(calib), "--explain"], "examine one card"),
                              (["quantize", FLOAT, "--calib", str(calib), "--calib-n", "10", "--format", "int4"],
                               "--format 'int4'")):
        refused = CliRunner().invoke(zoo_cli.app, bad_args)
        assert refused.exit_code == 2 and message in refused.stderr and refused.stderr.count("\n") == 1


def test_the_report_section_renders_the_doctors_report(bad):
    """zoo.results.int8_report.doctor_section: well-formed HTML holding the worst layers and every try, escaped."""
    from html.parser import HTMLParser

    from zoo.results.int8_report import doctor_section

    _, _, _, report = bad
    hostile = {**report, "layers": [{**report["layers"][0], "node": "<script>alert(1)</script>"}, *report["layers"][1:]]}
    text = doctor_section(hostile)
    assert "<script>" not in text and "&lt;script&gt;" in text

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.open = [], []

        def handle_starttag(self, tag, attrs):
            self.open.append(tag)
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])

        def handle_endtag(self, tag):
            assert self.open.pop() == tag  # every tag closed in order

        def handle_data(self, data):
            if self.open and self.open[-1] in ("td", "th"):
                self.tables[-1][-1].append(data)

    cells = Cells()
    cells.feed(doctor_section(report))
    assert not cells.open
    layers, tries = cells.tables
    assert layers[0][:3] == ["#", "node", "layer"] and layers[1][1] == report["layers"][0]["node"]
    assert len(layers) == 1 + min(10, len(report["layers"])) and len(tries) == 1 + len(report["tries"])
    assert [row[3] for row in tries[1:]] == [f"{t['drop_points']:+.2f}" for t in report["tries"]]
