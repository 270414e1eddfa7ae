"""Preprocessing matches each source's eval transform, checked against Pillow/numpy pipelines written out here."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.measure.preprocess import Preprocessor, central_fraction_box, shorter_side_box

CORAL = {"resize": "central_fraction_crop", "crop_pct": 0.875, "interpolation": "bilinear",
         "scale": 1 / 127.5, "offset": -1.0}
TIMM = {"resize": "shorter_side_crop", "crop_pct": 0.875, "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
TENCH = "n01440764_tench.JPEG"


def test_shorter_side_geometry_follows_torchvision():
    # torchvision Resize(256) on 500x375: short side 256, long int(256 * 500 / 375) = 341;
    # CenterCrop(224): left int(round((341 - 224) / 2)) = 58 (round half to even), top 16.
    assert shorter_side_box(500, 375, 224, 0.875) == ((341, 256), (58, 16, 282, 240))
    # Portrait, and timm's floor(224 / 0.95) = 235 for crop_pct 0.95.
    assert shorter_side_box(300, 400, 224, 0.95) == ((235, 313), (6, 44, 230, 268))


def test_central_fraction_geometry_follows_tf_central_crop():
    # tf.image.central_crop: start = int((h - h * f) / 2), size = h - 2 * start.
    assert central_fraction_box(500, 375, 0.875) == (31, 23, 469, 352)
    assert central_fraction_box(224, 224, 1.0) == (0, 0, 224, 224)


def test_coral_pixels_equal_crop_resize_and_tf_scaling(sample_dir):
    path = sample_dir / TENCH
    image = Image.open(path).convert("RGB")
    w, h = image.size
    top, left = int((h - h * 0.875) / 2), int((w - w * 0.875) / 2)
    expected = np.asarray(image.crop((left, top, w - left, h - top)).resize((224, 224), Image.BILINEAR),
                          dtype=np.float64) / 127.5 - 1.0
    got = Preprocessor(CORAL, 224)(path)
    assert got.dtype == np.float32 and got.shape == (224, 224, 3)
    assert np.abs(got - expected).max() < 1e-6


def test_timm_pixels_equal_resize_crop_and_mean_std(sample_dir):
    path = sample_dir / TENCH
    image = Image.open(path).convert("RGB")
    (nw, nh), box = shorter_side_box(*image.size, 224, 0.875)
    pixels = np.asarray(image.resize((nw, nh), Image.BICUBIC).crop(box), dtype=np.float64) / 255.0
    expected = (pixels - np.array(TIMM["mean"])) / np.array(TIMM["std"])
    got = Preprocessor(TIMM, 224)(path)
    assert got.shape == (224, 224, 3)
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("interpolation, pil", [("nearest", Image.NEAREST), ("area", Image.BOX), ("bicubic", Image.BICUBIC)])
def test_interpolation_is_the_cards(sample_dir, interpolation, pil):
    path = sample_dir / TENCH
    image = Image.open(path).convert("RGB")
    expected = np.asarray(image.crop(central_fraction_box(*image.size, 0.875)).resize((160, 160), pil))
    got = Preprocessor({**CORAL, "interpolation": interpolation}, 160).pixels(path)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_any_pil_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / f"image.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    Image.new("RGB", (300, 200), (200, 100, 50)).convert(mode).save(path)
    got = Preprocessor(CORAL, 96).pixels(path)
    assert got.shape == (96, 96, 3) and got.dtype == np.uint8


@pytest.mark.parametrize("spec", [TIMM, CORAL], ids=["mean_std", "scale_offset"])
def test_channels_first_layout_has_the_same_values_and_feeds_nchw_without_a_copy(sample_dir, spec):
    from zoo.measure.runtimes import Model

    class NchwFloat:  # the facts Model checks about a runtime: an NCHW float32 model file
        input_shape, input_dtype, input_quant, max_batch = (None, 3, 224, 224), "float32", None, None

    preprocessor, path = Preprocessor(spec, 224), sample_dir / TENCH
    hwc, planar = preprocessor(path), preprocessor(path, channels_first=True)
    assert planar.shape == hwc.shape == (224, 224, 3) and planar.dtype == np.float32
    assert np.array_equal(planar, hwc)  # bit for bit
    model = Model(NchwFloat(), {"layout": "NCHW", "color": "RGB", "dtype": "float32"}, 224, 1000, 0)
    assert model.channels_first
    assert np.shares_memory(model.encode(planar), planar) and not np.shares_memory(model.encode(hwc), hwc)
