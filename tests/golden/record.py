"""Re-records the golden files the light test suite checks zoo against, with the real frameworks.

    python tests/golden/record.py torch       # torch, torchvision and timm (the reference extra)
    python tests/golden/record.py paddle      # PaddlePaddle, and PaddleClas' own MobileNetV2 code
    python tests/golden/record.py mindspore   # MindSpore, and MindCV's own MobileNetV2 code

Each step rewrites tests/golden/<step>/ only (the README's "Golden files" says which venv each step needs):
  plans.json       the framework's state-dict names, dtypes and shapes for every MobileNetV2 the tests and the
                   registry's convertible cards use (the converter's plans and name layouts are checked on them)
  <model>.json     a small model (width 0.1, 10 classes) saved by the framework's own writer in the file formats
                   zoo reads, with the framework's eval-mode forward output on inputs.npz (shared by all steps)
  torch only:      reader.* (tensors of every dtype and stride, both torch formats), hostile .pth files, and
                   preprocess.json (timm's and torchvision's eval transforms on sample images)
zoo is never imported: what is recorded must not depend on the code under test. Weights are drawn with numpy
from fixed seeds, so a step recorded again writes the same files and logits (up to the framework's float
arithmetic), except torch's legacy-format files, whose storage keys come from object ids.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import zlib
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent
ROOT = GOLDEN.parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"
WIDTH, CLASSES = 0.1, 10  # the checkpoints: narrow (1280-wide head, ~100k parameters) and few classes: small files
INPUTS = {"r64_b2": (2, 3, 64, 64), "r96_b3": (3, 3, 96, 96), "r48_b1": (1, 3, 48, 48)}
TIMM = {"mobilenetv2_035": (0.35, 1.0), "mobilenetv2_050": (0.5, 1.0), "mobilenetv2_075": (0.75, 1.0),
        "mobilenetv2_100": (1.0, 1.0), "mobilenetv2_140": (1.4, 1.0), "mobilenetv2_110d": (1.1, 1.2),
        "mobilenetv2_120d": (1.2, 1.4)}
TIMM_1001 = ("mobilenetv2_035", "mobilenetv2_120d")
TORCHVISION_WIDTHS = (0.5, 1.0, 1.4)
DLI14_WIDTHS = (0.1, 0.25, 0.35, 0.5, 0.75, 1.0)
PADDLE_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
MINDCV_ALPHAS = (0.75, 1.0, 1.4)
VALUES_STRIDE = 1009  # preprocess.json keeps every 1009th value of each float image (~150 of 150,528)


# ---------------------------------------------------------------- shared by every step

def inputs() -> dict[str, np.ndarray]:
    """The fixed forward inputs, NCHW: float16 values on disk, so float32 holds them exactly in every framework."""
    path = GOLDEN / "inputs.npz"
    if not path.exists():
        rng = np.random.default_rng(2024)
        np.savez(path, **{k: rng.standard_normal(shape).astype(np.float16) for k, shape in INPUTS.items()})
    with np.load(path) as data:
        return {k: data[k].astype(np.float32) for k in INPUTS}


BN_ROLES = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta", "running_mean": "mean",
            "_mean": "mean", "moving_mean": "mean", "running_var": "var", "_variance": "var", "moving_variance": "var"}


def seed_of(stem: str) -> int:
    """One seed per model, so no two families' checkpoints (timm's, torchvision's and d-li14's plans are alike at
    width 0.1) hold the same weights or give the same logits."""
    return zlib.crc32(stem.encode())


def random_values(tensors: list[tuple[str, tuple, str]], seed: int) -> dict[str, np.ndarray]:
    """Weights whose activations neither die nor explode, so the logits depend on the input and every layer counts:
    He-normal convs (fan-in per group), batch norms with non-trivial statistics and affine parameters (so folding
    them is checked), a small random classifier. Roles come from the names: a layer with a mean is a batch norm
    (torch, Paddle and MindSpore names alike), a 4-d weight a conv, a 2-d weight a linear layer."""
    rng = np.random.default_rng(seed)
    layers: dict[str, dict[str, tuple]] = {}
    for name, shape, dtype in tensors:
        layer, _, suffix = name.rpartition(".")
        layers.setdefault(layer, {})[suffix] = (name, shape, dtype)
    out = {}
    for layer, members in layers.items():
        is_bn = any(BN_ROLES.get(s) == "mean" for s in members)
        for suffix, (name, shape, dtype) in members.items():
            if not dtype.startswith("float"):
                continue  # num_batches_tracked: the framework's own counter
            if is_bn:
                value = {"gamma": lambda: rng.uniform(0.5, 1.5, shape), "beta": lambda: rng.normal(0, 0.2, shape),
                         "mean": lambda: rng.normal(0, 0.2, shape), "var": lambda: rng.uniform(0.5, 2.0, shape)
                         }[BN_ROLES[suffix]]()
            elif len(shape) == 4:
                value = rng.normal(0, math.sqrt(2.0 / math.prod(shape[1:])), shape)
            elif len(shape) == 2:
                value = rng.normal(0, 0.02, shape)
            else:
                value = rng.normal(0, 0.1, shape)
            out[name] = value.astype(np.float32)
    return out


def short(value: np.float32) -> float:
    """The shortest decimal that reads back as the same float32 (JSON would print 17 digits of its float64)."""
    return float(str(np.float32(value)))


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def plan_entry(family: str, width: float, depth: float, classes: int, made_by: str, tensors) -> dict:
    """tensors: (name, shape, numpy dtype name) in the framework's state-dict order."""
    return {"family": family, "width": width, "depth": depth, "num_classes": classes, "made_by": made_by,
            "tensors": [f"{name} {dtype} {json.dumps(list(shape))}" for name, shape, dtype in tensors]}


def model_record(files: list[tuple[str, str]], card: dict, made_by: str, forward, out: Path, stem: str) -> None:
    """<stem>.json: the files (name, zoo format), the card they fit, and forward(x) on every input."""
    logits = {}
    for key, x in inputs().items():
        y = np.asarray(forward(x), dtype=np.float32)
        assert y.shape == (x.shape[0], card["num_classes"]), y.shape
        logits[key] = [[short(v) for v in row] for row in y]
    y = np.asarray(logits["r64_b2"])
    spread = float(np.abs(y[0] - y[1]).max())
    assert spread > 0.1 and np.abs(y).max() < 50, f"{stem}: logits barely depend on the input, or explode"
    write_json(out / f"{stem}.json", {"files": [{"file": f, "format": fmt} for f, fmt in files], "card": card,
                                      "made_by": made_by, "logits": logits})


# ---------------------------------------------------------------- torch, torchvision, timm (and d-li14's torch code)

def step_torch(out: Path) -> None:
    import os

    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file
    from timm.models.efficientnet import _gen_mobilenet_v2

    sys.path.insert(0, str(ROOT / "tests"))
    from reference_models import DLi14MobileNetV2

    versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"

    def tensors(model):
        return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]

    def filled(model, stem):
        values = random_values(tensors(model), seed_of(stem))
        model.load_state_dict({k: torch.from_numpy(values[k]) if k in values else v
                               for k, v in model.state_dict().items()})
        return model.eval()

    def forward(model):
        def run(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        return run

    plans = {}
    for name, (width, depth) in TIMM.items():
        for classes in (1000, 1001) if name in TIMM_1001 else (1000,):
            made_by = f"{versions}: timm.create_model({name!r}, num_classes={classes})"
            plans[f"timm {name} c{classes}"] = plan_entry("timm", width, depth, classes, made_by,
                                                          tensors(timm.create_model(name, num_classes=classes)))
    for width in TORCHVISION_WIDTHS:
        made_by = f"{versions}: torchvision.models.mobilenet_v2(width_mult={width})"
        plans[f"torchvision {width}"] = plan_entry("torchvision", width, 1.0, 1000, made_by,
                                                   tensors(torchvision.models.mobilenet_v2(width_mult=width)))
    for width in DLI14_WIDTHS:
        made_by = (f"{versions}: tests/reference_models.py DLi14MobileNetV2({width}), after d-li14's "
                   "models/imagenet/mobilenetv2.py")
        plans[f"d-li14 {width}"] = plan_entry("d-li14", width, 1.0, 1000, made_by, tensors(DLi14MobileNetV2(width)))
    write_json(out / "plans.json", plans)

    # timm's own generator at width 0.1 (its registered names stop at 0.35): one state dict, two writers
    stem = f"timm_w{WIDTH:g}"
    model = filled(_gen_mobilenet_v2("mobilenetv2_100", WIDTH, num_classes=CLASSES), stem)
    torch.save(model.state_dict(), out / f"{stem}.pth")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"{stem}.safetensors"))
    model_record([(f"{stem}.pth", "pth"), (f"{stem}.safetensors", "safetensors")],
                 {"source": "timm", "width": WIDTH, "depth": 1.0, "num_classes": CLASSES},
                 f"{versions}: timm.models.efficientnet._gen_mobilenet_v2('mobilenetv2_100', {WIDTH}, "
                 f"num_classes={CLASSES}); torch.save (zip) and safetensors.torch.save_file", forward(model), out, stem)

    stem = f"torchvision_w{WIDTH:g}"
    model = filled(torchvision.models.mobilenet_v2(width_mult=WIDTH, num_classes=CLASSES), stem)
    torch.save(model.state_dict(), out / f"{stem}.pth", _use_new_zipfile_serialization=False)  # as its 2018 files
    model_record([(f"{stem}.pth", "pth")],
                 {"source": "torchvision", "width": WIDTH, "depth": 1.0, "num_classes": CLASSES},
                 f"{versions}: torchvision.models.mobilenet_v2(width_mult={WIDTH}, num_classes={CLASSES}); "
                 "torch.save(_use_new_zipfile_serialization=False), the legacy format", forward(model), out, stem)

    stem = f"dli14_w{WIDTH:g}"
    model = filled(DLi14MobileNetV2(WIDTH, num_classes=CLASSES), stem)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # as nn.DataParallel saves it
    torch.save({"epoch": 150, "arch": "mobilenetv2", "state_dict": state, "best_prec1": 72.1}, out / f"{stem}.pth.tar")
    model_record([(f"{stem}.pth.tar", "pth")],
                 {"source": "d-li14", "width": WIDTH, "depth": 1.0, "num_classes": CLASSES},
                 f"{versions}: tests/reference_models.py DLi14MobileNetV2({WIDTH}, num_classes={CLASSES}); torch.save "
                 "of a DataParallel training checkpoint {epoch, arch, state_dict: module.*, best_prec1}",
                 forward(model), out, stem)

    # the pth reader: every dtype, a transposed view, a view with an offset, a scalar, a Parameter, in both formats
    torch.manual_seed(0)
    mixed = {"a": torch.randn(3, 4), "t": torch.randn(4, 5).t(), "v": torch.arange(20.).reshape(4, 5)[1:, 2:],
             "h": torch.randn(6).half(), "b": torch.randn(5).bfloat16(), "i": torch.tensor(7),
             "p": torch.nn.Parameter(torch.randn(2))}
    torch.save(mixed, out / "reader.pth")
    torch.save(mixed, out / "reader-legacy.pth", _use_new_zipfile_serialization=False)
    expected = {k: (v.detach().float() if k == "b" else v.detach()).numpy() for k, v in mixed.items()}
    np.savez(out / "reader.npz", **expected)  # what torch holds; bfloat16 as float32

    # hostile files, as torch itself writes them (torch.load(weights_only=False) would run `touch pwned`)
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"w": torch.zeros(1), "x": Boom()}, out / "evil.pth")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=0.1)}, out / "namespace.pth")

    write_json(out / "preprocess.json", preprocess_record(versions))


def preprocess_record(versions: str) -> dict:
    """timm's and torchvision's eval transforms on 10 sample images: the uint8 crop's sha256 and every
    VALUES_STRIDE-th value of the normalised float image (HWC)."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config
    from torchvision.models import MobileNet_V2_Weights
    from torchvision.transforms import functional as F

    # 8 images spread over the sample, a greyscale JPEG and the one with EXIF orientation 6
    names = [p.name for p in sorted(SAMPLE.glob("*.JPEG"))[::125]] + ["n02096051_Airedale.JPEG",
                                                                      "n02951585_can_opener.JPEG"]

    def hwc(tensor):
        return tensor.permute(1, 2, 0).numpy()

    def entry(pixels: np.ndarray, values: np.ndarray) -> dict:
        assert pixels.dtype == np.uint8 and values.dtype == np.float32 and pixels.shape == values.shape
        return {"shape": list(pixels.shape), "pixels_sha256": hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest(),
                "values": [short(v) for v in values.ravel()[::VALUES_STRIDE]]}

    record = {"made_by": versions, "images": names, "values_stride": VALUES_STRIDE, "timm": {}, "torchvision": {}}
    for model in ("mobilenetv2_100.ra_in1k", "mobilenetv2_050.lamb_in1k"):
        config = resolve_data_config({}, model=timm.create_model(model, pretrained=False))
        full = create_transform(**config)
        unnormalised = type(full)(full.transforms[:-1])  # everything but Normalize: x / 255
        images = {}
        for name in names:
            image = Image.open(SAMPLE / name).convert("RGB")  # timm's ImageDataset loader
            images[name] = entry(np.rint(hwc(unnormalised(image)) * 255).astype(np.uint8), hwc(full(image)))
        record["timm"][model] = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
                                 "images": images}
    for weights in ("IMAGENET1K_V1", "IMAGENET1K_V2"):
        transform = getattr(MobileNet_V2_Weights, weights).transforms()
        images = {}
        for name in names:
            image = Image.open(SAMPLE / name).convert("RGB")
            crop = F.center_crop(F.resize(image, transform.resize_size, interpolation=transform.interpolation,
                                          antialias=True), transform.crop_size)
            images[name] = entry(np.asarray(crop), hwc(transform(image)))
        record["torchvision"][weights] = {
            "config": {"resize_size": list(transform.resize_size), "crop_size": list(transform.crop_size),
                       "interpolation": transform.interpolation.value, "mean": list(transform.mean),
                       "std": list(transform.std)},
            "images": images}
    return record


# ---------------------------------------------------------------- PaddlePaddle, PaddleClas' model code

def paddleclas_mobilenet_v2():
    """ppcls/arch/backbone/model_zoo/mobilenet_v2.py from the paddleclas package, imported alone: the package's own
    __init__ pulls in its whole training stack, and the model file needs only paddle (the pretrained-weights loader
    it imports is never called here)."""
    import importlib.util
    import types

    root = Path(importlib.util.find_spec("paddleclas").submodule_search_locations[0]) / "ppcls"
    for name in ("ppcls", "ppcls.utils", "ppcls.arch", "ppcls.arch.backbone", "ppcls.arch.backbone.model_zoo"):
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = package
    sys.modules["ppcls.utils.save_load"] = types.SimpleNamespace(load_dygraph_pretrain=None)
    spec = importlib.util.spec_from_file_location("ppcls.arch.backbone.model_zoo.mobilenet_v2",
                                                  root / "arch" / "backbone" / "model_zoo" / "mobilenet_v2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_paddle(out: Path) -> None:
    from importlib.metadata import version

    import paddle

    paddle.set_device("cpu")
    mobilenet_v2 = paddleclas_mobilenet_v2()
    versions = f"paddlepaddle {paddle.__version__}, paddleclas {version('paddleclas')}"

    def tensors(model):
        return [(k, tuple(v.shape), str(v.numpy().dtype)) for k, v in model.state_dict().items()]

    def make(**options):
        with paddle.utils.unique_name.guard():  # PaddleClas names its parameters, and a name may be used only once
            return mobilenet_v2.MobileNet(**options)

    plans = {}
    for scale in PADDLE_SCALES:
        made_by = f"{versions}: ppcls MobileNet(scale={scale})"
        plans[f"paddleclas {scale}"] = plan_entry("paddleclas", scale, 1.0, 1000, made_by, tensors(make(scale=scale)))
    write_json(out / "plans.json", plans)

    stem = f"paddleclas_x{WIDTH:g}"
    model = make(scale=WIDTH, class_num=CLASSES)
    model.set_state_dict(random_values(tensors(model), seed_of(stem)))
    model.eval()
    paddle.save(model.state_dict(), str(out / f"{stem}.pdparams"))  # protocol 4, paddle.save's default
    paddle.save(model.state_dict(), str(out / f"{stem}.p2.pdparams"), protocol=2)  # as the 2020-era published files

    def forward(x):
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    model_record([(f"{stem}.pdparams", "pdparams"), (f"{stem}.p2.pdparams", "pdparams")],
                 {"source": "paddleclas", "width": WIDTH, "depth": 1.0, "num_classes": CLASSES},
                 f"{versions}: ppcls MobileNet(scale={WIDTH}, class_num={CLASSES}); paddle.save(state_dict) with "
                 "protocol 4 and 2", forward, out, stem)


# ---------------------------------------------------------------- MindSpore, MindCV's model code

def step_mindspore(out: Path) -> None:
    from importlib.metadata import version

    import mindspore as ms
    from mindcv.models.mobilenetv2 import MobileNetV2
    from mindspore import nn

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_device("CPU")
    versions = f"mindspore {ms.__version__}, mindcv {version('mindcv')}"

    def tensors(net):
        return [(p.name, tuple(p.shape), str(p.asnumpy().dtype)) for p in net.get_parameters()]

    plans = {}
    for alpha in MINDCV_ALPHAS:
        made_by = f"{versions}: mindcv.models.mobilenetv2.MobileNetV2(alpha={alpha})"
        plans[f"mindcv {alpha}"] = plan_entry("mindcv", alpha, 1.0, 1000, made_by, tensors(MobileNetV2(alpha=alpha)))
    write_json(out / "plans.json", plans)

    stem = f"mindcv_w{WIDTH:g}"
    net = MobileNetV2(alpha=WIDTH, num_classes=CLASSES)
    values = random_values(tensors(net), seed_of(stem))
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in values.items()}, strict_load=True)
    net.set_train(False)
    # a training checkpoint, as MindCV's train.py saves it: the optimizer's moments, learning rate and step beside
    optimizer = nn.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.9)
    train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True)), optimizer)
    ms.save_checkpoint(train, str(out / f"{stem}.ckpt"))
    (out / f"{stem}.ckpt").chmod(0o644)  # MindSpore writes it read-only for its owner
    net.set_train(False)
    model_record([(f"{stem}.ckpt", "mindspore-ckpt")],
                 {"source": "mindcv", "width": WIDTH, "depth": 1.0, "num_classes": CLASSES},
                 f"{versions}: mindcv.models.mobilenetv2.MobileNetV2(alpha={WIDTH}, num_classes={CLASSES}) in a "
                 "TrainOneStepCell with nn.Momentum; mindspore.save_checkpoint", lambda x: net(ms.Tensor(x)).asnumpy(),
                 out, stem)


STEPS = {"torch": step_torch, "paddle": step_paddle, "mindspore": step_mindspore}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    args = parser.parse_args()
    out = GOLDEN / args.step
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    STEPS[args.step](out)


if __name__ == "__main__":
    main()
