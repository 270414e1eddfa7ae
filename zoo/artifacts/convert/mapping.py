"""A file's (name, array) pairs onto a Plan's canonical weights, every tensor checked.

By name when the file uses a known layout (timm, torchvision, MindCV, d-li14, PaddleClas: the layout whose
layer names cover the most of the plan, if it covers at least half), else by order: the file's layers, in
file order, with roles in canonical order, must match the plan's (kind, role, shape) one for one.
Any missing, extra or misshapen tensor is one ConversionError naming it: never a half-right model.
"""
from __future__ import annotations

import numpy as np

from zoo.artifacts.convert.builder import BN_ROLES, Plan, expected
from zoo.errors import ConversionError

# The last component of a tensor name -> its role, across torch, Paddle and MindSpore naming.
ROLES = {"weight": "weight", "bias": "bias", "running_mean": "mean", "running_var": "var",
         "_mean": "mean", "_variance": "var", "gamma": "weight", "beta": "bias",
         "moving_mean": "mean", "moving_variance": "var"}
ROLE_ORDER = {"conv": ("weight",), "bn": BN_ROLES, "linear": ("weight", "bias")}
# Role -> suffix, to name a missing tensor the way the file's framework would.
SUFFIXES = {"torch": {"weight": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"},
            "paddle": {"weight": "weight", "bias": "bias", "mean": "_mean", "var": "_variance"},
            "mindspore": {"weight": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}}
# Training state some checkpoints carry beside the network: never weights of the model.
SKIPPED_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "moment1.", "moment2.", "ema.", "optimizer.")


# ---------------------------------------------------------------- layouts: canonical layer -> file layer

def _parts(b) -> list[str]:
    return (["expand"] if b.expand else []) + ["dw", "project"]


def timm_layout(plan: Plan) -> dict[str, str]:
    m = {"stem": "conv_stem", "stem.bn": "bn1"}
    for i, b in enumerate(plan.blocks):
        p = f"blocks.{b.stage}.{b.index}"
        names = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")) if b.expand else \
            (("conv_dw", "bn1"), ("conv_pw", "bn2"))  # timm's DepthwiseSeparableConv at t=1
        for part, (conv, bn) in zip(_parts(b), names):
            m[f"blocks.{i}.{part}"], m[f"blocks.{i}.{part}.bn"] = f"{p}.{conv}", f"{p}.{bn}"
    m.update({"head": "conv_head", "head.bn": "bn2", "classifier": "classifier"})
    return m


def torchvision_layout(plan: Plan) -> dict[str, str]:
    m = {"stem": "features.0.0", "stem.bn": "features.0.1"}
    for i, b in enumerate(plan.blocks):
        p = f"features.{i + 1}.conv"
        names = ((".0.0", ".0.1"), (".1.0", ".1.1"), (".2", ".3")) if b.expand else ((".0.0", ".0.1"), (".1", ".2"))
        for part, (conv, bn) in zip(_parts(b), names):
            m[f"blocks.{i}.{part}"], m[f"blocks.{i}.{part}.bn"] = p + conv, p + bn
    n = len(plan.blocks) + 1
    m.update({"head": f"features.{n}.0", "head.bn": f"features.{n}.1", "classifier": "classifier.1"})
    return m


def _flat_sequential(plan: Plan, stem: tuple[str, str], block: str, first: int, head: tuple[str, str],
                     classifier: str) -> dict[str, str]:
    """MindCV and d-li14: each block one flat Sequential (conv, bn, relu6, ...), so convs at 0, 3, 6."""
    m = {"stem": stem[0], "stem.bn": stem[1]}
    for i, b in enumerate(plan.blocks):
        p = block.format(first + i)
        for k, part in enumerate(_parts(b)):
            m[f"blocks.{i}.{part}"], m[f"blocks.{i}.{part}.bn"] = f"{p}.{3 * k}", f"{p}.{3 * k + 1}"
    m.update({"head": head[0], "head.bn": head[1], "classifier": classifier})
    return m


def mindcv_layout(plan: Plan) -> dict[str, str]:
    # features: conv, bn, relu6 (0-2), blocks from 3, head conv, bn; classifier = (Dropout, Dense)
    n = len(plan.blocks) + 3
    return _flat_sequential(plan, ("features.0", "features.1"), "features.{}.layers", 3,
                            (f"features.{n}", f"features.{n + 1}"), "classifier.1")


def dli14_layout(plan: Plan) -> dict[str, str]:
    return _flat_sequential(plan, ("features.0.0", "features.0.1"), "features.{}.conv", 1, ("conv.0", "conv.1"),
                            "classifier")


def paddle_layout(plan: Plan) -> dict[str, str]:
    m = {"stem": "conv1._conv", "stem.bn": "conv1._batch_norm"}
    for i, b in enumerate(plan.blocks):
        g = b.stage + 2
        unit = f"conv{g}._first_block" if b.index == 0 else f"conv{g}.conv{g}_{b.index + 1}"
        names = dict(expand="_expand_conv", dw="_bottleneck_conv", project="_linear_conv")
        for part in _parts(b):
            m[f"blocks.{i}.{part}"] = f"{unit}.{names[part]}._conv"
            m[f"blocks.{i}.{part}.bn"] = f"{unit}.{names[part]}._batch_norm"
    m.update({"head": "conv9._conv", "head.bn": "conv9._batch_norm", "classifier": "out"})
    return m


LAYOUTS = {"timm": (timm_layout, "torch"), "torchvision": (torchvision_layout, "torch"),
           "mindcv": (mindcv_layout, "mindspore"), "d-li14": (dli14_layout, "torch"),
           "paddleclas": (paddle_layout, "paddle")}


# ---------------------------------------------------------------- the file's layers

def file_layers(pairs) -> dict[str, dict[str, tuple[str, np.ndarray]]]:
    """{layer: {role: (tensor name, float32 array)}} in order of first appearance; non-weights dropped."""
    layers: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    for name, array in pairs:
        if name.startswith(SKIPPED_PREFIXES) or not np.issubdtype(array.dtype, np.floating):
            continue  # optimizer state, num_batches_tracked and other counters
        layer, _, suffix = name.rpartition(".")
        role = ROLES.get(suffix)
        if role is None or not layer:
            continue  # learning_rate, global_step and other scalars
        if role in layers.setdefault(layer, {}):
            raise ConversionError(f"two tensors give layer {layer!r} its {role}: {layers[layer][role][0]} and {name}")
        layers[layer][role] = (name, array)
    return layers


def _kind(layer: str, roles: dict) -> str:
    ndim = roles["weight"][1].ndim if "weight" in roles else None
    kind = "bn" if {"mean", "var"} & roles.keys() else "conv" if ndim == 4 else "linear" if ndim == 2 else None
    if kind is None:
        raise ConversionError(f"layer {layer!r} ({', '.join(n for n, _ in roles.values())}) is not a conv, "
                              "batch norm or linear layer of a MobileNetV2")
    return kind


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# ---------------------------------------------------------------- mapping

def map_weights(pairs, plan: Plan, *, fmt: str | None = None, file: str = "the file") -> dict[str, np.ndarray]:
    """{canonical key: float32 array} for builder.build; ConversionError naming the first bad tensor."""
    layers = file_layers(pairs)
    spec = expected(plan)
    # canonical layer of each key: "blocks.3.dw.weight" -> "blocks.3.dw", "blocks.3.dw.bn.mean" -> "blocks.3.dw.bn"
    wanted = {key.rpartition(".")[0] for key, *_ in spec}
    best, best_hits = None, 0
    for name, (layout_fn, suffixes) in LAYOUTS.items():
        layout = layout_fn(plan)
        hits = sum(layout[c] in layers for c in wanted)
        if hits > best_hits:
            best, best_hits = (name, layout, suffixes), hits
    if fmt == "pdparams":  # paddle.nn.Linear stores its weight as [in, out]: expect that, transpose after
        spec = [(k, kind, r, s[::-1] if k == "classifier.weight" else s) for k, kind, r, s in spec]
    if best and 2 * best_hits >= len(wanted):
        out = _by_name(layers, spec, plan, *best, file=file)
    else:
        out = _by_order(layers, spec, plan, file=file)
    if fmt == "pdparams":
        out["classifier.weight"] = np.ascontiguousarray(out["classifier.weight"].T)
    return out


def _by_name(layers, spec, plan, layout_name, layout, suffixes, *, file) -> dict[str, np.ndarray]:
    names = SUFFIXES[suffixes]
    out, used = {}, set()
    for key, kind, role, shape in spec:
        canonical = key.rpartition(".")[0]
        source = layout[canonical]
        tensor = f"{source}.{names[role]}"
        found = layers.get(source, {}).get(role)
        if found is None:
            raise ConversionError(f"{file} ({layout_name} layout) lacks tensor {tensor} ({kind} {role} "
                                  f"{_shape(shape)}) that {plan.name} needs")
        name, array = found
        if tuple(array.shape) != shape:
            raise ConversionError(f"{file}: tensor {name} has shape {_shape(array.shape)}; {plan.name} needs "
                                  f"{_shape(shape)} ({kind} {role} of {canonical})")
        out[key] = np.ascontiguousarray(array, dtype=np.float32)
        used.add((source, role))
    for layer, roles in layers.items():
        for role, (name, array) in roles.items():
            if (layer, role) not in used:
                raise ConversionError(f"{file} ({layout_name} layout) holds tensor {name} {_shape(array.shape)} "
                                      f"that {plan.name} does not have")
    return out


def _by_order(layers, spec, plan, *, file) -> dict[str, np.ndarray]:
    source = []
    for layer, roles in layers.items():
        kind = _kind(layer, roles)
        extra = set(roles) - set(ROLE_ORDER[kind])
        if extra:
            name = roles[sorted(extra)[0]][0]
            raise ConversionError(f"{file}: tensor {name} is a {kind} {sorted(extra)[0]}, which {plan.name} has not")
        source += [(roles[r][0], kind, r, roles[r][1]) for r in ROLE_ORDER[kind] if r in roles]
    out = {}
    for i, ((name, kind, role, array), (key, want_kind, want_role, shape)) in enumerate(zip(source, spec)):
        if (kind, role) != (want_kind, want_role) or tuple(array.shape) != shape:
            raise ConversionError(f"{file} does not fit {plan.name}: tensor {i} {name} ({kind} {role} "
                                  f"{_shape(array.shape)}) meets {key} ({want_kind} {want_role} {_shape(shape)})")
        out[key] = np.ascontiguousarray(array, dtype=np.float32)
    if len(source) != len(spec):
        if len(source) > len(spec):
            name, _, _, array = source[len(spec)]
            detail = f"first extra tensor {name} {_shape(array.shape)}"
        else:
            key, _, _, shape = spec[len(source)]
            detail = f"first missing tensor {key} {_shape(shape)}"
        raise ConversionError(f"{file} holds {len(source)} weight tensors; {plan.name} needs {len(spec)} ({detail})")
    return out
