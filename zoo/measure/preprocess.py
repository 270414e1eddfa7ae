"""Per-card preprocessing, exactly as each source evaluates: geometry, interpolation, normalisation.

Two geometries (the card's `preprocess.resize`):
- `shorter_side_crop` (timm, torchvision, PaddleClas, MindCV): resize the shorter side to
  floor(resolution / crop_pct), the longer side in proportion (truncated), then centre-crop
  resolution x resolution with torchvision's rounding.
- `central_fraction_crop` (TF-slim, TFLite, coral): `tf.image.central_crop` of crop_pct of each
  side (offset truncated to whole pixels), then resize to resolution x resolution.
Resizing is Pillow's, with its antialiasing filters. Normalisation works on RGB pixels: mean/std
on pixels scaled to [0, 1], or scale/offset on raw 0..255 values (x / 127.5 - 1 is scale 1/127.5,
offset -1). The result is float32 HWC RGB; runtimes.Model encodes it into the model's tensor.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

INTERPOLATION = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST", "area": "BOX"}


def shorter_side_box(width: int, height: int, resolution: int, crop_pct: float) -> tuple[tuple[int, int], tuple]:
    """(resized size, crop box) for shorter_side_crop, as timm's and torchvision's eval transforms compute them."""
    size = math.floor(resolution / crop_pct)
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    top = int(round((new[1] - resolution) / 2.0))
    left = int(round((new[0] - resolution) / 2.0))
    return new, (left, top, left + resolution, top + resolution)


def central_fraction_box(width: int, height: int, crop_pct: float) -> tuple[int, int, int, int]:
    """The crop box of tf.image.central_crop(image, crop_pct)."""
    top = int((height - height * crop_pct) / 2)
    left = int((width - width * crop_pct) / 2)
    return left, top, width - left, height - top


class Preprocessor:
    """Callable: image file -> float32 HWC array, normalised as the card says. Thread-safe."""

    def __init__(self, preprocess: dict, resolution: int):
        import numpy as np
        from PIL import Image

        self.preprocess, self.resolution = dict(preprocess), resolution
        self.filter = getattr(Image.Resampling, INTERPOLATION[preprocess["interpolation"]])
        if preprocess.get("mean") is not None:
            std = np.asarray(preprocess["std"], dtype=np.float32)
            self.mean, self.divisor = np.asarray(preprocess["mean"], np.float32) * 255, std * 255
        else:
            # x * scale + offset == (x - mean) / divisor with mean = -offset/scale, divisor = 1/scale;
            # dividing (not multiplying by a rounded reciprocal) matches x / 127.5 - 1 to the bit.
            scale, offset = preprocess["scale"], preprocess["offset"]
            self.mean = np.full(3, -offset / scale, np.float32)
            self.divisor = np.full(3, 1.0 / scale, np.float32)

    def describe(self) -> dict:
        import PIL

        return {**self.preprocess, "resolution": self.resolution, "backend": f"Pillow {PIL.__version__}"}

    def pixels(self, source):
        """The resized, cropped RGB image as a uint8 HWC array."""
        import numpy as np
        from PIL import Image

        with Image.open(source) if isinstance(source, (str, Path)) else nullcontext(source) as image:
            if image.mode != "RGB":  # convert() copies even when there is nothing to convert
                image = image.convert("RGB")
            r, pct = self.resolution, self.preprocess["crop_pct"]
            if self.preprocess["resize"] == "shorter_side_crop":
                size, box = shorter_side_box(*image.size, r, pct)
                image = image.resize(size, self.filter).crop(box)
            else:
                box = central_fraction_box(*image.size, pct)
                if box != (0, 0, *image.size):
                    image = image.crop(box)
                image = image.resize((r, r), self.filter)
            return np.asarray(image)

    def normalise(self, pixels, channels_first: bool = False):
        """float32 values of RGB pixels (H, W, 3), normalised as the card says.

        `channels_first` lays the values out channel by channel in memory (the result is still an
        (H, W, 3) view), so that a channels-first model's transpose is free instead of a copy. The
        values are the same float32 operations either way: subtract, then divide, one pass each.
        """
        import numpy as np

        x, mean, divisor = np.asarray(pixels), self.mean, self.divisor
        if channels_first:
            x, mean, divisor = x.transpose(2, 0, 1), mean[:, None, None], divisor[:, None, None]
        out = np.empty(x.shape, np.float32)
        np.subtract(x, mean, out=out, dtype=np.float32)
        np.divide(out, divisor, out=out)
        return out.transpose(1, 2, 0) if channels_first else out

    def __call__(self, source, channels_first: bool = False):
        return self.normalise(self.pixels(source), channels_first)
