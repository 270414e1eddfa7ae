"""Per-card preprocessing, exactly as each source's own evaluation feeds its model.

A card's `preprocess.protocol` names the pipeline (decoder, geometry and its rounding, resampling
kernel, order of operations, normalisation arithmetic); `resize`, `crop_pct`, `interpolation` and the
normalisation fields parameterise it. Every protocol maps an image file to float32 HWC RGB values;
runtimes.encode turns them into the model's tensor.

  pillow      timm, torchvision (and sources that follow them): Pillow decode, Pillow's antialiased
              resize, torchvision's crop rounding; normalised on raw 0..255 values.
  tf1-slim    TF-slim's preprocess_for_eval: tf.io.decode_jpeg (libjpeg-turbo, JDCT_IFAST, fancy
              upsampling), x * (1/255), tf.image.central_crop, TF1 resize_bilinear (no half-pixel
              centres, no antialiasing) on floats, then (v - mean) / std.
  tf2-resize  the same with TF2's tf.image.resize (half-pixel centres, no antialiasing); with
              interpolation `nearest`, TF2's nearest-neighbour resize of the uint8 decode.
  paddleclas  PaddleClas's Eval ops: cv2.imdecode, resize_short with int(round()), OpenCV INTER_LINEAR,
              crop offset (n - size) // 2, BGR -> RGB, x * (1/255) then (v - mean) / std.
  mindcv      mindcv's create_transforms(eval): OpenCV-based decode and INTER_LINEAR resize, longer side
              floor(float32 ratio * size), crop offset floor((n - size) / 2), (x - mean*255) / (std*255).
  opencv      cv2.imdecode, central fraction crop (skipped at 1.0), cv2.resize INTER_LINEAR to
              resolution x resolution, normalised on raw 0..255 values (Axis, OpenVINO's checker).

Checked bit for bit against what TensorFlow, PaddleClas and MindCV themselves produce
(tests/test_preprocess.py and shared/data/preprocess-oracle). Work per image is bounded: images whose
decoded size, or whose shorter-side resize at the card's geometry, would pass MAX_PIXELS are refused
from the header alone, before any decoder allocates; so is a file any decoder rejects. Those raise
UnreadableImage (a ValueError), which eval counts as unreadable.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import get_args

from zoo.cards.schema import PreprocessProtocol

PROTOCOLS = get_args(PreprocessProtocol)
OPENCV_PROTOCOLS = ("paddleclas", "mindcv", "opencv")
TF_PROTOCOLS = ("tf1-slim", "tf2-resize")

# Decoded and resized images above this many pixels are refused: 40 MP is 120 MB as uint8 RGB, about
# 4x the largest ImageNet image, and it keeps a 100000 x 1 image from a 25-gigapixel resize.
MAX_PIXELS = 40_000_000
# An image file is read whole: at most the bytes of MAX_PIXELS as 16-bit RGB stored uncompressed (240 MB).
MAX_IMAGE_BYTES = 256 * 2**20

INTERPOLATION = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST", "area": "BOX"}


class UnreadableImage(ValueError):
    """The file cannot be turned into model input the way the source would (corrupt, unsupported, too big)."""


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
    """The crop box of tf.image.central_crop(image, crop_pct): offset int((n - n*f) / 2), size n - 2*offset."""
    top = int((height - height * crop_pct) / 2)
    left = int((width - width * crop_pct) / 2)
    return left, top, width - left, height - top


# ---------------------------------------------------------------------------------------------- input

def _read(source) -> bytes:
    """An image file's bytes: a regular file of at most MAX_IMAGE_BYTES, checked before reading (/dev/zero, a FIFO
    or a 3 GiB file named .JPEG is refused, not read into memory)."""
    from zoo.files import read_limited

    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return read_limited(source, MAX_IMAGE_BYTES, "the file")
    except ValueError as e:
        raise UnreadableImage(str(e)) from e
    except OSError as e:
        raise UnreadableImage(e.strerror or str(e)) from e


def _check(width: int, height: int, what: str) -> None:
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise UnreadableImage(f"{what} size {width}x{height} is outside 1..{MAX_PIXELS:,} pixels")


def probe(data: bytes):
    """The Pillow image of `data` with only its header parsed (format, size), its size checked against the cap."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))  # lazy: nothing decoded yet; keeps Pillow's decompression-bomb check
    except UnidentifiedImageError as e:
        raise UnreadableImage("not an image format Pillow recognises") from e
    except Exception as e:  # DecompressionBombError, SyntaxError or OSError from broken headers...
        raise UnreadableImage(f"not a readable image: {e}") from e
    _check(*image.size, "decoded")
    return image


# ---------------------------------------------------------------------------------------------- decoders

def tf_decode(data: bytes, fmt: str = "JPEG"):
    """uint8 RGB as tf.io.decode_jpeg(channels=3) gives it.

    TF's default dct_method "" is libjpeg's JDCT_IFAST with fancy upsampling: simplejpeg (libjpeg-turbo)
    with fastdct=True, fastupsample=False is bit-exact against TensorFlow 2.21's decode. strict=True refuses
    truncated files, as TF's try_recover_truncated=False does.
    """
    import numpy as np
    import simplejpeg

    if fmt != "JPEG":
        # TF's decode_jpeg also takes PNG/GIF/BMP; libpng with channels=3 drops alpha and 16-bit depth,
        # as OpenCV's IMREAD_COLOR does (not checked against TF: ImageNet has no such files).
        return cv2_decode(data)[:, :, ::-1]
    try:
        if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK"):
            # TF decodes Adobe (inverted) CMYK and converts with integer c * k / 255 per channel.
            cmyk = simplejpeg.decode_jpeg(data, colorspace="CMYK", fastdct=True, fastupsample=False).astype(np.uint16)
            return (cmyk[:, :, :3] * cmyk[:, :, 3:] // 255).astype(np.uint8)
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=False, strict=True)
    except ValueError as e:
        raise UnreadableImage(f"libjpeg-turbo cannot decode: {e}") from e


def cv2_decode(data: bytes):
    """BGR uint8 from cv2.imdecode(IMREAD_COLOR): greyscale to 3 channels, alpha dropped, 16-bit to 8-bit,
    EXIF orientation applied, as the OpenCV-based sources get it."""
    import cv2
    import numpy as np

    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise UnreadableImage(f"OpenCV cannot decode: {e}") from e
    if image is None:  # OpenCV returns None for truncated or corrupt data
        raise UnreadableImage("OpenCV cannot decode the file")
    return image


def _cv2_resize(image, width: int, height: int):
    import cv2

    _check(width, height, "resized")
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------------- TF kernels

def _tf_taps(n_in: int, n_out: int, half_pixel: bool):
    """Source rows (lower, upper) and weights of TF's bilinear kernel, in float32 as TF computes them.

    scale = in / out (float32). TF1 (half_pixel_centers=False): src = dst * scale. TF2: src = (dst + 0.5)
    * scale - 0.5. lower = max(floor(src), 0), upper = min(ceil(src), in - 1), weight = src - floor(src).
    """
    import numpy as np

    scale = np.float32(n_in) / np.float32(n_out)
    i = np.arange(n_out, dtype=np.float32)
    src = (i + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel else i * scale
    f = np.floor(src)
    lower = np.maximum(f, 0).astype(np.intp)
    upper = np.minimum(np.ceil(src), n_in - 1).astype(np.intp)
    return lower, upper, (src - f).astype(np.float32)


def _gather(image, rows, cols):
    """image[rows][:, cols] with two np.take calls (several times faster than a 2-D fancy index); for very
    wide images columns first, so that the intermediate stays small."""
    import numpy as np

    if image.shape[1] <= 4 * image.shape[0]:
        return np.take(np.take(image, rows, 0), cols, 1)
    return np.take(np.take(image, cols, 1), rows, 0)


def tf_resize_bilinear(image_u8, size: int, half_pixel: bool):
    """TF's float bilinear resize of image * float32(1/255) to size x size, written out in numpy.

    No maintained library implements TF1's legacy float bilinear (OpenCV, Pillow and torch use half-pixel
    centres, fixed-point or antialiasing). TF interpolates along x on the top and bottom rows, then along y,
    each as a + (b - a) * w in float32; the same operations here give the same bits. convert_image_dtype's
    multiply is elementwise, so it is applied to the four gathered corners rather than the whole decode.
    """
    import numpy as np

    h, w = image_u8.shape[:2]
    y0, y1, fy = _tf_taps(h, size, half_pixel)
    x0, x1, fx = _tf_taps(w, size, half_pixel)
    k, fx = np.float32(1 / 255), fx[None, :, None]
    rows_first = w <= 4 * h  # else columns first, so that a very wide image's intermediate stays small

    def corners(first, seconds, axis):
        """Gather along `axis` once, then along the other axis for each of `seconds`: float32 x * (1/255)."""
        gathered = np.take(image_u8, first, axis)
        out = []
        for taps in seconds:
            x = np.take(gathered, taps, 1 - axis).astype(np.float32)
            x *= k
            out.append(x)
        return out

    if rows_first:  # top-left/right from rows y0, bottom-left/right from rows y1
        (top_a, top_b), (bottom_a, bottom_b) = corners(y0, (x0, x1), 0), corners(y1, (x0, x1), 0)
    else:
        (top_a, bottom_a), (top_b, bottom_b) = corners(x0, (y0, y1), 1), corners(x1, (y0, y1), 1)

    def lerp(a, b, weight):  # a + (b - a) * w in float32, in place in b
        b -= a
        b *= weight
        b += a
        return b

    top, bottom = lerp(top_a, top_b, fx), lerp(bottom_a, bottom_b, fx)
    return lerp(top, bottom, fy[:, None, None])


def tf_resize_nearest(image_u8, size: int):
    """TF2 tf.image.resize(method='nearest') of uint8: src = min(floor((dst + 0.5) * in / out), in - 1)."""
    import numpy as np

    def taps(n_in):
        scale = np.float32(n_in) / np.float32(size)
        src = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale
        return np.minimum(np.floor(src), n_in - 1).astype(np.intp)

    return _gather(image_u8, taps(image_u8.shape[0]), taps(image_u8.shape[1]))


# ---------------------------------------------------------------------------------------------- protocols

class Preprocessor:
    """Callable: image file -> float32 HWC RGB array, as the card's source evaluates. Thread-safe."""

    def __init__(self, preprocess: dict, resolution: int):
        import numpy as np

        self.preprocess, self.resolution = dict(preprocess), resolution
        self.protocol = preprocess.get("protocol") or "pillow"
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown preprocess protocol {self.protocol!r}")
        f32 = np.float32
        if preprocess.get("mean") is not None:
            mean01, std01 = np.asarray(preprocess["mean"], np.float64), np.asarray(preprocess["std"], np.float64)
        else:  # x * scale + offset on 0..255 == (x/255 - mean01) / std01
            scale, offset = float(preprocess["scale"]), float(preprocess["offset"])
            mean01, std01 = np.full(3, -offset / scale / 255), np.full(3, 1 / scale / 255)
        if self.protocol in TF_PROTOCOLS and preprocess["interpolation"] == "bilinear" or self.protocol == "paddleclas":
            # values in [0, 1] (x * float32(1/255)), then (v - mean) / std in float32
            self.mean, self.divisor = mean01.astype(f32), std01.astype(f32)
        elif self.protocol == "mindcv":
            # Normalize(mean=[m * 255], std=[s * 255]): Python float products stored as float32
            self.mean, self.divisor = (mean01 * 255).astype(f32), (std01 * 255).astype(f32)
        elif preprocess.get("mean") is not None:  # on raw 0..255 values, the products taken in float32
            self.mean, self.divisor = mean01.astype(f32) * 255, std01.astype(f32) * 255
        else:
            # x * scale + offset == (x - mean) / divisor with mean = -offset/scale, divisor = 1/scale;
            # dividing (not multiplying by a rounded reciprocal) matches x / 127.5 - 1 to the bit.
            self.mean = np.full(3, -offset / scale, f32)
            self.divisor = np.full(3, 1.0 / scale, f32)
        if self.protocol in OPENCV_PROTOCOLS or self.protocol in TF_PROTOCOLS:
            import cv2

            # eval already runs one decode per worker thread: OpenCV's own pool would only oversubscribe
            cv2.setNumThreads(1)

    # -------------------------------------------------------------------- description

    def describe(self) -> dict:
        """What this preprocessing does, recorded with every run: the card's fields, the protocol, its
        decoder, geometry and rounding, kernel, order of operations, normalisation, library versions."""
        import numpy as np
        import PIL

        p, r = self.preprocess, self.resolution
        libraries = {"numpy": np.__version__, "pillow": PIL.__version__}
        if self.protocol in TF_PROTOCOLS:
            import simplejpeg

            libraries["simplejpeg"] = simplejpeg.__version__
        if self.protocol in OPENCV_PROTOCOLS or self.protocol in TF_PROTOCOLS:
            import cv2

            libraries["opencv"] = cv2.__version__
        nearest = p["interpolation"] == "nearest"
        text = {
            "pillow": ("Pillow Image.open, convert('RGB')",
                       "resize shorter side to floor(resolution / crop_pct), longer int(size * long / short), "
                       "crop offset int(round((n - resolution) / 2))" if p["resize"] == "shorter_side_crop" else
                       "central crop of crop_pct (offset int((n - n * crop_pct) / 2)), then resize to resolution",
                       f"Pillow {p['interpolation']}", p["interpolation"] != "nearest",
                       "decode, uint8 resize/crop, float32 (x - mean*255) / (std*255)"),
            "tf1-slim": ("simplejpeg (libjpeg-turbo) fastdct=True (JDCT_IFAST), fancy upsampling: tf.io.decode_jpeg",
                         "tf.image.central_crop(crop_pct) (skipped at 1.0), resize to resolution x resolution",
                         "TF1 resize_bilinear, align_corners=False, half_pixel_centers=False, float32", False,
                         "decode, x * float32(1/255), crop, float resize, (v - mean) / std"),
            "tf2-resize": ("simplejpeg (libjpeg-turbo) fastdct=True (JDCT_IFAST), fancy upsampling: tf.io.decode_jpeg",
                           "tf.image.central_crop(crop_pct) (skipped at 1.0), resize to resolution x resolution",
                           "TF2 tf.image.resize(method='nearest'), half-pixel centres, uint8" if nearest else
                           "TF2 tf.image.resize(method='bilinear', antialias=False), half-pixel centres, float32",
                           False, "decode, crop, uint8 nearest resize, float32 (x - mean*255) / (std*255)" if nearest
                           else "decode, x * float32(1/255), crop, float resize, (v - mean) / std"),
            "paddleclas": ("cv2.imdecode IMREAD_COLOR (libjpeg-turbo ISLOW), BGR -> RGB",
                           "ResizeImage(resize_short=floor(resolution / crop_pct)): w, h = int(round(n * short / "
                           "min(w, h))); CropImage: offset (n - resolution) // 2",
                           "OpenCV INTER_LINEAR (fixed-point uint8)", False,
                           "decode, uint8 resize/crop, x * float32(1/255), (v - mean) / std"),
            "mindcv": ("cv2.imdecode IMREAD_COLOR (libjpeg-turbo ISLOW), BGR -> RGB",
                       "Resize(int(resolution / crop_pct)): longer side floor(float32(long) / short * size); "
                       "CenterCrop offset floor((n - resolution) / 2)",
                       "OpenCV INTER_LINEAR (fixed-point uint8)", False,
                       "decode, uint8 resize/crop, float32 (x - mean*255) / (std*255)"),
            "opencv": ("cv2.imdecode IMREAD_COLOR (libjpeg-turbo ISLOW), BGR -> RGB",
                       "central crop of crop_pct (offset int((n - n * crop_pct) / 2), skipped at 1.0), "
                       "resize to resolution x resolution",
                       "OpenCV INTER_LINEAR (fixed-point uint8)", False,
                       "decode, uint8 crop/resize, float32 (x - mean*255) / (std*255)"),
        }[self.protocol]
        decoder, geometry, kernel, antialias, order = text
        return {**p, "protocol": self.protocol, "resolution": r, "decoder": decoder, "geometry": geometry,
                "kernel": kernel, "antialias": antialias, "order": order,
                "normalisation": {"mean": [float(v) for v in self.mean], "divisor": [float(v) for v in self.divisor]},
                "max_pixels": MAX_PIXELS, "libraries": libraries}

    # -------------------------------------------------------------------- stages

    def _open(self, source):
        """(bytes, Pillow header-only image) with the decoded size and the shorter-side resize checked.

        The resize check applies to every protocol alike, so that an image of extreme aspect ratio is
        unreadable under all of them rather than under some."""
        data = _read(source)
        image = probe(data)
        w, h = image.size
        size = math.floor(self.resolution / self.preprocess["crop_pct"])
        _check(size, math.ceil(size * max(w, h) / min(w, h)), "resized")
        return data, image

    def values(self, source):
        """The protocol's image before normalisation: uint8 pixels, or float32 (paddleclas, TF bilinear): what
        normalise() takes, and what a sweep decodes once and shares between cards of one preprocessing."""
        import numpy as np

        data, image = self._open(source)
        p, r = self.preprocess, self.resolution
        if self.protocol == "pillow":
            return self._pillow(image)
        image.close()
        if self.protocol in TF_PROTOCOLS:
            x = tf_decode(data, image.format)
            h, w = x.shape[:2]
            if p["crop_pct"] < 1.0:  # inception_preprocessing skips central_crop at 1.0
                left, top, right, bottom = central_fraction_box(w, h, p["crop_pct"])
                x = x[top:bottom, left:right]
            if p["interpolation"] == "nearest":
                return tf_resize_nearest(x, r)
            return tf_resize_bilinear(x, r, half_pixel=self.protocol == "tf2-resize")
        x = cv2_decode(data)
        h, w = x.shape[:2]
        if self.protocol == "paddleclas":
            percent = float(math.floor(r / p["crop_pct"])) / min(w, h)
            x = _cv2_resize(x, int(round(w * percent)), int(round(h * percent)))
            h, w = x.shape[:2]
            top, left = (h - r) // 2, (w - r) // 2
        elif self.protocol == "mindcv":
            size, f32 = int(r / p["crop_pct"]), np.float32
            if h < w:
                h, w = size, int(np.floor(f32(w) / f32(h) * f32(size)))
            else:
                h, w = int(np.floor(f32(h) / f32(w) * f32(size))), size
            x = _cv2_resize(x, w, h)
            top, left = (h - r) // 2, (w - r) // 2
        else:  # opencv
            if p["crop_pct"] < 1.0:
                left, top, right, bottom = central_fraction_box(w, h, p["crop_pct"])
                x = x[top:bottom, left:right]
            x, top, left = _cv2_resize(x, r, r), 0, 0
        # resize and crop work per channel, so BGR -> RGB is done last, on the small crop
        x = x[top:top + r, left:left + r, ::-1]
        if self.protocol == "paddleclas":
            return x.astype(np.float32) * np.float32(1.0 / 255.0)
        return x

    def _pillow(self, image):
        import numpy as np
        from PIL import Image

        p, r = self.preprocess, self.resolution
        resample = getattr(Image.Resampling, INTERPOLATION[p["interpolation"]])
        try:
            with image:
                if image.mode != "RGB":  # what timm's and torchvision's loaders do; convert() copies even when RGB
                    image = image.convert("RGB")
                if p["resize"] == "shorter_side_crop":
                    size, box = shorter_side_box(*image.size, r, p["crop_pct"])
                    image = image.resize(size, resample).crop(box)
                else:
                    box = central_fraction_box(*image.size, p["crop_pct"])
                    if box != (0, 0, *image.size):
                        image = image.crop(box)
                    image = image.resize((r, r), resample)
                return np.asarray(image)
        except Exception as e:  # truncated or corrupt data: OSError, SyntaxError, ValueError, EOFError...
            raise UnreadableImage(f"Pillow cannot decode: {e}") from e

    def pixels(self, source):
        """The resized, cropped RGB image as uint8 HWC, for looking at. Where the source resizes floats (TF
        bilinear, PaddleClas after scaling) these are the values before normalisation, rounded to 0..255."""
        import numpy as np

        x = self.values(source)
        if x.dtype == np.uint8:
            return np.ascontiguousarray(x)
        return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)

    def normalise(self, values, channels_first: bool = False):
        """float32 (values - mean) / divisor, the protocol's normalisation of its pre-normalisation values.

        `channels_first` lays the result out channel by channel in memory (still an (H, W, 3) view), so a
        channels-first model's transpose is free instead of a copy; the float32 operations are the same.
        """
        import numpy as np

        x, mean, divisor = np.asarray(values), self.mean, self.divisor
        if channels_first:
            x, mean, divisor = x.transpose(2, 0, 1), mean[:, None, None], divisor[:, None, None]
        out = np.empty(x.shape, np.float32)
        np.subtract(x, mean, out=out, dtype=np.float32)
        np.divide(out, divisor, out=out)
        return out.transpose(1, 2, 0) if channels_first else out

    def __call__(self, source, channels_first: bool = False):
        return self.normalise(self.values(source), channels_first)


# ---------------------------------------------------------------------------------------------- zoo preprocess

def write_model_inputs(card: dict, images: list, output: Path, *, png_dir: Path | None = None) -> dict:
    """What the card's model is fed for each image, written to `output` (.npz) so that it can be set beside
    another pipeline's: `files` (the paths as given), `normalised` (N x H x W x 3 float32 RGB after
    normalisation, before layout and quantization), `encoded` (the tensor the runtime receives, where the
    card's input spec alone says how to encode it), `preprocess` (the protocol's description, JSON).
    `png_dir` gets each resized crop as a PNG. Returns what was written."""
    import json

    import numpy as np
    from PIL import Image

    from zoo.errors import DatasetError, InvalidCardError, UnsupportedArtifactError, UsageError
    from zoo.files import write_bytes_atomic
    from zoo.measure.runtimes import encode

    output = Path(output)
    if output.is_dir():
        raise UsageError(f"output {output} is a directory", "Give -o a file name, e.g. inputs.npz")
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])
    normalised, crops = [], []
    for image in images:
        try:
            normalised.append(preprocessor(image))
            if png_dir is not None:
                crops.append(preprocessor.pixels(image))
        except UnreadableImage as e:
            raise DatasetError(f"cannot read image {image}: {e}", "Give JPEG or PNG image files") from e
    batch = np.stack(normalised)
    arrays = {"files": np.array([str(image) for image in images]), "normalised": batch}
    encoded_note = None
    try:
        arrays["encoded"] = np.stack([encode(x, card["input"]) for x in normalised])
    except (InvalidCardError, UnsupportedArtifactError) as e:
        encoded_note = f"no `encoded` array: {e.message}"
    description = preprocessor.describe()
    arrays["preprocess"] = np.array(json.dumps(description, sort_keys=True))
    arrays["input"] = np.array(json.dumps(card["input"], sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    pngs = []
    try:
        write_bytes_atomic(output, buffer.getvalue())
        for i, (image, crop) in enumerate(zip(images, crops)):
            png = io.BytesIO()
            Image.fromarray(crop).save(png, "PNG")
            pngs.append(str(write_bytes_atomic(Path(png_dir) / f"{i:03d}_{Path(image).stem}.png", png.getvalue())))
    except OSError as e:
        raise UsageError(f"cannot write {e.filename or output}: {e.strerror or e}",
                         "Give -o and --png paths in a writable directory") from e
    return {"card_id": card.get("id"), "output": str(output), "files": [str(image) for image in images],
            "normalised": {"shape": list(batch.shape), "dtype": "float32"},
            "encoded": None if "encoded" not in arrays else
            {"shape": list(arrays["encoded"].shape), "dtype": str(arrays["encoded"].dtype)},
            "encoded_note": encoded_note, "png": pngs, "preprocess": description, "input": card["input"]}
