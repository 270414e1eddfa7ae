"""`zoo convert`: native weights to ONNX, through timm's MobileNetV2 as the canonical architecture.

Readers never execute anything from the file: `.pth` goes through torch.load(weights_only=True),
`.pdparams` through an unpickler that admits only numpy array reconstruction, MindSpore `.ckpt`
through a protobuf wire-format reader, `.safetensors` through safetensors.

Tensors are mapped onto timm's state_dict by name when the file uses timm's names, else by order:
each file is grouped into layers (conv, batch norm, linear), each tensor given its role from its
name (a MindSpore BN stores moving_mean, moving_variance, gamma, beta in that order; torch stores
weight, bias, running_mean, running_var), and the i-th (kind, role, shape) must equal timm's i-th.
Any difference is a ConversionError naming both tensors: a file is never loaded half-right.

Every conversion is checked: ONNX Runtime's output on a random batch must match timm's forward
within TOLERANCE. Results are cached under ZOO_HOME/converted by (source sha256, CONVERTER_VERSION).
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

from zoo import settings
from zoo.artifacts.fetch import fetch_record
from zoo.artifacts.hashes import file_sha256
from zoo.cards.formats import CONVERTIBLE_FORMATS
from zoo.errors import ConversionError, UnsupportedArtifactError, UsageError
from zoo.files import read_json, write_json_atomic

CONVERTER_VERSION = 1   # bump when a change alters the ONNX produced for the same source bytes
TOLERANCE = 1e-4        # max abs difference of logits, ONNX Runtime against timm's forward
INSTALL_HINT = 'Install them with pip install "zoo[convert]"'

# timm's registered names for the (width, depth) pairs it publishes; others use the same generator.
TIMM_NAMES = {(0.35, 1.0): "mobilenetv2_035", (0.5, 1.0): "mobilenetv2_050", (0.75, 1.0): "mobilenetv2_075",
              (1.0, 1.0): "mobilenetv2_100", (1.1, 1.2): "mobilenetv2_110d", (1.2, 1.4): "mobilenetv2_120d",
              (1.4, 1.0): "mobilenetv2_140"}
# PaddleClas' MobileNetV2 differs from timm's in two ways: its first block keeps a 1x1 expansion conv
# (expansion 1: an inverted residual, not a depthwise-separable block), and channels are int(c * scale)
# rather than rounded to multiples of 8. Both are expressible with timm's own block builder.
PADDLE_ARCH = [["ir_r1_k3_s1_e1_c16"], ["ir_r2_k3_s2_e6_c24"], ["ir_r3_k3_s2_e6_c32"], ["ir_r4_k3_s2_e6_c64"],
               ["ir_r3_k3_s1_e6_c96"], ["ir_r3_k3_s2_e6_c160"], ["ir_r1_k3_s1_e6_c320"]]

# The last component of a tensor name -> its role, across torch, Paddle and MindSpore naming.
ROLES = {"weight": "weight", "bias": "bias", "running_mean": "mean", "running_var": "var",
         "_mean": "mean", "_variance": "var", "gamma": "weight", "beta": "bias",
         "moving_mean": "mean", "moving_variance": "var"}
ROLE_ORDER = {"conv": ("weight", "bias"), "bn": ("weight", "bias", "mean", "var"), "linear": ("weight", "bias")}
# Training state some checkpoints carry beside the network: never weights of the model.
SKIPPED_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "moment1.", "moment2.", "ema.", "optimizer.")
CONTAINER_KEYS = ("state_dict", "model", "net", "network")


@dataclass
class Tensor:
    """One weight tensor with the layer it belongs to and its role there."""

    name: str
    layer: str
    kind: str      # conv | bn | linear
    role: str      # weight | bias | mean | var
    array: object  # numpy float32 array


def available() -> bool:
    """Whether torch and timm are installed (not imported: that costs seconds)."""
    from importlib.util import find_spec

    try:
        return all(find_spec(m) is not None for m in ("torch", "timm", "onnxscript"))
    except (ImportError, ValueError):  # a module set to None in sys.modules (blocked)
        return False


def _require():
    """(torch, timm), or one clear line saying how to install them."""
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
        import timm
        import torch
    except Exception as exc:  # ImportError, or a torchvision built for another torch (RuntimeError)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedArtifactError(f"converting native weights to ONNX needs torch, timm and onnxscript ({reason})",
                                       INSTALL_HINT) from None
    return torch, timm


# ---------------------------------------------------------------- readers

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles Paddle's state-dict container (a dict of numpy arrays) and refuses every other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
               ("builtins", "tuple")}  # Paddle reduces a bare tensor to tuple((name, ndarray))

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ConversionError(f"refused to unpickle {module}.{name} from a .pdparams file: only numpy arrays "
                                  "are allowed in Paddle weights", "The file was not loaded; do not trust its source")
        import importlib

        if module.startswith("numpy.core."):  # written by numpy 1.x; numpy 2 moved it to numpy._core
            try:
                return getattr(importlib.import_module("numpy._core." + module.split(".")[-1]), name)
            except (ImportError, AttributeError):
                pass
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):
        raise ConversionError("refused a persistent id in a .pdparams file", "The file was not loaded")


def read_pdparams(path: Path) -> list[tuple[str, object]]:
    """(name, array) in file order from a Paddle dygraph .pdparams (a pickled dict of numpy arrays)."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f).load()
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(f"{path.name} is not a readable .pdparams file ({exc})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path.name} holds a {type(data).__name__}, not Paddle's dict of parameters")
    out = []
    for name, value in data.items():
        if name == "StructuredToParameterName@@":  # Paddle's map of structured to parameter names
            continue
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"{path.name}: entry {name!r} is a {type(value).__name__}, not an array")
        out.append((str(name), value))
    return out


_CKPT_DTYPES = {"Float32": "<f4", "Float16": "<f2", "Float64": "<f8", "Int8": "i1", "UInt8": "u1", "Int16": "<i2",
                "Int32": "<i4", "Int64": "<i8", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8", "Bool": "?",
                "BFloat16": "<u2"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; value is an int or a bytes slice."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def read_ckpt(path: Path) -> list[tuple[str, object]]:
    """(name, array) in file order from a MindSpore .ckpt: protobuf `Checkpoint { repeated Value value = 1; }`,
    `Value { string tag = 1; TensorProto tensor = 2; }`, `TensorProto { repeated int64 dims = 1;
    string tensor_type = 2; bytes tensor_content = 3; }` (mindspore/ccsrc/utils/checkpoint.proto).
    A large tensor may be split over consecutive values with the same tag; they are joined."""
    import numpy as np

    buf = path.read_bytes()
    entries: list[list] = []  # [tag, dims, type, bytearray]
    try:
        for number, wire, value in _fields(buf):
            if number != 1 or wire != 2:
                continue  # fields a newer MindSpore adds beside the values (e.g. a checksum)
            tag, tensor = None, None
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    tag = bytes(v).decode("utf-8")
                elif n == 2 and w == 2:
                    tensor = v
            if tag is None or tensor is None:
                continue  # a map tensor or another kind of value: not weights of this model
            dims, dtype, content = [], None, b""
            for n, w, v in _fields(tensor):
                if n == 1 and w == 0:
                    dims.append(v)
                elif n == 1 and w == 2:  # packed repeated int64
                    p = 0
                    while p < len(v):
                        d, p = _varint(v, p)
                        dims.append(d)
                elif n == 2 and w == 2:
                    dtype = bytes(v).decode("ascii")
                elif n == 3 and w == 2:
                    content = v
            if entries and entries[-1][0] == tag:
                entries[-1][3] += content
            else:
                entries.append([tag, dims, dtype, bytearray(content)])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path.name} is not a readable MindSpore checkpoint ({exc})") from None
    out = []
    for tag, dims, dtype, content in entries:
        if dtype not in _CKPT_DTYPES:
            raise ConversionError(f"{path.name}: tensor {tag!r} has unknown type {dtype!r}")
        array = np.frombuffer(bytes(content), dtype=_CKPT_DTYPES[dtype])
        if dtype == "BFloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if array.size != int(np.prod(dims, dtype=np.int64)):
            raise ConversionError(f"{path.name}: tensor {tag!r} holds {array.size} values for shape {dims}")
        out.append((tag, array.reshape(dims)))
    if not out:
        raise ConversionError(f"{path.name} holds no tensors: it is not a MindSpore checkpoint")
    return out


def read_torch(path: Path, fmt: str) -> list[tuple[str, object]]:
    """(name, array) from a .pth (torch.load with weights_only=True) or a .safetensors file."""
    torch, _ = _require()
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's message advises weights_only=False: never pass that on; keep the line naming what was refused.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = next((line for line in lines if "weights_only" not in line and "can still be loaded" not in line
                      and not line.startswith("Check the documentation")), type(exc).__name__)
        raise ConversionError(f"{path.name} could not be read as {fmt} without executing code ({first[:200]})",
                              "The file was not loaded; a weights file holds tensors only") from None
    for _ in range(2):  # training checkpoints wrap the state_dict: {"state_dict": {...}, "epoch": ...}
        if isinstance(data, dict):
            inner = next((data[k] for k in CONTAINER_KEYS if isinstance(data.get(k), dict)), None)
            data = inner if inner is not None else data
    if not isinstance(data, dict):
        raise ConversionError(f"{path.name} holds a {type(data).__name__}, not a state_dict of tensors")
    out = []
    for name, value in data.items():
        if isinstance(value, torch.Tensor):
            out.append((str(name).removeprefix("module."), value.detach().cpu()))
    return [(n, t.float().numpy() if t.is_floating_point() else t.numpy()) for n, t in out]


def read_tensors(path: Path, fmt: str) -> list[tuple[str, object]]:
    """(name, numpy array) pairs of a native weights file, in the file's order."""
    path = Path(path)
    if fmt in ("pth", "safetensors"):
        return read_torch(path, fmt)
    if fmt == "pdparams":
        return read_pdparams(path)
    if fmt == "mindspore-ckpt":
        return read_ckpt(path)
    raise UsageError(f"{fmt} is not a format zoo converts", f"Convertible formats: {', '.join(sorted(CONVERTIBLE_FORMATS))}")


# ---------------------------------------------------------------- mapping

def layered(pairs, *, transpose_linear: bool = False) -> list[Tensor]:
    """Float tensors grouped into layers (in order of first appearance), roles in canonical order."""
    import numpy as np

    layers: dict[str, dict[str, tuple[str, object]]] = {}
    for name, array in pairs:
        if name.startswith(SKIPPED_PREFIXES) or not np.issubdtype(array.dtype, np.floating):
            continue  # optimizer state, step counters, num_batches_tracked
        layer, _, suffix = name.rpartition(".") if "." in name else ("", "", name)
        role = ROLES.get(suffix)
        if role is None:
            continue  # learning_rate, global_step and other scalars
        if role in layers.setdefault(layer, {}):
            raise ConversionError(f"two tensors give layer {layer!r} its {role}: {layers[layer][role][0]} and {name}")
        layers[layer][role] = (name, np.ascontiguousarray(array, dtype=np.float32))
    out = []
    for layer, roles in layers.items():
        ndim = roles["weight"][1].ndim if "weight" in roles else None
        kind = "bn" if {"mean", "var"} & roles.keys() else "conv" if ndim == 4 else "linear" if ndim == 2 else None
        if kind is None or not set(roles) <= set(ROLE_ORDER[kind]) or (kind == "bn" and len(roles) != 4):
            raise ConversionError(f"layer {layer!r} ({', '.join(n for n, _ in roles.values())}) is not a conv, "
                                  "batch norm or linear layer of a MobileNetV2")
        for role in ROLE_ORDER[kind]:
            if role in roles:
                name, array = roles[role]
                if kind == "linear" and role == "weight" and transpose_linear:
                    array = np.ascontiguousarray(array.T)  # Paddle's Linear stores [in, out]
                out.append(Tensor(name, layer, kind, role, array))
    return out


def _shape(t: Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.array.shape) + "]"


def match(source: list[Tensor], target: list[Tensor], *, file: str, arch: str) -> dict[str, object]:
    """{timm name: array}: by name when the file uses timm's names, else by order; every pair checked."""
    by_name = {t.name: t for t in source}
    if by_name.keys() == {t.name for t in target}:
        pairs = [(by_name[t.name], t) for t in target]
    else:
        pairs = list(zip(source, target))
    for i, (s, t) in enumerate(pairs):
        if (s.kind, s.role, s.array.shape) != (t.kind, t.role, t.array.shape):
            raise ConversionError(f"{file} does not fit timm's {arch}: tensor {i} {s.name} ({s.kind} {s.role} "
                                  f"{_shape(s)}) meets {t.name} ({t.kind} {t.role} {_shape(t)})")
    if len(source) != len(target):
        extra = source[len(target)] if len(source) > len(target) else None
        missing = target[len(source)] if len(target) > len(source) else None
        detail = (f"first extra tensor {extra.name} {_shape(extra)}" if extra
                  else f"first missing tensor {missing.name} {_shape(missing)}")
        raise ConversionError(f"{file} holds {len(source)} weight tensors; timm's {arch} needs {len(target)} ({detail})")
    return {t.name: s.array for s, t in pairs}


# ---------------------------------------------------------------- the architecture

def family(card: dict, fmt: str | None) -> str:
    """Which variant of MobileNetV2 a card's weights were trained with: 'paddleclas' or 'timm' (also torchvision's,
    MindCV's and d-li14's, which share its layout)."""
    return "paddleclas" if fmt == "pdparams" or card.get("source") == "paddleclas" else "timm"


def architecture(card: dict, fmt: str | None = None) -> dict:
    """What the converter builds for `card`: timm model name (or generator) and its options."""
    width, depth = float(card["width"]), float(card.get("depth", 1.0))
    kind = family(card, fmt)
    if kind == "paddleclas":
        name = f"paddleclas_mobilenetv2_x{width:g}"
    else:
        name = TIMM_NAMES.get((width, depth)) or f"mobilenetv2_w{width:g}_d{depth:g}"
    return {"family": kind, "timm_model": name, "width": width, "depth": depth,
            "num_classes": int(card["num_classes"]), "resolution": int(card["resolution"])}


def build_model(arch: dict):
    """timm's MobileNetV2 for `arch`, in eval mode, with timm's random initialization."""
    torch, timm = _require()
    from functools import partial

    from timm.layers import get_act_layer
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet, _gen_mobilenet_v2

    width, depth, classes = arch["width"], arch["depth"], arch["num_classes"]
    if arch["family"] == "paddleclas":
        if depth != 1.0:
            raise ConversionError(f"PaddleClas MobileNetV2 has no depth multiplier (card: {depth})")
        model = EfficientNet(block_args=decode_arch_def(PADDLE_ARCH), num_features=int(1280 * width) if width > 1 else 1280,
                             stem_size=int(32 * width), fix_stem=True, round_chs_fn=lambda c: int(c * width),
                             num_classes=classes, norm_layer=partial(torch.nn.BatchNorm2d, eps=1e-5),
                             act_layer=get_act_layer("relu6"))
    elif arch["timm_model"] in TIMM_NAMES.values():
        model = timm.create_model(arch["timm_model"], pretrained=False, num_classes=classes)
    else:  # the generator timm's registered mobilenetv2_* call, for a width/depth it does not register
        import logging

        builder_log = logging.getLogger("timm.models._builder")
        level = builder_log.level
        builder_log.setLevel(logging.ERROR)  # "no pretrained configuration": none is wanted
        try:
            model = _gen_mobilenet_v2(arch["timm_model"], width, depth_multiplier=depth, fix_stem_head=depth != 1.0,
                                      pretrained=False, num_classes=classes)
        finally:
            builder_log.setLevel(level)
    return model.eval()


def timm_tensors(model) -> list[Tensor]:
    return layered((k, v.detach().numpy()) for k, v in model.state_dict().items())


def load_native(model, path: Path, fmt: str, *, arch_name: str) -> None:
    """Load a native weights file into timm's `model` (strict, every tensor checked)."""
    import torch

    source = layered(read_tensors(path, fmt), transpose_linear=fmt == "pdparams")
    mapped = match(source, timm_tensors(model), file=Path(path).name, arch=arch_name)
    state = model.state_dict()
    state.update({name: torch.from_numpy(array.copy()) for name, array in mapped.items()})
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------- export and verify

def export(model, resolution: int, path: Path) -> dict:
    """Write `model` as ONNX (dynamic batch) and check ONNX Runtime against the model's forward."""
    import numpy as np
    import onnxruntime as ort
    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, resolution, resolution), dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            expected = model(x).numpy()
            torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
                              external_data=False)
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})",
                              "Report it with `zoo --debug convert ...` output") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:
        raise ConversionError(f"the exported ONNX differs from timm's forward by {diff:.3g} (tolerance {TOLERANCE:g})")
    import onnx

    opset = next((o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx")), None)
    return {"max_abs_diff": diff, "opset": opset}




def _arch_key(arch: dict) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{arch['timm_model']}_c{arch['num_classes']}_r{arch['resolution']}")


def convert_file(card: dict, source: Path, fmt: str, *, source_sha256: str | None = None, synthetic: bool = False,
                 output: Path | None = None, force: bool = False) -> dict:
    """Convert one native weights file (or, synthetic=True, random weights) for `card`; cached.

    Record keys: id, source {file, format, sha256} (None with synthetic weights), synthetic_weights,
    architecture {family, timm_model, width, depth, num_classes, resolution}, path (the cached ONNX),
    sha256, size_bytes, converter_version, max_abs_diff, opset, torch, timm, cached, and output when copied there.
    """
    from filelock import FileLock

    arch = architecture(card, fmt)
    if synthetic:
        where = settings.converted_dir() / "synthetic" / f"v{CONVERTER_VERSION}"
    else:
        source_sha256 = source_sha256 or file_sha256(Path(source))
        where = settings.converted_dir() / source_sha256 / f"v{CONVERTER_VERSION}"
    key = _arch_key(arch)
    onnx_path, record_path = where / f"{key}.onnx", where / f"{key}.json"
    where.mkdir(parents=True, exist_ok=True)
    with FileLock(str(where / f"{key}.lock")):
        record = None
        if not force and onnx_path.is_file():
            record = read_json(record_path)  # None when missing or half-written by a killed process
            if not isinstance(record, dict) or file_sha256(onnx_path) != record.get("sha256"):
                record = None  # a corrupt cached file: convert again
        if record is None:
            torch, timm = _require()
            torch.manual_seed(0)  # synthetic weights: the same random model every time
            model = build_model(arch)
            if not synthetic:
                load_native(model, Path(source), fmt, arch_name=arch["timm_model"])
            tmp = onnx_path.with_suffix(".onnx.tmp")
            checked = export(model, arch["resolution"], tmp)
            tmp.replace(onnx_path)
            record = {"id": card["id"], "synthetic_weights": synthetic,
                      "source": None if synthetic else {"file": Path(source).name, "format": fmt, "sha256": source_sha256},
                      "architecture": arch, "path": str(onnx_path), "sha256": file_sha256(onnx_path),
                      "size_bytes": onnx_path.stat().st_size, "converter_version": CONVERTER_VERSION, **checked,
                      "torch": torch.__version__, "timm": timm.__version__}
            write_json_atomic(record_path, record, indent=2)
            record["cached"] = False
        else:
            record["cached"] = True
    record["path"] = str(onnx_path)
    if output is not None:
        import shutil

        output = Path(output)
        if output.is_dir():
            output = output / f"{card['id'].replace('/', '_')}.onnx"
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, output)
        record["output"] = str(output)
    return record


def source_sha256(onnx_path: Path) -> str | None:
    """The sha256 of the native file a cached ONNX was converted from (None: not a conversion, or synthetic)."""
    onnx_path = Path(onnx_path)
    record = onnx_path.with_suffix(".json")
    if settings.converted_dir() not in onnx_path.parents or not record.is_file():
        return None
    source = (read_json(record) or {}).get("source")
    return source["sha256"] if isinstance(source, dict) else None


def convertible_artifact(card: dict, artifact: dict | str | None = None) -> dict:
    """The card's artifact to convert: the one named, else its first in a convertible format."""
    artifacts = card.get("artifacts") or []
    if artifact is not None:
        name = artifact if isinstance(artifact, str) else artifact["file"]
        chosen = next((a for a in artifacts if a["file"] == name), None)
        if chosen is None:
            raise UsageError(f"{card['id']} has no artifact {name!r}",
                             f"Its artifacts are: {', '.join(a['file'] for a in artifacts) or 'none'}")
    else:
        chosen = next((a for a in artifacts if a["format"] in CONVERTIBLE_FORMATS), None)
        if chosen is None:
            formats = ", ".join(sorted({a["format"] for a in artifacts})) or "none"
            raise UnsupportedArtifactError(f"{card['id']} has no native weights to convert (its artifacts: {formats})",
                                           "Use --synthetic-weights for its architecture with random weights")
    if chosen["format"] not in CONVERTIBLE_FORMATS:
        raise UnsupportedArtifactError(f"{card['id']} {chosen['file']} is {chosen['format']}, which zoo does not convert",
                                       f"Convertible formats: {', '.join(sorted(CONVERTIBLE_FORMATS))}")
    return chosen


def convert_card(card: dict, *, artifact: dict | str | None = None, output: Path | None = None,
                 synthetic: bool = False, mirrors: list[str] | None = None, force: bool = False,
                 progress=None) -> dict:
    """Fetch (verified) and convert a card's native weights to ONNX; see convert_file for the record."""
    if card.get("architecture", "mobilenetv2") != "mobilenetv2":
        raise UnsupportedArtifactError(f"{card['id']}: zoo converts MobileNetV2 only")
    if synthetic:
        return convert_file(card, None, None, synthetic=True, output=output, force=force)
    chosen = convertible_artifact(card, artifact)
    _require()  # fail before downloading when the converter cannot run

    fetched = fetch_record(card, chosen, mirrors=mirrors, progress=progress)
    return convert_file(card, Path(fetched["path"]), chosen["format"], source_sha256=fetched["sha256"],
                        output=output, force=force)

