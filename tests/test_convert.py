"""Native weights to ONNX: each format written in its real layout from a random timm model, converted, and
ONNX Runtime's output compared with timm's forward; mismatches and unsafe pickles refused."""
from __future__ import annotations

import copy
import json
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import zoo
from zoo.artifacts import convert
from zoo.errors import ConversionError
from zoo.errors import UnsupportedArtifactError
from zoo.cards.registry import load_registry
from zoo_cli import app

import onnxruntime as ort  # noqa: E402
import timm  # noqa: E402,F401  (the test extra installs it; never skipped)
import torch  # noqa: E402

MAX_DIFFS: dict[str, float] = {}


def sha256_of(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    for name in ("ZOO_MIRROR", "ZOO_OFFLINE", "ZOO_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def card(card_id: str) -> dict:
    return copy.deepcopy(load_registry().resolve(card_id)[0].card)


def random_timm(c: dict, fmt: str | None = None, seed: int = 1):
    """timm's model for the card with random weights and random batch-norm statistics."""
    torch.manual_seed(seed)
    model = convert.build_model(convert.architecture(c, fmt))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def layers(model) -> list[tuple[str, dict]]:
    """(kind, {role: tensor}) for every conv, batch norm and linear layer, in timm's order."""
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            out.append(("conv", {"weight": m.weight}))
        elif isinstance(m, torch.nn.BatchNorm2d):
            out.append(("bn", {"weight": m.weight, "bias": m.bias, "mean": m.running_mean, "var": m.running_var}))
        elif isinstance(m, torch.nn.Linear):
            out.append(("linear", {"weight": m.weight, "bias": m.bias}))
    return [(k, {r: t.detach().clone() for r, t in d.items()}) for k, d in out]


def expansions(model) -> list[int]:
    """1 for a block without an expansion conv, else 6, for each block in order."""
    return [1 if not hasattr(b, "conv_pwl") else 6 for stage in model.blocks for b in stage]


def torchvision_names(model) -> list[str]:
    """torchvision's mobilenet_v2 module names (features.N...), one per conv/bn/linear layer."""
    names, i = ["features.0.0", "features.0.1"], 1
    for t in expansions(model):
        p = f"features.{i}.conv"
        names += ([f"{p}.0.0", f"{p}.0.1", f"{p}.1", f"{p}.2"] if t == 1 else
                  [f"{p}.0.0", f"{p}.0.1", f"{p}.1.0", f"{p}.1.1", f"{p}.2", f"{p}.3"])
        i += 1
    return names + [f"features.{i}.0", f"features.{i}.1", "classifier.1"]


def mindcv_names(model) -> list[str]:
    """MindCV's MobileNetV2 cell names: features.K (ReLU6 cells take indices too), classifier.1 the Dense."""
    names, k = ["features.0", "features.1"], 3
    for t in expansions(model):
        p = f"features.{k}.layers"
        names += ([f"{p}.0", f"{p}.1", f"{p}.3", f"{p}.4"] if t == 1 else
                  [f"{p}.0", f"{p}.1", f"{p}.3", f"{p}.4", f"{p}.6", f"{p}.7"])
        k += 1
    return names + [f"features.{k}", f"features.{k + 1}", "classifier.1"]


def paddle_names(model) -> list[tuple[str, str]]:
    """PaddleClas MobileNetV2 structured names and ParamAttr names: (structured layer, parameter prefix)."""
    names = [("conv1._conv", "conv1_1_weights"), ("conv1._batch_norm", "conv1_1_bn")]
    for s, stage in enumerate(model.blocks):
        i = s + 2
        for b in range(len(stage)):
            unit = f"conv{i}._first_block" if b == 0 else f"conv{i}.conv{i}_{b + 1}"
            param = f"conv{i}_{b + 1}"
            for part, suffix in (("_expand_conv", "_expand"), ("_bottleneck_conv", "_dwise"), ("_linear_conv", "_linear")):
                names += [(f"{unit}.{part}._conv", f"{param}{suffix}_weights"),
                          (f"{unit}.{part}._batch_norm", f"{param}{suffix}_bn")]
    return names + [("conv9._conv", "conv9_weights"), ("conv9._batch_norm", "conv9_bn"), ("out", "fc10")]


def write_torchvision(model, path):
    state = OrderedDict()
    for name, (kind, t) in zip(torchvision_names(model), layers(model), strict=True):
        if kind == "bn":
            state.update({f"{name}.weight": t["weight"], f"{name}.bias": t["bias"], f"{name}.running_mean": t["mean"],
                          f"{name}.running_var": t["var"], f"{name}.num_batches_tracked": torch.tensor(7)})
        else:
            state.update({f"{name}.{role}": v for role, v in t.items()})
    torch.save(state, path)


def write_pdparams(model, path, protocol=2):
    """Paddle's dygraph container: a pickled dict of numpy arrays plus StructuredToParameterName@@."""
    state, table = {}, {}
    for (name, param), (kind, t) in zip(paddle_names(model), layers(model), strict=True):
        if kind == "conv":
            entries = {"weight": (t["weight"], param)}
        elif kind == "bn":
            entries = {"weight": (t["weight"], f"{param}_scale"), "bias": (t["bias"], f"{param}_offset"),
                       "_mean": (t["mean"], f"{param}_mean"), "_variance": (t["var"], f"{param}_variance")}
        else:  # paddle.nn.Linear stores its weight as [in, out]
            entries = {"weight": (t["weight"].T.contiguous(), f"{param}_weights"), "bias": (t["bias"], f"{param}_offset")}
        for suffix, (value, pname) in entries.items():
            state[f"{name}.{suffix}"] = value.numpy().astype(np.float32)
            table[f"{name}.{suffix}"] = pname
    state["StructuredToParameterName@@"] = table
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=protocol)


def checkpoint_class():
    """MindSpore's Checkpoint message, built from its .proto schema with protobuf's descriptor API."""
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


def write_ckpt(model, path):
    """A MindSpore checkpoint as MindCV saves it: BN cells store moving_mean, moving_variance, gamma, beta (in
    that order), with optimizer state and step counters beside the network's parameters."""
    entries = []
    for name, (kind, t) in zip(mindcv_names(model), layers(model), strict=True):
        if kind == "bn":
            entries += [(f"{name}.moving_mean", t["mean"]), (f"{name}.moving_variance", t["var"]),
                        (f"{name}.gamma", t["weight"]), (f"{name}.beta", t["bias"])]
        else:
            entries += [(f"{name}.{role}", v) for role, v in t.items()]
    entries += [(f"moments.{n}", torch.zeros_like(v)) for n, v in entries[:3]]
    checkpoint = checkpoint_class()()
    for tag, v in entries + [("global_step", torch.tensor([1234], dtype=torch.int32)),
                             ("learning_rate", torch.tensor(0.1))]:
        value = checkpoint.value.add(tag=tag)
        array = v.numpy()
        value.tensor.dims.extend(array.shape)
        value.tensor.tensor_type = {"float32": "Float32", "int32": "Int32"}[str(array.dtype)]
        value.tensor.tensor_content = array.tobytes()
    path.write_bytes(checkpoint.SerializeToString())


def onnx_matches_timm(record, model, resolution) -> float:
    x = np.random.default_rng(3).standard_normal((3, 3, resolution, resolution), dtype=np.float32)
    session = ort.InferenceSession(record["path"], providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max())


# ---------------------------------------------------------------- each native format, converted exactly

WRITERS = {
    "timm-safetensors": ("timm/mobilenetv2_050.lamb_in1k", "safetensors", "w.safetensors"),
    "timm-pth": ("timm/mobilenetv2_110d.ra_in1k", "pth", "w.pth"),
    "torchvision-pth": ("torchvision/mobilenet_v2.imagenet1k_v1", "pth", "w.pth"),
    "paddleclas-pdparams": ("paddleclas/MobileNetV2", "pdparams", "w.pdparams"),
    "mindcv-ckpt": ("mindcv/mobilenet_v2_075", "mindspore-ckpt", "w.ckpt"),
}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_native_layout_converts_to_timms_forward(home, layout):
    card_id, fmt, file = WRITERS[layout]
    c = card(card_id)
    model = random_timm(c, fmt)
    path = home / file
    if layout == "timm-safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    elif layout == "timm-pth":
        torch.save(model.state_dict(), path)
    elif layout == "torchvision-pth":
        write_torchvision(model, path)
    elif layout == "paddleclas-pdparams":
        write_pdparams(model, path)
    else:
        write_ckpt(model, path)
    record = convert.convert_file(c, path, fmt)
    diff = onnx_matches_timm(record, model, c["resolution"])
    MAX_DIFFS[layout] = diff
    print(f"\n{layout}: max abs diff {diff:.3g} (converter's own check {record['max_abs_diff']:.3g})")
    assert diff <= 1e-4 and record["max_abs_diff"] <= 1e-4
    assert record["sha256"] == sha256_of(record["path"]) and record["cached"] is False
    assert record["source"]["sha256"] == sha256_of(path) and record["converter_version"] == convert.CONVERTER_VERSION
    assert f"/{record['source']['sha256']}/v{convert.CONVERTER_VERSION}/" in record["path"]
    # the model really changed: a model with other random weights gives other logits
    assert onnx_matches_timm(record, random_timm(c, fmt, seed=2), c["resolution"]) > 1e-2


def test_pdparams_protocol_4_and_numpy_arrays_only(home):
    c = card("paddleclas/MobileNetV2_x0_5")
    model = random_timm(c, "pdparams")
    write_pdparams(model, home / "p4.pdparams", protocol=4)
    tensors = convert.read_pdparams(home / "p4.pdparams")
    assert tensors[0][0] == "conv1._conv.weight" and tensors[-1][0] == "out.bias"
    assert tensors[-2][1].shape == (1280, 1000)  # [in, out], transposed when mapped
    mapped = convert.match(convert.layered(tensors, transpose_linear=True), convert.timm_tensors(model),
                           file="p4.pdparams", arch="x")
    assert np.array_equal(mapped["classifier.weight"], model.classifier.weight.detach().numpy())


def test_cache_by_source_sha256_and_converter_version(home, monkeypatch):
    c = card("torchvision/mobilenet_v2.imagenet1k_v1")
    model = random_timm(c)
    mirror = home / "mirror"
    mirror.mkdir()
    write_torchvision(model, mirror / "mine.pth")
    c["artifacts"] = [{"file": "mine.pth", "format": "pth", "precision": "fp32", "runtime": "onnxruntime", "urls": []}]
    events = []
    first = convert.convert_card(c, mirrors=[str(mirror)], progress=events.append)
    assert any(e["event"] == "warning" and "trusting it on first use" in e["message"] for e in events)
    again = convert.convert_card(c, mirrors=[str(mirror)], output=home / "copy.onnx")
    assert first["cached"] is False and again["cached"] is True and again["sha256"] == first["sha256"]
    assert (home / "copy.onnx").read_bytes() == open(first["path"], "rb").read()
    record = json.loads(open(first["path"][:-5] + ".json").read())
    assert record["sha256"] == first["sha256"] and record["source"]["file"] == "mine.pth"
    monkeypatch.setattr(convert, "CONVERTER_VERSION", convert.CONVERTER_VERSION + 1)
    newer = convert.convert_card(c, mirrors=[str(mirror)], progress=events.append)
    assert newer["cached"] is False and newer["path"] != first["path"]


# ---------------------------------------------------------------- refused: mismatches and unsafe files

def test_shape_mismatch_is_a_clear_error(home):
    c = card("torchvision/mobilenet_v2.imagenet1k_v1")
    write_torchvision(random_timm(card("timm/mobilenetv2_075")), home / "w075.pth")  # 0.75 weights, 1.0 card
    with pytest.raises(ConversionError, match=r"does not fit timm's mobilenetv2_100: tensor 0 features\.0\.0\.weight "
                                              r"\(conv weight \[24, 3, 3, 3\]\) meets conv_stem\.weight \(conv weight \[32, 3, 3, 3\]\)"):
        convert.convert_file(c, home / "w075.pth", "pth")
    write_torchvision(random_timm(c), home / "short.pth")
    state = torch.load(home / "short.pth", weights_only=True)
    del state["classifier.1.bias"]
    torch.save(state, home / "short.pth")
    with pytest.raises(ConversionError, match="holds 261 weight tensors; timm's mobilenetv2_100 needs 262"):
        convert.convert_file(c, home / "short.pth", "pth")
    assert not list((home / "zoo-home").rglob("*.onnx"))


def test_paddle_scales_without_a_timm_equivalent_are_refused(home):
    c = card("paddleclas/MobileNetV2_x0_75")  # int(18 * 6) = 108 channels; timm rounds to 112
    arch = convert.architecture(c, "pdparams")
    paddle = random_timm(card("paddleclas/MobileNetV2_x0_5"), "pdparams")
    write_pdparams(paddle, home / "x05.pdparams")
    with pytest.raises(ConversionError, match="does not fit timm's paddleclas_mobilenetv2_x0.75"):
        convert.convert_file(c, home / "x05.pdparams", "pdparams")
    assert arch["family"] == "paddleclas"


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pdparams",))


def test_malicious_pdparams_is_refused_without_running_it(home, monkeypatch):
    monkeypatch.chdir(home)
    path = home / "evil.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"conv1._conv.weight": np.zeros((32, 3, 3, 3), np.float32), "x": _Boom()}, f, protocol=2)
    with pytest.raises(ConversionError, match=r"refused to unpickle (posix|os)\.system"):
        convert.convert_file(card("paddleclas/MobileNetV2"), path, "pdparams")
    assert not (home / "pwned-by-pdparams").exists()


def test_malicious_pth_is_refused_without_running_it(home, monkeypatch):
    monkeypatch.chdir(home)
    torch.save({"w": torch.zeros(1), "x": _Boom()}, home / "evil.pth")  # torch.save pickles anything
    with pytest.raises(ConversionError, match="could not be read as pth without executing code") as err:
        convert.convert_file(card("timm/mobilenetv2_100.ra_in1k"), home / "evil.pth", "pth")
    assert not (home / "pwned-by-pdparams").exists()
    # torch's own message advises weights_only=False; zoo names the refused global and never passes that on
    message = err.value.one_line()
    assert "weights_only" not in message and "can still be loaded" not in message
    assert "system" in message


def test_truncated_ckpt_is_a_clear_error(home):
    write_ckpt(random_timm(card("mindcv/mobilenet_v2_075")), home / "w.ckpt")
    (home / "cut.ckpt").write_bytes((home / "w.ckpt").read_bytes()[:5000])
    with pytest.raises(ConversionError, match="is not a readable MindSpore checkpoint"):
        convert.convert_file(card("mindcv/mobilenet_v2_075"), home / "cut.ckpt", "mindspore-ckpt")


# ---------------------------------------------------------------- synthetic weights, the CLI, eval's wiring

runner = CliRunner()


def test_cli_convert_synthetic_weights_json(home):
    out = home / "m.onnx"
    result = runner.invoke(app, ["convert", "timm/mobilenetv2_035", "--synthetic-weights", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["synthetic_weights"] is True and data["source"] is None and data["output"] == str(out)
    assert data["architecture"]["timm_model"] == "mobilenetv2_035" and data["max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((4, 3, 224, 224), np.float32)})[0].shape == (4, 1000)
    again = runner.invoke(app, ["convert", "timm/mobilenetv2_035", "--synthetic-weights"])
    assert again.exit_code == 0 and "cached" in again.stdout and data["sha256"][:12] in again.stdout


def test_cli_convert_without_native_weights_or_torch(home, monkeypatch):
    result = runner.invoke(app, ["convert", "coral/mobilenet_v2_1.0_224_quant"])
    assert result.exit_code == 8 and "has no native weights to convert" in result.output
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    result = runner.invoke(app, ["convert", "timm/mobilenetv2_100.ra_in1k"])
    assert result.exit_code == 8
    assert result.output.count("\n") == 1 and 'pip install "zoo[convert]"' in result.output


def test_eval_without_the_converter_says_how_to_install_it(home, monkeypatch, tmp_path):
    from zoo.artifacts import choose

    monkeypatch.setattr(convert, "available", lambda: False)
    monkeypatch.setattr(choose, "available", lambda: False)  # bound at its import, maybe by an earlier test
    (tmp_path / "images" / "n01440764").mkdir(parents=True)  # the class-folder layout
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "images" / "n01440764" / "a.JPEG")
    with pytest.raises(UnsupportedArtifactError, match=r"native weights only \(pth\)") as info:
        zoo.evaluate("timm/mobilenetv2_100.ra_in1k", tmp_path / "images")
    assert 'pip install "zoo[convert]"' in info.value.one_line()


def test_bench_converts_native_weights_on_demand(home):
    c = card("torchvision/mobilenet_v2.imagenet1k_v1")
    mirror = home / "mirror"
    mirror.mkdir()
    write_torchvision(random_timm(c), mirror / "tv.pth")
    c["artifacts"] = [{"file": "tv.pth", "format": "pth", "precision": "fp32", "runtime": "onnxruntime", "urls": [],
                       "sha256": sha256_of(mirror / "tv.pth")}]
    from zoo.artifacts.choose import choose, local_model
    from zoo.measure.latency import bench_file

    artifact = choose(c)
    result = bench_file(c, local_model(c, artifact, mirrors=[str(mirror)]), artifact=artifact, iters=3, seconds=0,
                        warmup=1)
    assert result["iterations"] == 3 and result["artifact"]["file"] == "tv.pth"
    # The run belongs to the card's native file; the ONNX it timed is recorded beside it.
    assert result["artifact"]["sha256"] == c["artifacts"][0]["sha256"]
    assert result["artifact"]["model_sha256"] == sha256_of(Path(result["artifact"]["path"]))
