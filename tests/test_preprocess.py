"""Each protocol against what the sources' own libraries produce.

TensorFlow, PaddleClas and MindCV: the oracle arrays in shared/data/preprocess-oracle (computed with those
libraries on 12 sample images). timm and torchvision: their own eval transforms, as recorded in
tests/golden/torch/preprocess.json (tests/golden/record.py), and run live under `pytest -m reference`. Bad input:
files generated here, the same treatment under every protocol.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.measure.preprocess import (PROTOCOLS, Preprocessor, UnreadableImage, central_fraction_box,
                                    shorter_side_box)

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
INCEPTION = {"scale": 1 / 127.5, "offset": -1.0}  # the TF cards' x / 127.5 - 1, i.e. (v - 0.5) / 0.5 on [0, 1]
TIMM = {"protocol": "pillow", "resize": "shorter_side_crop", "crop_pct": 0.875, "interpolation": "bicubic", **IMAGENET}
CORAL = {"protocol": "pillow", "resize": "central_fraction_crop", "crop_pct": 0.875, "interpolation": "bilinear",
         **INCEPTION}
# protocol -> a card's preprocess section of that kind
SPECS = {
    "pillow": TIMM,
    "tf1-slim": {**CORAL, "protocol": "tf1-slim"},
    "tf2-resize": {**CORAL, "protocol": "tf2-resize"},
    "paddleclas": {**TIMM, "protocol": "paddleclas", "interpolation": "bilinear"},
    "mindcv": {**TIMM, "protocol": "mindcv", "interpolation": "bilinear"},
    "opencv": {**CORAL, "protocol": "opencv", "crop_pct": 1.0},
}
TOL = 1e-5
TENCH = "n01440764_tench.JPEG"
GOLDEN = json.loads((Path(__file__).parent / "golden" / "torch" / "preprocess.json").read_text())


def _tf_case(key):
    crop, res = key.split("/crop")[1].split("_res")
    return {**SPECS["tf1-slim" if key.startswith("tf1") else "tf2-resize"], "crop_pct": float(crop)}, int(res)


ORACLE = {  # (file, array) -> (preprocess section, resolution)
    **{("tf.npz", k): _tf_case(k) for k in [f"{v}/crop{c}_res{r}" for v in ("tf1", "tf2")
                                              for c, r in (("0.875", 224), ("0.875", 160), ("0.875", 96), ("1.0", 128))]},
    ("paddle.npz", "resize_short256_crop224"): (SPECS["paddleclas"], 224),
    ("mindcv.npz", "imagenet_eval_224"): (SPECS["mindcv"], 224),
}


@pytest.mark.parametrize("npz, key", list(ORACLE), ids=[f"{n}:{k}" for n, k in ORACLE])
def test_every_oracle_array_is_matched_bit_for_bit(shared_data, sample_dir, npz, key):
    oracle = np.load(shared_data / "preprocess-oracle" / npz)
    spec, resolution = ORACLE[npz, key]
    preprocessor = Preprocessor(spec, resolution)
    assert len(oracle["files"]) == 12
    for i, name in enumerate(oracle["files"]):
        ours, theirs = preprocessor(sample_dir / str(name)), oracle[key][i]
        assert ours.dtype == np.float32 and ours.shape == theirs.shape, name
        # bit-exact today; the brief's tolerance (1e-5) is what the test holds it to
        assert np.abs(ours - theirs).max() <= TOL, (name, np.abs(ours - theirs).max())
        planar = preprocessor(sample_dir / str(name), channels_first=True)
        assert np.array_equal(planar, ours)


def test_tf_decode_is_tensorflows(shared_data, sample_dir):
    """The uint8 decode alone: simplejpeg with JDCT_IFAST equals tf.io.decode_jpeg (4:2:0, 4:4:4, greyscale)."""
    from zoo.measure.preprocess import tf_decode

    oracle = np.load(shared_data / "preprocess-oracle" / "tf.npz")
    for i, name in enumerate(oracle["files"]):
        assert np.array_equal(tf_decode((sample_dir / str(name)).read_bytes()), oracle[f"decode/{i}"]), name


@pytest.mark.parametrize("npz, key, protocol", [("paddle.npz", "resize_short256_crop224", "paddleclas"),
                                                ("mindcv.npz", "imagenet_eval_224", "mindcv")])
def test_opencv_sources_uint8_crop_is_theirs(shared_data, sample_dir, npz, key, protocol):
    oracle = np.load(shared_data / "preprocess-oracle" / npz)
    mean, std = np.asarray(IMAGENET["mean"]), np.asarray(IMAGENET["std"])
    for i, name in enumerate(oracle["files"]):
        levels = np.rint((oracle[key][i] * std + mean) * 255).astype(int)
        assert np.array_equal(Preprocessor(SPECS[protocol], 224).pixels(sample_dir / str(name)), levels), name


def test_the_oracle_tells_protocols_apart(shared_data, sample_dir):
    """Today's Pillow path on a TF card is far from TF's own pipeline: the comparison above has teeth."""
    oracle = np.load(shared_data / "preprocess-oracle" / "tf.npz")
    ours = Preprocessor(CORAL, 224)(sample_dir / str(oracle["files"][1]))
    assert np.abs(ours - oracle["tf1/crop0.875_res224"][1]).max() > 0.05
    tf2 = Preprocessor(SPECS["tf2-resize"], 224)(sample_dir / str(oracle["files"][1]))
    assert np.abs(tf2 - oracle["tf1/crop0.875_res224"][1]).max() > 0.05


# ---------------------------------------------------------------- timm and torchvision, pixel-exact

def _some(sample_dir):
    """8 images spread over the sample, a greyscale JPEG and the one with EXIF orientation 6."""
    return sorted(sample_dir.glob("*.JPEG"))[::125] + [sample_dir / "n02096051_Airedale.JPEG",
                                                       sample_dir / "n02951585_can_opener.JPEG"]


def _hwc(tensor):
    return tensor.permute(1, 2, 0).numpy()


def _matches_recorded(preprocessor, path, recorded: dict):
    """The uint8 crop bit for bit (its sha256), the normalised values to TOL (every values_stride-th one)."""
    pixels = preprocessor.pixels(path)
    assert pixels.dtype == np.uint8 and list(pixels.shape) == recorded["shape"], path
    assert hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest() == recorded["pixels_sha256"], path
    values = preprocessor(path).ravel()[::GOLDEN["values_stride"]]
    assert np.abs(values - np.asarray(recorded["values"], np.float32)).max() <= TOL, path


@pytest.mark.parametrize("model", sorted(GOLDEN["timm"]))
def test_pillow_equals_timms_recorded_eval_transform(sample_dir, model):
    config = GOLDEN["timm"][model]["config"]
    spec = {"protocol": "pillow", "resize": "shorter_side_crop", "crop_pct": config["crop_pct"],
            "interpolation": config["interpolation"], "mean": config["mean"], "std": config["std"]}
    preprocessor = Preprocessor(spec, config["input_size"][-1])
    for name in GOLDEN["images"]:
        _matches_recorded(preprocessor, sample_dir / name, GOLDEN["timm"][model]["images"][name])


@pytest.mark.parametrize("weights, crop_pct", [("IMAGENET1K_V1", 0.875), ("IMAGENET1K_V2", 0.9655)])
def test_pillow_equals_torchvisions_recorded_eval_transform(sample_dir, weights, crop_pct):
    config = GOLDEN["torchvision"][weights]["config"]
    assert config["interpolation"] == "bilinear" and config["crop_size"] == [224]
    assert round(config["crop_size"][0] / config["resize_size"][0], 4) == crop_pct  # the cards' crop_pct
    spec = {"protocol": "pillow", "resize": "shorter_side_crop", "crop_pct": crop_pct, "interpolation": "bilinear",
            "mean": config["mean"], "std": config["std"]}
    preprocessor = Preprocessor(spec, 224)
    for name in GOLDEN["images"]:
        _matches_recorded(preprocessor, sample_dir / name, GOLDEN["torchvision"][weights]["images"][name])


def test_the_recorded_images_are_the_varied_ones(sample_dir):
    """Spread over the sample, with the greyscale JPEG and the one with EXIF orientation 6."""
    assert [p.name for p in _some(sample_dir)] == GOLDEN["images"]


@pytest.mark.reference
@pytest.mark.parametrize("model", ["mobilenetv2_100.ra_in1k", "mobilenetv2_050.lamb_in1k"])
def test_pillow_equals_timms_eval_transform(sample_dir, model):
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=timm.create_model(model, pretrained=False))
    full = create_transform(**config)
    unnormalised = type(full)(full.transforms[:-1])  # everything but Normalize: x / 255
    spec = {"protocol": "pillow", "resize": "shorter_side_crop", "crop_pct": config["crop_pct"],
            "interpolation": config["interpolation"], "mean": config["mean"], "std": config["std"]}
    preprocessor = Preprocessor(spec, config["input_size"][-1])
    for path in _some(sample_dir):
        image = Image.open(path).convert("RGB")  # timm's ImageDataset loader
        assert np.array_equal(preprocessor.pixels(path), np.rint(_hwc(unnormalised(image)) * 255).astype(np.uint8))
        # timm computes x/255 then (v - mean)/std, zoo (x - 255 mean)/(255 std): the same values to ~1 ulp
        assert np.abs(preprocessor(path) - _hwc(full(image))).max() <= TOL, path


@pytest.mark.reference
@pytest.mark.parametrize("weights, crop_pct", [("IMAGENET1K_V1", 0.875), ("IMAGENET1K_V2", 0.9655)])
def test_pillow_equals_torchvisions_eval_transform(sample_dir, weights, crop_pct):
    from torchvision.models import MobileNet_V2_Weights
    from torchvision.transforms import functional as F

    transform = getattr(MobileNet_V2_Weights, weights).transforms()
    spec = {"protocol": "pillow", "resize": "shorter_side_crop", "crop_pct": crop_pct, "interpolation": "bilinear",
            "mean": transform.mean, "std": transform.std}
    preprocessor = Preprocessor(spec, 224)
    for path in _some(sample_dir):
        image = Image.open(path).convert("RGB")
        crop = F.center_crop(F.resize(image, transform.resize_size, interpolation=transform.interpolation,
                                      antialias=True), transform.crop_size)
        assert np.array_equal(preprocessor.pixels(path), np.asarray(crop)), path
        assert np.abs(preprocessor(path) - _hwc(transform(image))).max() <= TOL, path


# ---------------------------------------------------------------- geometry

def test_shorter_side_geometry_follows_torchvision():
    # torchvision Resize(256) on 500x375: short side 256, long int(256 * 500 / 375) = 341;
    # CenterCrop(224): left int(round((341 - 224) / 2)) = 58 (round half to even), top 16.
    assert shorter_side_box(500, 375, 224, 0.875) == ((341, 256), (58, 16, 282, 240))
    assert shorter_side_box(300, 400, 224, 0.95) == ((235, 313), (6, 44, 230, 268))


def test_central_fraction_geometry_follows_tf_central_crop():
    assert central_fraction_box(500, 375, 0.875) == (31, 23, 469, 352)
    assert central_fraction_box(224, 224, 1.0) == (0, 0, 224, 224)


def test_opencv_protocol_is_cv2_crop_then_resize(sample_dir):
    import cv2

    path = sample_dir / TENCH
    image = cv2.imread(str(path))
    left, top, right, bottom = central_fraction_box(image.shape[1], image.shape[0], 0.875)
    expected = cv2.resize(image[top:bottom, left:right], (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    preprocessor = Preprocessor({**SPECS["opencv"], "crop_pct": 0.875}, 224)
    assert np.array_equal(preprocessor.pixels(path), expected)
    assert np.abs(preprocessor(path) - (expected / 127.5 - 1)).max() < 1e-6


def test_tf2_nearest_takes_whole_source_pixels(sample_dir):
    """STM32's tf.image.resize(method='nearest'): every output pixel is one of the decode's pixels."""
    from zoo.measure.preprocess import tf_decode, tf_resize_nearest

    decoded = tf_decode((sample_dir / TENCH).read_bytes())
    small = tf_resize_nearest(decoded, 128)
    h, w = decoded.shape[:2]
    rows = np.minimum(np.floor((np.arange(128) + 0.5) * (h / 128)), h - 1).astype(int)
    cols = np.minimum(np.floor((np.arange(128) + 0.5) * (w / 128)), w - 1).astype(int)
    assert np.array_equal(small, decoded[rows][:, cols])
    spec = {**SPECS["tf2-resize"], "crop_pct": 1.0, "interpolation": "nearest"}
    assert np.abs(Preprocessor(spec, 128)(sample_dir / TENCH) - (small / 127.5 - 1)).max() < 1e-6


@pytest.mark.parametrize("interpolation, pil", [("nearest", Image.NEAREST), ("area", Image.BOX), ("bicubic", Image.BICUBIC)])
def test_pillow_interpolation_is_the_cards(sample_dir, interpolation, pil):
    path = sample_dir / TENCH
    image = Image.open(path).convert("RGB")
    expected = np.asarray(image.crop(central_fraction_box(*image.size, 0.875)).resize((160, 160), pil))
    assert np.array_equal(Preprocessor({**CORAL, "interpolation": interpolation}, 160).pixels(path), expected)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_channels_first_layout_has_the_same_values_and_feeds_nchw_without_a_copy(sample_dir, protocol):
    from zoo.measure.runtimes import Model

    class NchwFloat:  # the facts Model checks about a runtime: an NCHW float32 model file
        input_shape, input_dtype, input_quant, max_batch = (None, 3, 224, 224), "float32", None, None

    preprocessor, path = Preprocessor(SPECS[protocol], 224), sample_dir / TENCH
    hwc, planar = preprocessor(path), preprocessor(path, channels_first=True)
    assert planar.shape == hwc.shape == (224, 224, 3) and planar.dtype == np.float32
    assert np.array_equal(planar, hwc)
    model = Model(NchwFloat(), {"layout": "NCHW", "color": "RGB", "dtype": "float32"}, 224, 1000, 0)
    assert np.shares_memory(model.encode(planar), planar) and not np.shares_memory(model.encode(hwc), hwc)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_describe_names_protocol_decoder_kernel_and_libraries(protocol):
    described = Preprocessor(SPECS[protocol], 224).describe()
    assert described["protocol"] == protocol and described["resolution"] == 224
    assert {"decoder", "geometry", "kernel", "antialias", "order", "normalisation", "libraries", "resize",
            "crop_pct"} <= set(described)
    assert described["antialias"] is (protocol == "pillow")
    wanted = {"pillow": "pillow", "tf1-slim": "simplejpeg", "tf2-resize": "simplejpeg", "paddleclas": "opencv",
              "mindcv": "opencv", "opencv": "opencv"}[protocol]
    assert described["libraries"][wanted]


# ---------------------------------------------------------------- bad input: same treatment under every protocol

def _encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _palette_with_alpha():
    image = Image.new("P", (64, 48))
    image.putpalette([i % 256 for i in range(768)])
    image.paste(7, (0, 0, 32, 48))
    image.info["transparency"] = 7  # palette entry 7 is transparent: a palette PNG with a tRNS chunk
    return image


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample_dir):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (60, 80, 3), np.uint8))
    real = (sample_dir / TENCH).read_bytes()
    files = {
        "cmyk.jpg": _encode(Image.fromarray(rng.integers(0, 256, (60, 80, 4), np.uint8), "CMYK"), "JPEG"),
        "grey.jpg": _encode(rgb.convert("L"), "JPEG"),
        "grey16.png": _encode(Image.fromarray(rng.integers(0, 65536, (60, 80), np.uint16)), "PNG"),
        "palette_alpha.png": _encode(_palette_with_alpha(), "PNG"),
        "rgba.png": _encode(Image.fromarray(rng.integers(0, 256, (60, 80, 4), np.uint8), "RGBA"), "PNG"),
        "one_pixel.jpg": _encode(Image.new("RGB", (1, 1), (200, 10, 30)), "JPEG"),
        "one_pixel.png": _encode(Image.new("RGB", (1, 1), (200, 10, 30)), "PNG"),
        "truncated.jpg": real[: len(real) // 2],
        "wide.png": _encode(Image.new("RGB", (100000, 1), (1, 2, 3)), "PNG"),
        # ~100 kB claiming 900 MP; 1-bit, as encoding an 8-bit one (900 MB through zlib) took 3-4 s of every run
        "huge.png": _encode(Image.new("1", (30000, 30000)), "PNG"),
        "empty.jpg": b"",
        "garbage.jpg": b"not an image at all" * 10,
    }
    folder = tmp_path_factory.mktemp("bad")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


READABLE = ["cmyk.jpg", "grey.jpg", "grey16.png", "palette_alpha.png", "rgba.png", "one_pixel.jpg", "one_pixel.png"]
UNREADABLE = ["truncated.jpg", "wide.png", "huge.png", "empty.jpg", "garbage.jpg", "missing.jpg"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", READABLE)
def test_odd_but_valid_images_are_converted_as_the_source_would(bad_files, protocol, name):
    preprocessor = Preprocessor(SPECS[protocol], 224)
    values = preprocessor(bad_files / name)
    assert values.shape == (224, 224, 3) and values.dtype == np.float32 and np.isfinite(values).all()
    pixels = preprocessor.pixels(bad_files / name)
    if name.startswith("grey"):  # greyscale becomes three equal channels in every source
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    if name == "rgba.png":  # alpha dropped, colours kept, by every decoder: the same as the RGB image
        rgb = bad_files / f"rgb_of_rgba_{protocol}.png"
        Image.open(bad_files / name).convert("RGB").save(rgb)
        assert np.array_equal(pixels, preprocessor.pixels(rgb))
    if name.startswith("one_pixel"):  # one colour everywhere (JPEG moves it a few levels)
        assert (pixels == pixels[0, 0]).all() and np.abs(pixels[0, 0].astype(int) - (200, 10, 30)).max() <= 12


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", UNREADABLE)
def test_broken_or_unbounded_images_are_unreadable_under_every_protocol(bad_files, protocol, name):
    preprocessor = Preprocessor(SPECS[protocol], 224)
    started = time.perf_counter()
    with pytest.raises(UnreadableImage):
        preprocessor(bad_files / name)
    # refused from the header, before any decoder allocates: a 100000 x 1 or 30000 x 30000 image costs nothing
    assert time.perf_counter() - started < 1.0 or name == "truncated.jpg"


def test_unreadable_is_a_value_error_that_eval_counts():
    assert issubclass(UnreadableImage, ValueError)


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown preprocess protocol"):
        Preprocessor({**TIMM, "protocol": "nosuch"}, 224)



# ---------------------------------------------------------------- cards declare their protocol

ROOT = Path(__file__).resolve().parents[1]
# source -> the protocol its own evaluation uses (README, "Preprocessing protocols")
SOURCE_PROTOCOL = {"timm": "pillow", "torchvision": "pillow", "d-li14": "pillow", "onnx": "pillow", "rdk": "pillow",
                   "tf-slim": "tf1-slim", "tflite": "tf1-slim", "paddleclas": "paddleclas", "mindcv": "mindcv",
                   "axis": "opencv", "stm32": "tf2-resize"}


def test_every_card_declares_its_protocol():
    import yaml

    for path in sorted((ROOT / "cards").glob("*/*.yaml")):
        card = yaml.safe_load(path.read_text())
        protocol = card["preprocess"].get("protocol")
        assert protocol in PROTOCOLS, path
        assert SOURCE_PROTOCOL.get(card["source"], protocol) == protocol, path
    from zoo.cards.registry import load_registry

    cards = {e.card["id"]: e.card for e in load_registry().entries()}
    assert cards["coral/mobilenet_v2_1.0_224_quant"]["preprocess"]["protocol"] == "tf1-slim"
    assert cards["coral/tf2_mobilenet_v2_1.0_224_ptq"]["preprocess"]["protocol"] == "tf2-resize"
    # ARM's recreate_model/load_data.py: tf.image.resize of the whole image (no crop), TF2 half-pixel
    arm = cards["arm/mobilenet_v2_1.0_224_INT8"]["preprocess"]
    assert (arm["protocol"], arm["crop_pct"]) == ("tf2-resize", 1.0)
    # STM32's config: resizing {interpolation: nearest, aspect_ratio: fit}
    assert {c["preprocess"]["interpolation"] for i, c in cards.items() if i.startswith("stm32/")} == {"nearest"}


@pytest.mark.parametrize("card_id", ["axis/mobilenet_v2_1.0_224_quant", "axis/tf2_mobilenet_v2_1.0_224_ptq_edgetpu"])
def test_axis_cards_feed_the_opencv_resize_as_is(sample_dir, card_id):
    """Axis's larod_convert.py: cv2.imread, BGR -> RGB, cv2.resize of the whole image, uint8 straight in."""
    import cv2

    import zoo
    from zoo.measure.runtimes import encode

    card = zoo.get(card_id)
    expected = cv2.resize(cv2.cvtColor(cv2.imread(str(sample_dir / TENCH)), cv2.COLOR_BGR2RGB), (224, 224))
    assert np.array_equal(encode(Preprocessor(card["preprocess"], 224)(sample_dir / TENCH), card["input"]), expected)


def test_schema_refuses_a_protocol_with_a_geometry_it_does_not_have():
    from pydantic import ValidationError

    from zoo.cards.schema import Preprocess

    with pytest.raises(ValidationError, match="protocol tf1-slim takes resize central_fraction_crop"):
        Preprocess(**{**SPECS["tf1-slim"], "resize": "shorter_side_crop"})
    with pytest.raises(ValidationError, match="protocol paddleclas takes"):
        Preprocess(**{**SPECS["paddleclas"], "interpolation": "bicubic"})
    assert Preprocess(**{k: v for k, v in TIMM.items() if k != "protocol"}).protocol == "pillow"  # the default


# ---------------------------------------------------------------- zoo preprocess

def _zoo(*args):
    from typer.testing import CliRunner

    from zoo_cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_zoo_preprocess_writes_what_the_model_is_fed(sample_dir, tmp_path):
    import json

    import zoo
    from zoo.measure.runtimes import encode

    card = zoo.get("coral/mobilenet_v2_1.0_224_quant")
    images = [str(sample_dir / TENCH), str(sample_dir / "n02096051_Airedale.JPEG")]
    result = _zoo("preprocess", card["id"], *images, "-o", tmp_path / "in.npz", "--png", tmp_path / "png", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"] == images and data["encoded"] == {"shape": [2, 224, 224, 3], "dtype": "uint8"}
    with np.load(tmp_path / "in.npz") as z:
        assert list(z["files"]) == images
        preprocessor = Preprocessor(card["preprocess"], 224)
        for i, image in enumerate(images):
            assert np.array_equal(z["normalised"][i], preprocessor(image))
            assert np.array_equal(z["encoded"][i], encode(preprocessor(image), card["input"]))
        assert json.loads(str(z["preprocess"]))["protocol"] == "tf1-slim"
    pngs = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pngs] == ["000_n01440764_tench.png", "001_n02096051_Airedale.png"]
    assert np.asarray(Image.open(pngs[0])).shape == (224, 224, 3)


def test_zoo_preprocess_without_the_cards_quantization_writes_no_encoded_array(sample_dir, tmp_path):
    result = _zoo("preprocess", "stm32/mobilenet_v2_1.0_224_int8", sample_dir / TENCH, "-o", tmp_path / "in.npz")
    assert result.exit_code == 0, result.output
    assert "no `encoded` array" in result.stderr
    with np.load(tmp_path / "in.npz") as z:
        assert "encoded" not in z and z["normalised"].shape == (1, 224, 224, 3)


@pytest.mark.parametrize("case, code, words", [
    ("output_is_a_directory", 2, "is a directory"),
    ("output_under_a_file", 2, "cannot write"),
    ("unreadable_image", 9, "cannot read image"),
    ("missing_image", 9, "No such file"),
])
def test_zoo_preprocess_errors_are_one_line(sample_dir, tmp_path, case, code, words):
    (tmp_path / "file").write_text("x")
    image, output = sample_dir / TENCH, tmp_path / "in.npz"
    if case == "output_is_a_directory":
        output = tmp_path
    elif case == "output_under_a_file":
        output = tmp_path / "file" / "in.npz"
    elif case == "unreadable_image":
        image = tmp_path / "file"
    elif case == "missing_image":
        image = tmp_path / "missing.jpg"
    result = _zoo("preprocess", "timm/mobilenetv2_100.ra_in1k", image, "-o", output)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:") and words in lines[0], lines
    assert "Traceback" not in result.output and not (tmp_path / "in.npz").exists()
