"""Runtimes on real sessions: ONNX Runtime on synthetic MobileNetV2 graphs, LiteRT on the coral models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from zoo.errors import InvalidCardError, UnsupportedArtifactError, UsageError
from zoo.measure.runtimes import runtime_for_path
from zoo.measure.runtimes import Model, open_runtime

NCHW_FLOAT = {"layout": "NCHW", "color": "RGB", "dtype": "float32"}


def _card(input_spec: dict, num_classes: int = 1000, resolution: int = 224) -> dict:
    return {"id": "test/model", "input": input_spec, "resolution": resolution, "num_classes": num_classes,
            "label_offset": num_classes - 1000}


def _images(n: int, size: int = 224, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_onnxruntime_nchw_float_passes_batches_through(synthetic_onnx):
    path = synthetic_onnx()
    model = Model.from_card(open_runtime(path), _card(NCHW_FLOAT))
    assert model.runtime.name == "onnxruntime" and model.runtime.version == ort.__version__
    assert model.batch_limit is None and model.runtime.provider == "CPUExecutionProvider"
    images = _images(3)
    batch = np.stack([model.encode(x) for x in images])
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32
    direct = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": images.transpose(0, 3, 1, 2).copy()})[0]
    assert np.allclose(model.scores(batch), direct, atol=1e-5)


def test_onnxruntime_nhwc_uint8_with_background_class(synthetic_onnx):
    spec = {"layout": "NHWC", "color": "RGB", "dtype": "uint8", "quant_scale": 1 / 128, "quant_zero_point": 128}
    path = synthetic_onnx(layout="NHWC", input_dtype="uint8", quant_scale=1 / 128, quant_zero_point=128, num_classes=1001)
    model = Model.from_card(open_runtime(path), _card(spec, 1001))
    images = _images(2)
    encoded = np.stack([model.encode(x) for x in images])
    quantized = np.clip(np.round(images * 128 + 128), 0, 255).astype(np.uint8)
    assert encoded.dtype == np.uint8 and np.array_equal(encoded, quantized)
    direct = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": quantized})[0]
    scores = model.scores(encoded)
    assert scores.shape == (2, 1000) and np.allclose(scores, direct[:, 1:], atol=1e-5)


def test_int8_input_is_clipped_to_its_range(synthetic_onnx):
    spec = {"layout": "NCHW", "color": "RGB", "dtype": "int8", "quant_scale": 0.01, "quant_zero_point": 0}
    path = synthetic_onnx(input_dtype="int8", quant_scale=0.01, quant_zero_point=0, resolution=96)
    model = Model.from_card(open_runtime(path), _card(spec, resolution=96))
    x = model.encode(np.full((96, 96, 3), 2.0, np.float32))
    assert x.dtype == np.int8 and x.shape == (3, 96, 96) and int(x.max()) == 127


def test_bgr_cards_get_reversed_channels(synthetic_onnx):
    model = Model.from_card(open_runtime(synthetic_onnx()), _card({**NCHW_FLOAT, "color": "BGR"}))
    image = _images(1)[0]
    assert np.array_equal(model.encode(image), image[..., ::-1].transpose(2, 0, 1))


def test_card_that_disagrees_with_the_file_is_refused(synthetic_onnx):
    runtime = open_runtime(synthetic_onnx())
    with pytest.raises(InvalidCardError, match=r"input shape \[N, 224, 224, 3\]"):
        Model.from_card(runtime, _card({**NCHW_FLOAT, "layout": "NHWC"}))
    with pytest.raises(InvalidCardError, match="input dtype uint8"):
        Model.from_card(runtime, _card({**NCHW_FLOAT, "dtype": "uint8", "quant_scale": 0.1, "quant_zero_point": 0}))
    with pytest.raises(InvalidCardError, match="input shape"):
        Model.from_card(runtime, _card(NCHW_FLOAT, resolution=192))
    model = Model.from_card(runtime, _card(NCHW_FLOAT, num_classes=1001))
    with pytest.raises(InvalidCardError, match="num_classes 1001 on the card, 1000 outputs"):
        model.scores(np.stack([model.encode(_images(1)[0])]))


def test_provider_is_chosen_by_short_or_full_name(synthetic_onnx):
    assert open_runtime(synthetic_onnx(), provider="cpu").provider == "CPUExecutionProvider"
    assert open_runtime(synthetic_onnx(), provider="CPUExecutionProvider", threads=1).threads == 1
    with pytest.raises(UsageError, match="'nosuch' is not available") as error:
        open_runtime(synthetic_onnx(), provider="nosuch")
    assert "CPUExecutionProvider" in error.value.hint


def test_files_no_host_runtime_runs(tmp_path):
    with pytest.raises(UnsupportedArtifactError, match="no runtime on this host runs .bin"):
        runtime_for_path(Path("mobilenetv2_224x224_nv12.bin"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(UnsupportedArtifactError, match="ONNX Runtime cannot load it"):
        open_runtime(broken)


@pytest.mark.parametrize("file, scale, zero_point", [("mobilenet_v2_1.0_224_quant.tflite", 0.0078125, 128),
                                                     ("tf2_mobilenet_v2_1.0_224_ptq.tflite", 0.007843137718737125, 127)])
def test_litert_coral_models(coral_dir, file, scale, zero_point):
    from ai_edge_litert.interpreter import Interpreter

    spec = {"layout": "NHWC", "color": "RGB", "dtype": "uint8", "quant_scale": scale, "quant_zero_point": zero_point}
    runtime = open_runtime(coral_dir / file, threads=1)
    assert runtime.name == "litert" and runtime.input_quant == (scale, zero_point)
    model = Model.from_card(runtime, _card(spec, 1001))
    encoded = np.stack([model.encode(x) for x in _images(3)])
    scores = model.scores(encoded)
    reference = Interpreter(model_path=str(coral_dir / file))
    reference.allocate_tensors()
    out_detail = reference.get_output_details()[0]
    out_scale, out_zero = out_detail["quantization"]
    for i, x in enumerate(encoded):
        reference.set_tensor(reference.get_input_details()[0]["index"], x[None])
        reference.invoke()
        raw = reference.get_tensor(out_detail["index"])[0].astype(np.float32)
        assert np.allclose(scores[i], (raw[1:] - out_zero) * out_scale)
    with pytest.raises(InvalidCardError, match="scale/zero point"):
        Model.from_card(runtime, _card({**spec, "quant_zero_point": zero_point + 1}, 1001))
