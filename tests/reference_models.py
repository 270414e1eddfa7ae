"""torch modules and writers the reference tests (`pytest -m reference`) and benchmarks/bench_convert.py use: random
weights with measured batch-norm statistics, modules written line by line after PaddleClas', MindCV's and d-li14's
MobileNetV2 definitions (not derived from zoo's plans, so they check them), and PaddleClas' and MindSpore's file
layouts written from them. Not a test module: it needs torch (the reference extra), which the light suite lacks;
tests/golden/record.py writes the light suite's files with the real PaddlePaddle and MindSpore instead.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random weights whose activations neither die nor explode, so the logits depend on the input and every layer
    is exercised: He-normal convs (fan-in per group: torch's default init ignores groups and shrinks every
    depthwise conv, and the logits then hardly depend on the input), batch-norm statistics measured on a random
    batch then perturbed, random affine parameters."""
    torch.manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.02)
                m.bias.normal_(0, 0.1)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, its statistics
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.2)
        model.train()(torch.randn(8, 3, 128, 128))
        for m in bns:
            m.running_mean.add_(torch.randn_like(m.running_mean) * 0.1 * m.running_var.sqrt())
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4))
    return model.eval()


# ---------------------------------------------------------------- reference modules after each framework's code

class ConvBN(nn.Module):
    """PaddleClas' ConvBNLayer: `_conv` then `_batch_norm`, ReLU6 when asked."""

    def __init__(self, cin, cout, k, stride, groups=1):
        super().__init__()
        self._conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self._batch_norm = nn.BatchNorm2d(cout, eps=1e-5)

    def forward(self, x, act=True):
        y = self._batch_norm(self._conv(x))
        return nn.functional.relu6(y) if act else y


class PaddleUnit(nn.Module):
    def __init__(self, num_channels, num_in_filter, num_filters, stride, t):
        super().__init__()
        exp = int(round(num_in_filter * t))
        self._expand_conv = ConvBN(num_channels, exp, 1, 1)
        self._bottleneck_conv = ConvBN(exp, exp, 3, stride, groups=exp)
        self._linear_conv = ConvBN(exp, num_filters, 1, 1)

    def forward(self, x, shortcut):
        y = self._linear_conv(self._bottleneck_conv(self._expand_conv(x)), act=False)
        return x + y if shortcut else y


class PaddleStage(nn.Module):
    def __init__(self, in_c, t, c, n, s, name):
        super().__init__()
        self._first_block = PaddleUnit(in_c, in_c, c, s, t)
        self.rest = []
        for i in range(1, n):
            unit = PaddleUnit(c, c, c, 1, t)
            self.add_module(f"{name}_{i + 1}", unit)
            self.rest.append(unit)

    def forward(self, x):
        x = self._first_block(x, False)
        for unit in self.rest:
            x = unit(x, True)
        return x


# The paper's Table 2 (t, c, n, s), written out here rather than taken from the builder.
TABLE2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class PaddleMobileNet(nn.Module):
    """PaddleClas' MobileNet(scale) (ppcls/arch/backbone/model_zoo/mobilenet_v2.py) with its structured names."""

    def __init__(self, scale, class_num=1000):
        super().__init__()
        self.conv1 = ConvBN(3, int(32 * scale), 3, 2)
        self.stages, in_c = [], int(32 * scale)
        for i, (t, c, n, s) in enumerate(TABLE2, start=2):
            stage = PaddleStage(in_c, t, int(c * scale), n, s, f"conv{i}")
            self.add_module(f"conv{i}", stage)
            self.stages.append(stage)
            in_c = int(c * scale)
        out_c = int(1280 * scale) if scale > 1.0 else 1280
        self.conv9 = ConvBN(in_c, out_c, 1, 1)
        self.out = nn.Linear(out_c, class_num)

    def forward(self, x):
        x = self.conv1(x)
        for stage in self.stages:
            x = stage(x)
        return self.out(self.conv9(x).mean((2, 3)))


def divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class FlatIR(nn.Module):
    """MindCV's / d-li14's InvertedResidual: one flat Sequential (conv, bn, relu6, ...)."""

    def __init__(self, inp, oup, stride, t, attr):
        super().__init__()
        hidden = round(inp * t)
        self.res = stride == 1 and inp == oup
        layers = [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()] if t != 1 else []
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.attr = attr  # MindCV names it `layers`, d-li14 `conv`
        setattr(self, attr, nn.Sequential(*layers))

    def forward(self, x):
        y = getattr(self, self.attr)(x)
        return x + y if self.res else y


class MindCVMobileNetV2(nn.Module):
    """mindcv/models/mobilenetv2.py: cells features.N (ReLU6 cells take indices), classifier (Dropout, Dense)."""

    def __init__(self, alpha=1.0, num_classes=1000):
        super().__init__()
        inp = divisible(32 * alpha)
        last = divisible(1280 * max(1.0, alpha))
        feats = [nn.Conv2d(3, inp, 3, 2, 1, bias=False), nn.BatchNorm2d(inp), nn.ReLU6()]
        for t, c, n, s in TABLE2:
            out = divisible(c * alpha)
            for i in range(n):
                feats.append(FlatIR(inp, out, s if i == 0 else 1, t, "layers"))
                inp = out
        feats += [nn.Conv2d(inp, last, 1, 1, 0, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class DLi14MobileNetV2(nn.Module):
    """d-li14's models/imagenet/mobilenetv2.py: flat `conv` Sequentials, head `conv`, `classifier` Linear."""

    def __init__(self, width_mult=1.0, num_classes=1000):
        super().__init__()
        inp = divisible(32 * width_mult)
        layers = [nn.Sequential(nn.Conv2d(3, inp, 3, 2, 1, bias=False), nn.BatchNorm2d(inp), nn.ReLU6())]
        for t, c, n, s in TABLE2:
            out = divisible(c * width_mult)
            for i in range(n):
                layers.append(FlatIR(inp, out, s if i == 0 else 1, t, "conv"))
                inp = out
        self.features = nn.Sequential(*layers)
        out = divisible(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv = nn.Sequential(nn.Conv2d(inp, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out), nn.ReLU6())
        self.classifier = nn.Linear(out, num_classes)

    def forward(self, x):
        return self.classifier(self.conv(self.features(x)).mean((2, 3)))


# ---------------------------------------------------------------- writers in each framework's file layout

def write_pdparams(model: PaddleMobileNet, path, protocol=4):
    """paddle.save's dygraph layout: a pickled dict of numpy arrays, BN stats as _mean/_variance, Linear [in, out]."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        k = k.replace("running_mean", "_mean").replace("running_var", "_variance")
        out[k] = (v.T if k == "out.weight" else v).numpy().astype(np.float32)
    out["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(out)}
    with open(path, "wb") as f:
        pickle.dump(out, f, protocol=protocol)


def checkpoint_class():
    """MindSpore's Checkpoint message (mindspore/ccsrc/utils/checkpoint.proto), from protobuf's descriptor API."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="zoo_test_checkpoint.proto", syntax="proto2")
    tensor = fdp.message_type.add(name="TensorProto")
    tensor.field.add(name="dims", number=1, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    tensor.field.add(name="tensor_type", number=2, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
    tensor.field.add(name="tensor_content", number=3, type=F.TYPE_BYTES, label=F.LABEL_REQUIRED)
    ckpt = fdp.message_type.add(name="Checkpoint")
    value = ckpt.nested_type.add(name="Value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
    value.field.add(name="tensor", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REQUIRED, type_name=".TensorProto")
    ckpt.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".Checkpoint.Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("Checkpoint"))


def write_ckpt(model: MindCVMobileNetV2, path):
    """As MindCV saves: BN cells moving_mean, moving_variance, gamma, beta; optimizer moments and counters beside."""
    entries = []
    sd = model.state_dict()
    for k, v in sd.items():
        layer, _, role = k.rpartition(".")
        if role == "num_batches_tracked":
            continue
        if f"{layer}.running_mean" in sd:  # a BatchNorm: MindSpore's names and order
            if role == "weight":
                entries += [(f"{layer}.moving_mean", sd[f"{layer}.running_mean"]),
                            (f"{layer}.moving_variance", sd[f"{layer}.running_var"]),
                            (f"{layer}.gamma", sd[f"{layer}.weight"]), (f"{layer}.beta", sd[f"{layer}.bias"])]
            continue
        entries.append((k, v))
    entries += [(f"moments.{n}", torch.zeros_like(v)) for n, v in entries[:3]]
    entries += [("global_step", torch.tensor([1234], dtype=torch.int32)), ("learning_rate", torch.tensor(0.1))]
    checkpoint = checkpoint_class()()
    for tag, v in entries:
        value = checkpoint.value.add(tag=tag)
        array = v.numpy()
        value.tensor.dims.extend(array.shape)
        value.tensor.tensor_type = {"float32": "Float32", "int32": "Int32"}[str(array.dtype)]
        value.tensor.tensor_content = array.tobytes()
    Path(path).write_bytes(checkpoint.SerializeToString())
