"""int8 quantization: the calibration choice, ONNX Runtime's QDQ quantizer on a real model, the cache, McNemar."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

import zoo
from zoo.errors import DatasetError, UnsupportedArtifactError, UsageError
from zoo.measure.datasets import load_dataset
from zoo.measure.quantize import calibration_set, mcnemar_exact, quantize_file


def test_calibration_images_are_deterministic_and_spread_over_classes(sample_dir):
    dataset = load_dataset(sample_dir)
    first, again = calibration_set(dataset, 300), calibration_set(dataset, 300)
    assert first.items == again.items and len(first) == 300
    assert len({label for _, label in first.items}) == 300  # one per class before any class gets a second
    with pytest.raises(DatasetError, match="fewer than --calib-n 2000"):
        calibration_set(dataset, 2000)
    with pytest.raises(UsageError, match="at least 10"):
        calibration_set(dataset, 3)


def test_mcnemar_exact_is_the_two_sided_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    # b=3, c=9: 2 * P(X <= 3), X ~ Binomial(12, 1/2), summed by hand: (1 + 12 + 66 + 220) / 4096.
    assert mcnemar_exact(3, 9) == pytest.approx(2 * 299 / 4096) == mcnemar_exact(9, 3)
    assert mcnemar_exact(50, 50) == 1.0
    # Large n: the exact test agrees with the normal approximation's order of magnitude.
    z = (abs(200 - 260) - 1) / math.sqrt(460)
    assert mcnemar_exact(200, 260) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.15)


def test_quantize_a_float_model_to_qdq_and_reuse_it(synthetic_onnx, sample_dir):
    card = zoo.get("timm/mobilenetv2_050.lamb_in1k")
    float_model = synthetic_onnx(width=0.5, resolution=224)
    calibration = calibration_set(load_dataset(sample_dir), 12)
    record = quantize_file(card, float_model, calibration, method="minmax", per_channel=True)
    graph = onnx.load(record["path"]).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not record["cached"]
    assert record["calibration"]["n"] == 12 and record["calibration"]["fingerprint"] == calibration.fingerprint()
    assert record["options"]["per_channel"] is True and record["quantizer_version"] >= 1
    import onnxruntime as ort

    session = ort.InferenceSession(record["path"], providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.zeros((2, 3, 224, 224), np.float32)})[0]
    assert out.shape == (2, 1000) and np.isfinite(out).all()
    again = quantize_file(card, float_model, calibration, method="minmax", per_channel=True)
    assert again["cached"] and again["sha256"] == record["sha256"]
    other = quantize_file(card, float_model, calibration, method="minmax", per_channel=False)
    assert other["path"] != record["path"]  # the settings are part of the cache key


def test_bad_requests_are_one_clear_error(synthetic_onnx, sample_dir):
    calibration = calibration_set(load_dataset(sample_dir), 10)
    with pytest.raises(UnsupportedArtifactError, match="already quantized"):
        quantize_file(zoo.get("coral/mobilenet_v2_1.0_224_quant"), synthetic_onnx(), calibration)
    with pytest.raises(UsageError, match="--method 'kl'"):
        quantize_file(zoo.get("timm/mobilenetv2_050.lamb_in1k"), synthetic_onnx(width=0.5), calibration, method="kl")


def test_quantize_makes_a_derived_int8_card_that_eval_takes(synthetic_onnx, sample_dir, tmp_path):
    from typer.testing import CliRunner

    import zoo_cli

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.onnx").write_bytes(synthetic_onnx(width=0.5).read_bytes())
    cards = tmp_path / "cards" / "x"
    cards.mkdir(parents=True)
    card = {**zoo.get("timm/mobilenetv2_050.lamb_in1k"), "id": "x/float050", "source": "x", "name": "float050"}
    card.pop("claims", None)
    import hashlib
    import yaml

    sha = hashlib.sha256((mirror / "model.onnx").read_bytes()).hexdigest()
    card["artifacts"] = [{"file": "model.onnx", "format": "onnx", "precision": "fp32", "runtime": "onnxruntime",
                          "sha256": sha, "urls": ["https://example.org/model.onnx"]}]
    card["complexity"] = {}
    (cards / "float050.yaml").write_text(yaml.safe_dump(card))
    runner = CliRunner()
    result = runner.invoke(zoo_cli.app, ["--registry", str(tmp_path / "cards"), "quantize", "x/float050", "--calib",
                                         str(sample_dir), "--calib-n", "10", "--mirror", str(mirror), "--json"])
    assert result.exit_code == 0, result.output
    import json

    record = json.loads(result.stdout)
    assert record["id"] == "x/float050+int8" and record["derived_from"]["id"] == "x/float050"
    assert record["derived_from"]["calibration"]["n"] == 10
    listed = [c["id"] for c in zoo.list_cards("x/*", registries=[tmp_path / "cards"])]
    assert listed == ["x/float050", "x/float050+int8"]
    evaluated = zoo.evaluate("x/float050+int8", sample_dir, limit=12, store=False, registries=[tmp_path / "cards"])
    assert evaluated["n"] == 12 and evaluated["artifact"]["sha256"] == record["sha256"]
    again = runner.invoke(zoo_cli.app, ["--registry", str(tmp_path / "cards"), "quantize", "x/float050+int8",
                                        "--calib", str(sample_dir), "--calib-n", "10"])
    assert again.exit_code == 8 and "already quantized" in again.stderr and again.stderr.count("\n") == 1
