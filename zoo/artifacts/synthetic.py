"""A MobileNetV2 ONNX graph of the canonical (timm / torchvision) architecture, with random weights.

Built with onnx.helper so that tests, benchmarks and `--synthetic-weights` need no torch.
Batch norm is folded into the convolutions, as an exported eval-mode model would be; the
layer plan, channel rounding and head width follow timm's `mobilenetv2_*` / torchvision's
`mobilenet_v2`. Options add the input/output conventions other sources use (NHWC, a quantized
uint8 input, a 1001-way head with background first) so that runtimes can be tested on them.
"""
from __future__ import annotations

from pathlib import Path

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding shared by timm and torchvision (never below 90% of the value)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v2(width: float = 1.0, resolution: int = 224, *, num_classes: int = 1000, layout: str = "NCHW",
                 input_dtype: str = "float32", quant_scale: float | None = None, quant_zero_point: int | None = None,
                 seed: int = 0, opset: int = 17):
    """An onnx.ModelProto: MobileNetV2 at `width`, dynamic batch, random weights drawn from `seed`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = iter(range(10**6))

    def const(array) -> str:
        name = f"w{next(counter)}"
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> str:
        fan_in = cin // groups * k * k
        weight = rng.normal(0, (2.0 / fan_in) ** 0.5, (cout, cin // groups, k, k))
        bias = rng.normal(0, 0.01, cout)
        y = node("Conv", [x, const(weight), const(bias)], kernel_shape=[k, k], strides=[stride, stride],
                 pads=[k // 2] * 4, group=groups)
        return node("Clip", [y, const(0.0), const(6.0)]) if act else y

    dtype = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8}[input_dtype]
    shape = ["N", 3, resolution, resolution] if layout == "NCHW" else ["N", resolution, resolution, 3]
    x = "input"
    if input_dtype != "float32":
        # The integer input is dequantized in the graph, as a quantized model's first op does.
        x = node("Cast", [x], to=TensorProto.FLOAT)
        x = node("Mul", [node("Sub", [x, const(float(quant_zero_point))]), const(float(quant_scale))])
    if layout == "NHWC":
        x = node("Transpose", [x], perm=[0, 3, 1, 2])

    channels = make_divisible(32 * width)
    x = conv(x, 3, channels, 3, stride=2)
    for t, c, n, s in BLOCKS:
        out = make_divisible(c * width)
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), channels * t
            y = conv(x, channels, hidden, 1) if t != 1 else x
            y = conv(y, hidden, hidden, 3, stride=stride, groups=hidden)
            y = conv(y, hidden, out, 1, act=False)
            x = node("Add", [x, y]) if stride == 1 and channels == out else y
            channels = out
    features = max(1280, make_divisible(1280 * width))
    x = conv(x, channels, features, 1)
    x = node("Flatten", [node("GlobalAveragePool", [x])])
    fc = rng.normal(0, 0.01, (features, num_classes))
    nodes.append(helper.make_node("Gemm", [x, const(fc), const(np.zeros(num_classes))], ["logits"]))

    graph = helper.make_graph(nodes, f"mobilenetv2_w{width:g}_{resolution}", [helper.make_tensor_value_info("input", dtype, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="zoo.synthetic")
    model.ir_version = min(model.ir_version, 9)  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    return model


def save_mobilenet_v2(path: Path, **options) -> Path:
    """Write `mobilenet_v2(**options)` to path; returns path."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(mobilenet_v2(**options), str(path))
    return path
