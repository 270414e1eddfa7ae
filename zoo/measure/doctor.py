"""The quantization doctor: an int8 model's activations against its float model's, layer by layer, on the same
images, to find the layers that cost the accuracy.

The int8 side runs on this host's real int8 kernels: the QDQ model with the output of every activation
QuantizeLinear made a graph output, optimised by ONNX Runtime as usual (its Conv/Q pairs still fuse into
QLinearConv: a quantized tensor that is also an output stays quantized), each output dequantized with its own
scale and zero point. So a kernel that saturates on this CPU shows here, where ONNX Runtime's own
qdq_loss_debug (graph optimisations off: float arithmetic on dequantized values) would not see it; and only
running sums are kept per tensor, where qdq_loss_debug keeps every activation of every image (~62 MB an image).

Per layer (the node producing a quantized tensor; a Relu/Clip fused into its convolution counts as the
convolution): SQNR in dB, 10 log10(sum x^2 / sum (x - y)^2) over every value of every image (x float, y int8),
the cosine of x and y, and `lost_db`: the SQNR of the layer's input less that of its output, the noise this
layer adds. Worst first means most dB lost: the SQNR itself only falls along the network, so the first broken
layer, not the last one, is where the accuracy goes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

# Layers --max-drop may keep in float (ONNX Runtime quantizes these operators; Q/DQ themselves are not layers).
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "GlobalAveragePool", "Softmax", "Concat")
ACTIVATIONS = ("Relu", "Clip")


def _describe(node, shapes: dict) -> str:
    """'depthwise conv 3x3', 'conv 1x1', 'add', ...: what a node is, for a person."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Conv":
        kernel = "x".join(str(k) for k in attrs["kernel_shape"].ints) if "kernel_shape" in attrs else ""
        weight = shapes.get(node.input[1])
        group = attrs["group"].i if "group" in attrs else 1
        depthwise = group > 1 and weight is not None and weight[1] == 1
        kind = "depthwise conv" if depthwise else "grouped conv" if group > 1 else "conv"
        out = f", {weight[0]} ch" if weight is not None else ""
        return f"{kind} {kernel}{out}".strip()
    words = {"Add": "add", "Gemm": "fully connected", "MatMul": "matmul", "AveragePool": "average pool",
             "GlobalAveragePool": "global average pool", "Softmax": "softmax", "Transpose": "transpose (input)",
             "Reshape": "reshape", "Concat": "concat", "Mul": "mul"}
    return words.get(node.op_type, node.op_type)


def _augmented(prepared: Path, int8_model: Path):
    """(int8 model bytes with every activation QuantizeLinear's output a graph output, float model bytes with
    the matching float tensors as outputs, [(float tensor, scale, zero point)] in graph order)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    int8, float_ = onnx.load(str(int8_model)), onnx.load(str(prepared))
    constants = {t.name: numpy_helper.to_array(t) for t in int8.graph.initializer}
    produced = {out for node in float_.graph.node for out in node.output} | {i.name for i in float_.graph.input}
    tensors = []
    for node in int8.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants:
            continue  # weights are initializers: only activations are compared
        name = node.input[0]
        # ONNX Runtime's quantizer renames a graph output it quantizes to NAME_QuantizeLinear_Input
        name = name if name in produced else name.removesuffix("_QuantizeLinear_Input")
        if name not in produced or name in {t[0] for t in tensors}:
            continue
        zero = constants[node.input[2]] if len(node.input) > 2 else np.zeros((), np.uint8)
        kind = onnx.TensorProto.UINT8 if zero.dtype == np.uint8 else onnx.TensorProto.INT8
        int8.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], kind, None))
        float_.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        tensors.append((name, constants[node.input[1]].astype(np.float32), zero.astype(np.float32)))
    return int8.SerializeToString(), float_.SerializeToString(), tensors


def layer_errors(prepared: Path, int8_model: Path, inputs: Iterable[dict], *, threads: int | None = None) -> dict:
    """The int8 model's activations against the float model's (`prepared`: the pre-processed float model it was
    quantized from, whose tensor and node names it keeps) on `inputs` (feeds of one image each).

    Returns {images, layers: [{index, node, op, what, output, sqnr_db, cosine, input_sqnr_db, lost_db}] in
    graph order}; `lost_db` is None where the layer's input is not a compared tensor."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    int8_bytes, float_bytes, tensors = _augmented(Path(prepared), Path(int8_model))
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    int8 = ort.InferenceSession(int8_bytes, options, providers=["CPUExecutionProvider"])
    float_ = ort.InferenceSession(float_bytes, options, providers=["CPUExecutionProvider"])
    first = len(int8.get_outputs()) - len(tensors)  # the model's own outputs come first
    sums = np.zeros((len(tensors), 4))  # sum x^2, sum (x - y)^2, sum x y, sum y^2
    images = 0
    for feed in inputs:
        got, want = int8.run(None, feed)[first:], float_.run(None, feed)[first:]
        for k, ((_, scale, zero), q, x) in enumerate(zip(tensors, got, want)):
            x = x.astype(np.float64).ravel()
            y = ((q.astype(np.float32) - zero) * scale).astype(np.float64).ravel()
            sums[k] += (x @ x, (x - y) @ (x - y), x @ y, y @ y)
        images += 1
    graph = onnx.load_from_string(float_bytes).graph
    producer = {out: node for node in graph.node for out in node.output}
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    sqnr = {name: _db(sums[k, 0], sums[k, 1]) for k, (name, _, _) in enumerate(tensors)}
    layers = []
    for k, (name, _, _) in enumerate(tensors):
        node = producer.get(name)
        if node is not None and node.op_type in ACTIVATIONS and node.input[0] in producer:
            node = producer[node.input[0]]  # Conv + Relu/Clip: one layer, as ONNX Runtime fuses them
        inputs_sqnr = [sqnr[i] for i in (node.input if node is not None else []) if i in sqnr]
        input_sqnr = min(inputs_sqnr) if inputs_sqnr else None
        xx, _, xy, yy = sums[k]
        layers.append({"index": k, "node": node.name if node is not None else name,
                       "op": node.op_type if node is not None else "input",
                       "what": _describe(node, shapes) if node is not None else "input", "output": name,
                       "sqnr_db": _round(sqnr[name]),
                       "cosine": round(float(xy / math.sqrt(xx * yy)), 6) if xx > 0 and yy > 0 else None,
                       "input_sqnr_db": _round(input_sqnr),
                       "lost_db": _round(input_sqnr - sqnr[name]) if input_sqnr is not None else None})
    return {"images": images, "layers": layers}


MAX_DB = 200.0  # identical tensors: float32 itself resolves ~150 dB, and JSON has no infinity


def _db(signal: float, noise: float) -> float:
    if noise <= 0:
        return MAX_DB
    return max(-MAX_DB, min(MAX_DB, 10 * math.log10(signal / noise))) if signal > 0 else -MAX_DB


def _round(value):
    return None if value is None else round(float(value), 2)


def worst_first(layers: list[dict]) -> list[dict]:
    """The layers that add the most noise first (lost_db), those without a compared input last."""
    return sorted(layers, key=lambda r: (r["lost_db"] is None, -(r["lost_db"] or 0), r["index"]))


def keepable(layers: list[dict], kept=()) -> list[dict]:
    """worst_first layers that --max-drop may keep in float next (a quantized operator, not kept already)."""
    return [r for r in worst_first(layers) if r["op"] in QUANTIZED_OPS and r["node"] not in set(kept)]


def top1_hits(card: dict, model_path: Path, dataset, *, threads: int | None = None):
    """Per image of `dataset` (readable ones, in order): whether the model's top-1 is the label."""
    import numpy as np

    from zoo.measure.accuracy import Job, open_lanes, predict
    from zoo.measure.preprocess import Preprocessor

    _, models, batch = open_lanes(card, Path(model_path), threads=threads)
    job = Job(models, Preprocessor(card["preprocess"], card["resolution"]))
    done = predict([job], dataset, batch=batch)
    if job.error is not None:
        raise job.error
    return job.predictions()[:, 0] == np.asarray(done["labels"], dtype=np.int64)


def saved(card: dict) -> dict | None:
    """The doctor's last report on a quantized card (`zoo quantize --explain`), kept beside its model, or None."""
    from zoo.artifacts.fetch import local_path
    from zoo.files import read_json

    for artifact in card.get("artifacts", []):
        for url in artifact.get("urls", []):
            if url.startswith("file://"):
                report = read_json(local_path(url).parent / "doctor.json")
                if isinstance(report, dict) and report.get("sha256") == artifact.get("sha256"):
                    return report
    return None
