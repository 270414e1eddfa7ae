"""MACs and parameters counted from ONNX and TFLite graphs, against published figures."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import zoo
from zoo.artifacts.convert.builder import save_mobilenet_v2
from zoo.cards.registry import load_registry
from zoo.errors import UsageError
from zoo.measure.complexity import inspect_file


def test_canonical_mobilenet_v2_is_within_1_percent_of_the_published_300_8m_macs(tmp_path):
    info = inspect_file(save_mobilenet_v2(tmp_path / "m.onnx", width=1.0, resolution=224))
    assert info["macs"] == pytest.approx(300.8e6, rel=0.01)
    assert info["size_bytes"] == (tmp_path / "m.onnx").stat().st_size
    assert info["inputs"] == [{"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float"}]
    assert info["uncounted_nodes"] == []


@pytest.mark.parametrize("card_id", ["tf-slim/mobilenet_v2_0.75_224", "tf-slim/mobilenet_v2_1.4_224",
                                     "tf-slim/mobilenet_v2_1.0_160", "tf-slim/mobilenet_v2_0.35_96"])
def test_macs_follow_width_and_resolution_like_the_published_tf_slim_table(tmp_path, card_id):
    card = load_registry().resolve(card_id)[0].card
    path = save_mobilenet_v2(tmp_path / "m.onnx", width=card["width"], resolution=card["resolution"])
    # TF-slim publishes MACs rounded to 1 M (0.011 G for 0.35/96, hence the 1 M slack).
    assert abs(inspect_file(path)["macs"] - card["complexity"]["macs"]) <= max(0.01 * card["complexity"]["macs"], 1e6)


def test_real_tflite_models_match_the_published_figures(coral_dir):
    for name in ("mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"):
        info = inspect_file(coral_dir / name)
        assert info["macs"] == pytest.approx(300.8e6, rel=0.01)
        assert info["params"] == pytest.approx(3.489e6, rel=0.005)  # OMZ's figure for the same TF network
        assert info["inputs"][0]["shape"] == [1, 224, 224, 3] and info["inputs"][0]["dtype"] == "uint8"
        assert info["outputs"][0]["shape"] == [1, 1001]


def test_grouped_conv_gemm_and_matmul_are_counted_by_their_formulas(tmp_path):
    rng = np.random.default_rng(0)
    weights = {"w": rng.random((8, 2, 3, 3)), "fc": rng.random((8, 5)), "mm": rng.random((5, 7))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),  # 4 groups of 2
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["fc", "f"], ["y"], transA=1, transB=1),  # fc^T [5, 8] x f^T [8, 1] -> [5, 1]
        helper.make_node("MatMul", ["y", "one"], ["z"]),
        helper.make_node("MatMul", ["z2", "mm"], ["out"]),
    ]
    inits += [numpy_helper.from_array(np.ones((1, 1), np.float32), "one"),
              numpy_helper.from_array(np.ones((3, 5), np.float32), "z2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    info = inspect_file(path)
    conv = (8 * 8 * 8) * (2 * 3 * 3)     # output elements x (Cin/groups x kh x kw)
    gemm = (5 * 1) * 8                   # [M=5, N=1] x K=8 (A transposed: K is A's first dim)
    matmul = (5 * 1) * 1 + (3 * 7) * 5   # [5,1]x[1,1] and [3,5]x[5,7]
    assert info["macs"] == conv + gemm + matmul
    assert info["params"] == sum(v.size for v in weights.values()) + 1 + 15


def test_card_inspect_uses_the_artifact_or_the_architecture(coral_dir, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", str(coral_dir))
    info = zoo.inspect("coral/tf2_mobilenet_v2_1.0_224_ptq")
    assert info["card_id"] == "coral/tf2_mobilenet_v2_1.0_224_ptq" and info["format"] == "tflite"
    assert info["artifact"] == "tf2_mobilenet_v2_1.0_224_ptq.tflite" and info["size_bytes"] == 4070174
    arch = zoo.inspect("timm/mobilenetv2_075", synthetic=True)
    assert arch["synthetic_weights"] and arch["macs"] == pytest.approx(arch["claimed"]["macs"], rel=0.06)


@pytest.mark.parametrize("name, content, words", [
    ("missing.onnx", None, "no such file"),
    ("weights.pth", b"not a model", "cannot count .pth files"),
    ("broken.onnx", b"\x00garbage\xff" * 10, "not a readable ONNX model"),
    ("broken.tflite", b"garbage" * 10, "not a readable TFLite model"),
    ("empty.onnx", b"", "not an ONNX model"),  # protobuf reads 0 bytes as an empty model: 0 MACs, exit 0
    ("graphless.onnx", onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString(),
     "its graph has 0 nodes"),
])
def test_bad_files_are_clear_errors(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=words):
        inspect_file(path)
