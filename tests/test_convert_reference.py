"""The converter against the frameworks themselves, live: `pytest -m reference` with the reference extra
(`pip install -e '.[reference]'`: torch, torchvision, timm).

Each family's weights are written in their real file layout from a torch model with random weights and random
batch-norm statistics (timm.create_model, torchvision.models.mobilenet_v2, and tests/reference_models.py's torch
modules written after PaddleClas', MindCV's and d-li14's definitions), converted, and compared with the torch
forward pass on random inputs: every timm variant at full size, every PaddleClas scale, and so on. The light suite
(tests/test_convert.py) checks the same converter against golden files that tests/golden/record.py recorded with
the real frameworks; the last tests here check that those files still are what timm and torchvision build and
compute.
"""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from test_convert import INPUTS, MODELS, PLANS, card_for, check, converted, golden_file, serve
from zoo.artifacts import convert
from zoo.artifacts.convert import builder, mapping, readers
from zoo.errors import ConversionError

try:
    import torch
    from torch import nn

    from reference_models import (DLi14MobileNetV2, MindCVMobileNetV2, PaddleMobileNet, randomize, write_ckpt,
                                  write_pdparams)
except ImportError:  # the light install; these tests are deselected there, and fail below if asked for
    torch = None

pytestmark = pytest.mark.reference


@pytest.fixture(autouse=True)
def frameworks():
    if torch is None:
        pytest.fail("the reference tests need torch, torchvision and timm: pip install -e '.[reference]'")


TIMM = {"mobilenetv2_035": (0.35, 1.0), "mobilenetv2_050": (0.5, 1.0), "mobilenetv2_075": (0.75, 1.0),
        "mobilenetv2_100": (1.0, 1.0), "mobilenetv2_140": (1.4, 1.0), "mobilenetv2_110d": (1.1, 1.2),
        "mobilenetv2_120d": (1.2, 1.4)}


def compare(onnx_path, model, resolution: int, batch: int = 2) -> tuple[float, float]:
    """(max abs difference of the logits, max abs logit): ONNX Runtime against the torch reference's forward."""
    x = np.random.default_rng(3).standard_normal((batch, 3, resolution, resolution), dtype=np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    if batch > 1:  # the comparison must mean something: logits that depend on the input
        spread = float(np.abs(want[0] - want[1]).max())
        assert spread > 0.1, f"reference logits barely depend on the input ({spread:.3g}): a weak comparison"
    return float(np.abs(got - want).max()), float(np.abs(want).max())


@pytest.mark.parametrize("name, classes, resolution", [(name, 1000, 224) for name in sorted(TIMM)] +
                         [("mobilenetv2_035", 1001, 160), ("mobilenetv2_120d", 1001, 96)])
def test_timm_every_variant_against_timms_forward(tmp_path, name, classes, resolution):
    import timm

    model = randomize(timm.create_model(name, pretrained=False, num_classes=classes))
    torch.save(model.state_dict(), tmp_path / "w.pth")  # zip format
    width, depth = TIMM[name]
    path = converted(card_for("timm", width, depth, classes, resolution), tmp_path / "w.pth", "pth")
    check(f"timm {name} c{classes} r{resolution} (pth zip)", compare(path, model, resolution))


@pytest.mark.parametrize("width", [1.0, 0.5, 1.4])
def test_torchvision_legacy_pth_against_torchvisions_forward(tmp_path, width):
    import torchvision

    model = randomize(torchvision.models.mobilenet_v2(width_mult=width))
    torch.save(model.state_dict(), tmp_path / "w.pth", _use_new_zipfile_serialization=False)  # as its 2018 file
    path = converted(card_for("torchvision", width), tmp_path / "w.pth", "pth")
    check(f"torchvision mobilenet_v2 width {width} (legacy pth)", compare(path, model, 224))


@pytest.mark.parametrize("scale", [0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
def test_paddleclas_every_scale(tmp_path, scale):
    model = randomize(PaddleMobileNet(scale))
    write_pdparams(model, tmp_path / "w.pdparams")
    path = converted(card_for("paddleclas", scale), tmp_path / "w.pdparams", "pdparams")
    check(f"paddleclas MobileNetV2 x{scale} (pdparams)", compare(path, model, 224))


@pytest.mark.parametrize("alpha", [0.75, 1.4])
def test_mindcv_ckpt(tmp_path, alpha):
    model = randomize(MindCVMobileNetV2(alpha))
    write_ckpt(model, tmp_path / "w.ckpt")
    path = converted(card_for("mindcv", alpha), tmp_path / "w.ckpt", "mindspore-ckpt")
    check(f"mindcv mobilenet_v2 {alpha} (ckpt)", compare(path, model, 224))


def test_dli14_training_checkpoint(tmp_path):
    """d-li14's layout saved as a DataParallel training checkpoint: {'state_dict': {'module.…'}, 'epoch': …}."""
    model = randomize(DLi14MobileNetV2(0.25))
    sd = OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items())
    torch.save({"epoch": 150, "arch": "mobilenetv2", "state_dict": sd, "best_prec1": 72.1}, tmp_path / "w.pth.tar")
    path = converted(card_for("d-li14", 0.25), tmp_path / "w.pth.tar", "pth")
    check("d-li14 mobilenetv2 0.25 (pth zip, training checkpoint)", compare(path, model, 224))


def test_timm_safetensors_by_name_any_resolution_and_batch(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = randomize(timm.create_model("mobilenetv2_050", num_classes=1000))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    path = converted(card_for("timm", 0.5), tmp_path / "w.safetensors", "safetensors")
    check("timm mobilenetv2_050 (safetensors)", compare(path, model, 224))
    plan = builder.plan_for("timm", 0.5)
    weights = mapping.map_weights(readers.read(tmp_path / "w.safetensors"), plan)  # alphabetical: mapped by name
    builder.save(builder.build(plan, weights, resolution=None), tmp_path / "any.onnx")
    for res, batch in ((192, 3), (128, 1)):
        check(f"timm mobilenetv2_050 (safetensors, dynamic HxW {res}, batch {batch})",
              compare(tmp_path / "any.onnx", model, res, batch))


def test_unknown_names_are_mapped_by_order(tmp_path):
    model = randomize(MindCVMobileNetV2(1.0))
    names, layer_of = {}, []
    for k in model.state_dict():  # one new name per layer, not per tensor
        layer_of.append(names.setdefault(k.rpartition(".")[0], f"net.layer{len(names):03d}"))
    pairs = [(f"{layer}.{k.rpartition('.')[2]}", v.numpy()) for layer, (k, v) in zip(layer_of, model.state_dict().items())]
    plan = builder.plan_for("mindcv", 1.0)
    builder.save(builder.build(plan, mapping.map_weights(pairs, plan)), tmp_path / "m.onnx")
    check("mindcv mobilenet_v2 1.0 (unknown names, by order)", compare(tmp_path / "m.onnx", model, 224))
    with pytest.raises(ConversionError, match=r"does not fit .*: tensor 0 net\.layer000\.weight \(conv weight "
                                              r"\[32, 3, 3, 3\]\) meets stem\.weight \(conv weight \[24, 3, 3, 3\]\)"):
        mapping.map_weights(pairs, builder.plan_for("mindcv", 0.75))
    with pytest.raises(ConversionError, match=r"holds 261 weight tensors; .* needs 262 \(first missing tensor "
                                              r"classifier\.bias"):
        mapping.map_weights(pairs[:-1], plan)


def test_the_comparison_catches_wrong_weights_and_wrong_plans(tmp_path):
    """Negative controls: other weights, or one residual flag flipped, fail the check by far."""
    model = randomize(PaddleMobileNet(0.5))
    write_pdparams(model, tmp_path / "w.pdparams")
    plan = builder.plan_for("paddleclas", 0.5)
    weights = mapping.map_weights(readers.read(tmp_path / "w.pdparams"), plan, fmt="pdparams")
    builder.save(builder.build(plan, weights), tmp_path / "ok.onnx")
    assert compare(tmp_path / "ok.onnx", model, 224)[0] <= 1e-4
    assert compare(tmp_path / "ok.onnx", randomize(PaddleMobileNet(0.5), seed=2), 224)[0] > 1e-2
    blocks = list(plan.blocks)
    blocks[-2] = dataclasses.replace(blocks[-2], residual=False)
    builder.save(builder.build(dataclasses.replace(plan, blocks=tuple(blocks)), weights), tmp_path / "wrong.onnx")
    assert compare(tmp_path / "wrong.onnx", model, 224)[0] > 1e-2


def test_pth_reader_matches_torch_load_in_both_formats(tmp_path):
    sd = OrderedDict(a=torch.randn(3, 4), t=torch.randn(4, 5).t(), v=torch.arange(20.).reshape(4, 5)[1:, 2:],
                     h=torch.randn(6).half(), b=torch.randn(5).bfloat16(), i=torch.tensor(7),
                     p=nn.Parameter(torch.randn(2)))
    for legacy in (False, True):
        torch.save(sd, tmp_path / "x.pth", _use_new_zipfile_serialization=not legacy)
        got = dict(readers.read(tmp_path / "x.pth"))
        for k, v in sd.items():
            want = v.detach().float().numpy() if k == "b" else v.detach().numpy()
            assert np.array_equal(got[k], want) and got[k].shape == tuple(v.shape), (legacy, k)


def test_pdparams_protocol_2_and_bare_tensor_tuples(tmp_path):
    model = randomize(PaddleMobileNet(0.5))
    write_pdparams(model, tmp_path / "p2.pdparams", protocol=2)
    pairs = readers.read(tmp_path / "p2.pdparams")
    assert pairs[0][0] == "conv1._conv.weight" and pairs[-1][0] == "out.bias"
    assert pairs[-2][1].shape == (1280, 1000)  # [in, out], transposed when mapped
    weights = mapping.map_weights(pairs, builder.plan_for("paddleclas", 0.5), fmt="pdparams")
    assert np.array_equal(weights["classifier.weight"], model.out.weight.detach().numpy())


def test_cache_by_source_sha256_and_converter_version(tmp_path, monkeypatch):
    import torchvision

    model = randomize(torchvision.models.mobilenet_v2())
    torch.save(model.state_dict(), tmp_path / "tv.pth")
    card = serve(tmp_path, "torchvision/mobilenet_v2.imagenet1k_v1", "mine.pth", tmp_path / "tv.pth", "pth")
    events = []
    first = convert.convert_card(card, mirrors=[str(tmp_path / "mirror")], progress=events.append)
    assert any(e["event"] == "warning" and "trusting it on first use" in e["message"] for e in events)
    again = convert.convert_card(card, mirrors=[str(tmp_path / "mirror")], output=tmp_path / "copy.onnx")
    assert first["cached"] is False and again["cached"] is True and again["sha256"] == first["sha256"]
    assert (tmp_path / "copy.onnx").read_bytes() == Path(first["path"]).read_bytes()
    record = json.loads(Path(first["path"]).with_suffix(".json").read_text())
    assert record["sha256"] == first["sha256"] and record["source"]["file"] == "mine.pth"
    assert f"/{record['source']['sha256']}/v{convert.CONVERTER_VERSION}/" in first["path"]
    assert record["architecture"]["family"] == "torchvision"
    check("torchvision mobilenet_v2 1.0 through convert_card (zip pth)", compare(first["path"], model, 224))
    monkeypatch.setattr(convert, "CONVERTER_VERSION", convert.CONVERTER_VERSION + 1)
    newer = convert.convert_card(card, mirrors=[str(tmp_path / "mirror")])
    assert newer["cached"] is False and newer["path"] != first["path"]


# ---------------------------------------------------------------- the golden files are still the frameworks'

def tensors(model) -> list[str]:
    return [f"{k} {str(v.dtype).removeprefix('torch.')} {json.dumps(list(v.shape))}" for k, v in model.state_dict().items()]


@pytest.mark.parametrize("key", sorted(k for k, v in PLANS.items() if v["family"] in ("timm", "torchvision", "d-li14")))
def test_golden_plans_are_what_timm_and_torchvision_build(key):
    import timm
    import torchvision

    entry = PLANS[key]
    if entry["family"] == "timm":
        model = timm.create_model(key.split()[1], num_classes=entry["num_classes"])
    elif entry["family"] == "torchvision":
        model = torchvision.models.mobilenet_v2(width_mult=entry["width"])
    else:
        model = DLi14MobileNetV2(entry["width"])
    assert tensors(model) == entry["tensors"]


@pytest.mark.parametrize("stem", sorted(s for s in MODELS if MODELS[s]["framework"] == "torch"))
def test_golden_checkpoints_load_and_run_in_torch(stem):
    """torch reads each recorded file into the framework's model and computes the recorded logits."""
    import timm
    import torchvision

    record = MODELS[stem]
    card = record["card"]
    model = {"timm": lambda: timm.models.efficientnet._gen_mobilenet_v2("mobilenetv2_100", card["width"],
                                                                         num_classes=card["num_classes"]),
             "torchvision": lambda: torchvision.models.mobilenet_v2(width_mult=card["width"],
                                                                    num_classes=card["num_classes"]),
             "d-li14": lambda: DLi14MobileNetV2(card["width"], num_classes=card["num_classes"])}[card["source"]]()
    for entry in record["files"]:
        path = golden_file(record, entry["file"])
        if entry["format"] == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, weights_only=True)
            state = {k.removeprefix("module."): v for k, v in state.get("state_dict", state).items()}
        model.load_state_dict(state)
        with torch.no_grad():
            got = model.eval()(torch.from_numpy(INPUTS["r64_b2"])).numpy()
        want = np.asarray(record["logits"]["r64_b2"], np.float32)
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max()), entry["file"]
