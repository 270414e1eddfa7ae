"""The MobileNetV2 family as an ONNX graph, built from a weight dictionary with numpy and onnx.helper only
(no torch): converted native weights and synthetic (random) weights go through the same builder.

One builder serves real and synthetic weights. What differs between sources is data, a Plan: the list of
blocks (cin, hidden, cout, stride, kernel, whether it has a 1x1 expansion conv, whether it adds its input),
computed by one function per family. Batch norm is folded into the convolutions (as an exported eval-mode
model would be), so the graph is Conv / Clip / Add / GlobalAveragePool / Flatten / Gemm.

Weights are a flat dict keyed by canonical names: "<layer>.weight" for a conv kernel, "<layer>.bn.<role>"
(role weight, bias, mean, var) for its batch norm, "classifier.weight" ([classes, features], torch's
orientation) and "classifier.bias". Layers are "stem", "blocks.<i>.expand|dw|project", "head".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2, shared by every family.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Batch-norm epsilon per family: torch's BatchNorm2d (timm, torchvision, d-li14), Paddle's nn.BatchNorm and
# MindSpore's nn.BatchNorm2d all default to 1e-5, and none of these MobileNetV2 definitions overrides it.
BN_EPS = {"timm": 1e-5, "torchvision": 1e-5, "d-li14": 1e-5, "mindcv": 1e-5, "paddleclas": 1e-5}
BN_ROLES = ("weight", "bias", "mean", "var")


@dataclass(frozen=True)
class Block:
    stage: int       # index into SETTINGS (names in some layouts depend on it)
    index: int       # position within the stage
    cin: int
    hidden: int      # channels of the depthwise conv
    cout: int
    stride: int
    kernel: int
    expand: bool     # has a 1x1 expansion conv (timm/torchvision drop it at t=1; PaddleClas keeps it)
    residual: bool   # adds its input to its output


@dataclass(frozen=True)
class Conv:
    name: str        # canonical layer name
    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int
    act: bool        # ReLU6 after the (folded) batch norm


@dataclass(frozen=True)
class Plan:
    family: str
    width: float
    depth: float
    num_classes: int
    stem: int
    blocks: tuple[Block, ...]
    head: int
    eps: float = 1e-5

    @property
    def name(self) -> str:
        return f"{self.family}_mobilenetv2_w{self.width:g}_d{self.depth:g}_c{self.num_classes}"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding of timm, torchvision, MindCV and d-li14 (never more than 10% below the value)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def timm_plan(width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, *, family: str = "timm",
              fix_stem_head: bool | None = None, divisor: int = 8) -> Plan:
    """timm's `_gen_mobilenet_v2` (also torchvision's mobilenet_v2, MindCV's and d-li14's at depth 1).

    Depth: timm scales each stage's repeats by ceil(n * depth); with fix_stem_head (what the registered
    mobilenetv2_110d/120d use, so the default when depth != 1) the first and last stages keep their
    repeats and the stem (32) and head (1280) widths are not scaled.
    """
    fix = depth != 1.0 if fix_stem_head is None else fix_stem_head
    stem = 32 if fix else make_divisible(32 * width, divisor)
    head = 1280 if fix else max(1280, make_divisible(1280 * width, divisor))
    blocks, cin = [], stem
    for s, (t, c, n, first_stride) in enumerate(SETTINGS):
        if not (fix and s in (0, len(SETTINGS) - 1)):
            n = int(math.ceil(n * depth))  # the same float expression as timm's _scale_stage_depth
        cout = make_divisible(c * width, divisor)
        for j in range(n):
            stride = first_stride if j == 0 else 1
            # timm: make_divisible(cin * t); torchvision/MindCV/d-li14: round(cin * t). Equal, as cin is a
            # multiple of the divisor; round() is used as it is exact for the t=1 block too.
            blocks.append(Block(s, j, cin, int(round(cin * t)), cout, stride, 3, expand=t != 1,
                                residual=stride == 1 and cin == cout))
            cin = cout
    return Plan(family, float(width), float(depth), int(num_classes), stem, tuple(blocks), head, BN_EPS.get(family, 1e-5))


def paddle_plan(scale: float = 1.0, num_classes: int = 1000) -> Plan:
    """PaddleClas' MobileNet (ppcls/arch/backbone/model_zoo/mobilenet_v2.py).

    Channels are int(c * scale) (truncated, not rounded to multiples of 8); every block keeps its 1x1
    expansion conv, also at t=1; hidden = int(round(cin * t)); the first block of each stage never adds
    its input (ifshortcut=False), the others always do; head int(1280 * scale) if scale > 1 else 1280.
    """
    stem = int(32 * scale)
    blocks, cin = [], stem
    for s, (t, c, n, first_stride) in enumerate(SETTINGS):
        cout = int(c * scale)
        for j in range(n):
            blocks.append(Block(s, j, cin, int(round(cin * t)), cout, first_stride if j == 0 else 1, 3,
                                expand=True, residual=j > 0))
            cin = cout
    head = int(1280 * scale) if scale > 1.0 else 1280
    return Plan("paddleclas", float(scale), 1.0, int(num_classes), stem, tuple(blocks), head, BN_EPS["paddleclas"])


def plan_for(family: str, width: float, depth: float = 1.0, num_classes: int = 1000) -> Plan:
    """The plan of a card's family: 'paddleclas', or 'timm' / 'torchvision' / 'mindcv' / 'd-li14'."""
    if family == "paddleclas":
        if depth != 1.0:
            raise ValueError(f"PaddleClas MobileNetV2 has no depth multiplier (asked for {depth:g})")
        return paddle_plan(width, num_classes)
    if family not in BN_EPS:
        raise ValueError(f"unknown MobileNetV2 family {family!r}; known: {', '.join(sorted(BN_EPS))}")
    if family != "timm" and depth != 1.0:
        raise ValueError(f"{family}'s MobileNetV2 has no depth multiplier (asked for {depth:g})")
    return timm_plan(width, depth, num_classes, family=family)


def block_convs(i: int, b: Block) -> list[Conv]:
    out = [Conv(f"blocks.{i}.expand", b.cin, b.hidden, 1, 1, 1, True)] if b.expand else []
    return out + [Conv(f"blocks.{i}.dw", b.hidden, b.hidden, b.kernel, b.stride, b.hidden, True),
                  Conv(f"blocks.{i}.project", b.hidden, b.cout, 1, 1, 1, False)]


def convs(plan: Plan) -> list[Conv]:
    """Every conv layer of the plan, in forward order."""
    out = [Conv("stem", 3, plan.stem, 3, 2, 1, True)]
    for i, b in enumerate(plan.blocks):
        out += block_convs(i, b)
    return out + [Conv("head", plan.blocks[-1].cout, plan.head, 1, 1, 1, True)]


def expected(plan: Plan) -> list[tuple[str, str, str, tuple[int, ...]]]:
    """(canonical key, kind, role, shape) of every weight tensor, in forward order; kind conv | bn | linear."""
    out = []
    for c in convs(plan):
        out.append((f"{c.name}.weight", "conv", "weight", (c.cout, c.cin // c.groups, c.kernel, c.kernel)))
        out += [(f"{c.name}.bn.{r}", "bn", r, (c.cout,)) for r in BN_ROLES]
    return out + [("classifier.weight", "linear", "weight", (plan.num_classes, plan.head)),
                  ("classifier.bias", "linear", "bias", (plan.num_classes,))]


def random_weights(plan: Plan, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic weights for `plan` (He-normal convs, non-trivial batch-norm statistics)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, kind, role, shape in expected(plan):
        if kind == "conv":
            value = rng.normal(0, math.sqrt(2.0 / math.prod(shape[1:])), shape)
        elif kind == "bn":
            value = {"weight": lambda: rng.uniform(0.5, 1.5, shape), "bias": lambda: rng.normal(0, 0.1, shape),
                     "mean": lambda: rng.normal(0, 0.1, shape), "var": lambda: rng.uniform(0.5, 1.5, shape)}[role]()
        else:
            value = rng.normal(0, 0.01, shape) if role == "weight" else np.zeros(shape)
        out[key] = value.astype(np.float32)
    return out


def fold(weights: dict, layer: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of conv `layer` with its batch norm folded in (in float64, then float32)."""
    w = weights[f"{layer}.weight"].astype(np.float64)
    gamma, beta, mean, var = (weights[f"{layer}.bn.{r}"].astype(np.float64) for r in BN_ROLES)
    scale = gamma / np.sqrt(var + eps)
    return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)


def build(plan: Plan, weights: dict[str, np.ndarray], resolution: int | None = 224, *, layout: str = "NCHW",
          input_dtype: str = "float32", quant_scale: float | None = None, quant_zero_point: int | None = None,
          opset: int = 17):
    """onnx.ModelProto: input "input" [N, 3, R, R] float32 (R=None: any height/width), output "logits".

    layout="NHWC" takes [N, R, R, 3]; input_dtype uint8/int8 takes a quantized input, dequantized in the
    graph with quant_scale / quant_zero_point (as a quantized model's first op does): the input conventions
    other sources use, so that runtimes can be tested on them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    for key, _, _, shape in expected(plan):  # the builder is also called directly: never build a wrong graph
        got = weights.get(key)
        if got is None or tuple(got.shape) != shape:
            raise ValueError(f"weight {key}: expected shape {list(shape)}, got "
                             f"{'nothing' if got is None else list(got.shape)}")
    nodes, inits = [], []

    def init(name: str, array) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    relu6 = [init("relu6.min", np.float32(0.0)), init("relu6.max", np.float32(6.0))]

    def conv(x: str, c: Conv) -> str:
        w, b = fold(weights, c.name, plan.eps)
        y = f"{c.name}.conv"
        nodes.append(helper.make_node("Conv", [x, init(f"{c.name}.w", w), init(f"{c.name}.b", b)], [y], name=y,
                                      kernel_shape=[c.kernel] * 2, strides=[c.stride] * 2,
                                      pads=[c.kernel // 2] * 4, group=c.groups))
        if c.act:
            nodes.append(helper.make_node("Clip", [y] + relu6, [f"{c.name}.relu6"], name=f"{c.name}.relu6"))
            y = f"{c.name}.relu6"
        return y

    x = "input"
    if input_dtype != "float32":
        nodes.append(helper.make_node("Cast", [x], ["input.float"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Sub", ["input.float", init("input.zero_point", np.float32(quant_zero_point))],
                                      ["input.centered"]))
        nodes.append(helper.make_node("Mul", ["input.centered", init("input.scale", np.float32(quant_scale))],
                                      ["input.real"]))
        x = "input.real"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["input.nchw"], perm=[0, 3, 1, 2]))
        x = "input.nchw"
    all_convs = convs(plan)
    x = conv(x, all_convs[0])
    for i, b in enumerate(plan.blocks):
        y = x
        for c in block_convs(i, b):
            y = conv(y, c)
        if b.residual:
            nodes.append(helper.make_node("Add", [x, y], [f"blocks.{i}.add"], name=f"blocks.{i}.add"))
            y = f"blocks.{i}.add"
        x = y
    x = conv(x, all_convs[-1])
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten"))
    nodes.append(helper.make_node("Gemm", ["features", init("classifier.w", weights["classifier.weight"]),
                                           init("classifier.b", weights["classifier.bias"])], ["logits"],
                                  name="classifier", transB=1))
    size = [resolution, resolution] if resolution else ["H", "W"]
    shape = ["N", 3, *size] if layout == "NCHW" else ["N", *size, 3]
    dtype = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8}[input_dtype]
    graph = helper.make_graph(nodes, plan.name, [helper.make_tensor_value_info("input", dtype, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", plan.num_classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="zoo.builder")
    model.ir_version = min(model.ir_version, 9)  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    return model


def save(model, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def mobilenet_v2(width: float = 1.0, resolution: int = 224, *, num_classes: int = 1000, family: str = "timm",
                 depth: float = 1.0, seed: int = 0, **inputs):
    """The `family` MobileNetV2 at `width` with random weights from `seed` (inputs: see build)."""
    plan = plan_for(family, width, depth, num_classes)
    return build(plan, random_weights(plan, seed), resolution, **inputs)


def save_mobilenet_v2(path: Path, **options) -> Path:
    """Write `mobilenet_v2(**options)` to path; returns path."""
    return save(mobilenet_v2(**options), path)
