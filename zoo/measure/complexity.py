"""MACs and parameters counted from a model file's graph, plus its inputs, outputs and size.

MACs are multiply-accumulates for one image (batch 1): Conv (including depthwise and grouped),
Gemm and MatMul, and their quantized forms. Element-wise ops, pooling and activations are not
counted, as in the published MobileNetV2 figures (300.8 M for 1.0/224).

Written here rather than taken from a library: the maintained ONNX counters (onnx-tool,
onnx_opcounter) either count FLOPs of every op or lag behind onnx releases; this needs ~60 lines.
"""
from __future__ import annotations

import math
from pathlib import Path

from zoo.errors import UsageError, ZooError
from zoo.files import check_model_file

# op type -> index of its weight input (the operand whose trailing dims are multiplied per output element)
CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
MATMUL_B = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3, "Gemm": 1}


def _dims(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def _at(names, index: int) -> str | None:
    """A node's input or output name at `index`; None when the node has fewer (a malformed graph)."""
    return names[index] if len(names) > index and names[index] else None


def _io(values) -> list[dict]:
    from onnx import TensorProto

    return [{"name": v.name, "shape": [d if d is not None else "batch" for d in _dims(v)],
             "dtype": TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()} for v in values]


def count_onnx(path: Path) -> dict:
    """Inputs, outputs, MACs and parameters of an ONNX model, with shape inference at batch 1."""
    import onnx
    from onnx import shape_inference

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError or its own types for a bad file
        raise UsageError(f"{path}: not a readable ONNX model ({exc})", "Give an .onnx file or a card id") from None
    graph = model.graph
    if not graph.node or not graph.output:  # protobuf parses an empty (or foreign) file as an empty model
        raise UsageError(f"{path}: not an ONNX model (its graph has {len(graph.node)} nodes and "
                         f"{len(graph.output)} outputs)", "Give an .onnx file or a card id")
    initializers = {t.name: t for t in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    inputs, outputs = _io(graph_inputs), _io(graph.output)
    # Pin dynamic dimensions to 1 so that every intermediate shape is known: MACs per image.
    for value in graph_inputs:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception as exc:  # onnx's InferenceError and friends: a graph whose shapes contradict each other
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not a valid ONNX graph: shape inference fails ({text[:200]})",
                         "Check the file, or export it again") from None
    shapes = {v.name: _dims(v) for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}
    shapes.update({name: list(t.dims) for name, t in initializers.items()})

    macs, unknown = 0, []
    for node in inferred.node:
        out = shapes.get(_at(node.output, 0))
        if node.op_type in CONV_WEIGHT:
            weight = shapes.get(_at(node.input, CONV_WEIGHT[node.op_type]))
            if not out or not weight or None in out or None in weight:
                unknown.append(node.name or node.op_type)
                continue
            macs += math.prod(out) * math.prod(weight[1:])  # each output element: Cin/groups * kh * kw
        elif node.op_type in MATMUL_B:
            a = shapes.get(_at(node.input, 0))
            if not out or not a or None in out or a[-1] is None:
                unknown.append(node.name or node.op_type)
                continue
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            k = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
            macs += math.prod(out) * k
    params = sum(math.prod(t.dims) for t in initializers.values()
                 if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
                                    onnx.TensorProto.UINT8, onnx.TensorProto.DOUBLE) and len(t.dims) > 0)
    return {"format": "onnx", "inputs": inputs, "outputs": outputs, "macs": macs,
            "params": params, "uncounted_nodes": unknown}


def count_tflite(path: Path) -> dict:
    """The same for a TFLite model, from LiteRT's op and tensor details."""
    from zoo.measure.runtimes import RUNTIMES

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise UsageError(f"{path}: counting a .tflite model needs LiteRT, which is not installed",
                         f"Install it with: {RUNTIMES['litert'].install_hint}") from None
    try:
        interpreter = Interpreter(model_path=str(path))
        return _count_tflite(interpreter)
    except (ValueError, RuntimeError, KeyError, IndexError) as exc:  # UnicodeDecodeError: a name that is not UTF-8
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not a readable TFLite model ({text[:200]})",
                         "Give a .tflite file or a card id") from None


def _count_tflite(interpreter) -> dict:
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    macs, params, weights = 0, 0, set()
    for op in interpreter._get_ops_details():  # no public API lists ops; this one is stable since TF 2.4
        name, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(inputs) < 2:
            continue
        out, weight = tensors[outputs[0]]["shape"], tensors[inputs[1]]["shape"]
        if name == "CONV_2D":            # weight [Cout, kh, kw, Cin]
            macs += math.prod(out) * math.prod(weight[1:])
        elif name == "DEPTHWISE_CONV_2D":  # weight [1, kh, kw, C*multiplier]
            macs += math.prod(out) * weight[1] * weight[2]
        else:                            # weight [units, K]
            macs += math.prod(out) * weight[-1]
        weights.update(i for i in inputs[1:] if i >= 0)
    params = sum(int(math.prod(tensors[i]["shape"])) for i in weights)
    macs = int(macs)

    def io(details):
        return [{"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": d["dtype"].__name__,
                 "quantization": list(d["quantization"]) if d["quantization"] != (0.0, 0) else None} for d in details]

    return {"format": "tflite", "inputs": io(interpreter.get_input_details()),
            "outputs": io(interpreter.get_output_details()), "macs": macs, "params": params, "uncounted_nodes": []}


def inspect_file(path: Path) -> dict:
    """`zoo inspect PATH`: inputs, outputs, MACs, params and size in bytes of a model file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file", "Give a model file (.onnx, .tflite) or a card id")
    check_model_file(path)  # a FIFO, a device or a huge file is refused before onnx or LiteRT reads it
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        info = count_onnx(path)
    elif suffix == ".tflite":
        info = count_tflite(path)
    else:
        raise UsageError(f"{path.name}: cannot count {suffix or 'suffix-less'} files",
                         "zoo inspects .onnx and .tflite models; convert native weights with `zoo convert` first")
    return {"path": str(path), "size_bytes": path.stat().st_size, **info}


def counted(model_path: Path) -> dict:
    """MACs and params counted from the graph of the file that ran, and its size, as bench and eval runs store
    them (for a converted card they describe the conversion, not the card's own file)."""
    try:
        info = inspect_file(model_path)
    except ZooError:  # a format zoo cannot read (an RDK .bin), or a graph it cannot count: size only
        return {"macs": None, "params": None, "size_bytes": Path(model_path).stat().st_size}
    return {"macs": info["macs"], "params": info["params"], "size_bytes": info["size_bytes"]}
