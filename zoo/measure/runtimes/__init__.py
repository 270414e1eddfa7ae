"""The runtimes that run a model file on this host, in one table, and one small interface over them.

A `Runtime` (base.py) runs raw tensors (onnxruntime.py, litert.py). `RUNTIMES` says, for each runtime zoo drives
on a host, its class, the model-file suffixes it loads, the package whose presence means it is installed, and
how it is named in messages; the installed version comes from the class (one lookup). A `Model` puts a card's
conventions around a Runtime: it encodes a preprocessed image into the tensor the model takes (layout, float or
quantized integers with the card's scale and zero point), and turns raw outputs into 1000 class scores
(dequantized, background column dropped when the card says `label_offset: 1`).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from zoo.errors import InvalidCardError, UnsupportedArtifactError, UsageError
from zoo.measure.runtimes.base import Runtime
from zoo.measure.runtimes.litert import LiteRtRuntime
from zoo.measure.runtimes.onnxruntime import OnnxRuntime

INTEGER_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def is_cpu(provider: str | None) -> bool:
    """Whether an execution provider (as asked, or as a runtime reports it) runs on the host CPU."""
    return provider is None or str(provider).lower().removesuffix("executionprovider") == "cpu"


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    cls: type                   # the Runtime subclass that opens a file
    suffixes: tuple[str, ...]   # model files it loads
    package: str                # importable when the runtime is installed
    install_hint: str
    label: str                  # its name in messages

    def installed(self) -> bool:
        try:
            return find_spec(self.package) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules (blocked)
            return False

    def version(self) -> str:
        """The installed version, as a run records it."""
        return self.cls.installed_version()


RUNTIMES = {
    "onnxruntime": RuntimeSpec("onnxruntime", OnnxRuntime, (".onnx",), "onnxruntime", "pip install onnxruntime",
                               "ONNX Runtime"),
    "litert": RuntimeSpec("litert", LiteRtRuntime, (".tflite",), "ai_edge_litert", "pip install ai-edge-litert",
                          "LiteRT"),
}


def runtime_for_path(path: Path) -> RuntimeSpec:
    """The runtime that loads this model file, from its suffix; UnsupportedArtifactError when none does."""
    suffix = Path(path).suffix.lower()
    for spec in RUNTIMES.values():
        if suffix in spec.suffixes:
            return spec
    raise UnsupportedArtifactError(f"{Path(path).name}: no runtime on this host runs {suffix or 'this'} files",
                                   "zoo runs .onnx (ONNX Runtime) and .tflite (LiteRT) models")


def open_runtime(path: Path, *, provider: str | None = None, threads: int | None = None,
                 spinning: bool = True) -> Runtime:
    """A Runtime for the model file, by the table's rule: ONNX Runtime for .onnx, LiteRT for .tflite.

    `spinning=False` stops ONNX Runtime's idle threads from busy-waiting, which leaves the
    cores to decoder threads running beside it.
    """
    from zoo.files import check_model_file

    check_model_file(Path(path))  # a FIFO, a device or a huge file is refused before a runtime reads it
    spec = runtime_for_path(path)
    if spec.name == "onnxruntime":
        return spec.cls(Path(path), provider=provider, threads=threads, spinning=spinning)
    if not is_cpu(provider):
        raise UsageError(f"--provider {provider} is for ONNX Runtime; {Path(path).name} runs on {spec.label}",
                         "Leave out --provider for .tflite models")
    return spec.cls(Path(path), threads=threads)


@dataclass
class Model:
    """A Runtime plus the card's input spec, class count and label offset."""

    runtime: Runtime
    input: dict           # the card's `input` section
    resolution: int
    num_classes: int
    label_offset: int
    where: str = "card"

    def __post_init__(self):
        self._check_input()

    @classmethod
    def from_card(cls, runtime: Runtime, card: dict) -> "Model":
        return cls(runtime, card["input"], card["resolution"], card["num_classes"], card["label_offset"],
                   card.get("id", "card"))

    @property
    def channels_first(self) -> bool:
        """Whether the model takes channels first (NCHW): Preprocessor lays images out for it."""
        return self.input["layout"] == "NCHW"

    @property
    def batch_limit(self) -> int | None:
        return self.runtime.max_batch

    def _mismatch(self, what: str) -> InvalidCardError:
        return InvalidCardError(f"{self.where}: the model file disagrees with the card's input spec: {what}",
                                "Report the card (its input section), or evaluate with a card that fits the file")

    def _check_input(self) -> None:
        spec, shape, r = self.input, self.runtime.input_shape, self.resolution
        if spec["color"] == "NV12":
            raise UnsupportedArtifactError(f"{self.where}: NV12 input is for on-board runtimes",
                                           "Evaluate an ONNX or TFLite card instead")
        want = (3, r, r) if self.channels_first else (r, r, 3)
        if len(shape) != 4 or any(s is not None and s != w for s, w in zip(shape[1:], want)):
            raise self._mismatch(f"{spec['layout']} at {r}x{r} means input shape [N, {', '.join(map(str, want))}], "
                                 f"the file takes {list(shape)}")
        if spec["dtype"] != self.runtime.input_dtype:
            raise self._mismatch(f"input dtype {spec['dtype']} on the card, {self.runtime.input_dtype} in the file")
        declared, card = self.runtime.input_quant, _card_quant(spec)
        if declared and card and (abs(declared[0] - card[0]) > 1e-6 * declared[0] or declared[1] != card[1]):
            raise self._mismatch(f"input scale/zero point {card} on the card, {declared} in the file")
        if spec["dtype"] in INTEGER_RANGE and not (card or declared):
            raise self._mismatch(f"{spec['dtype']} input needs quant_scale and quant_zero_point")

    def encode(self, image):
        """The model's input tensor for one preprocessed image (float32 HWC, RGB, normalised). Thread-safe.

        An image laid out channel by channel (Preprocessor's channels_first) goes to NCHW without a copy."""
        return encode(image, self.input, _card_quant(self.input) or self.runtime.input_quant)

    def scores(self, batch):
        """Class scores (N, 1000) in the standard class order for a batch of encoded inputs."""
        import numpy as np

        out = self.runtime.run(batch)
        out = out.reshape(out.shape[0], -1)
        if out.shape[1] != self.num_classes:
            raise self._mismatch(f"num_classes {self.num_classes} on the card, {out.shape[1]} outputs in the file")
        if self.runtime.output_quant:
            scale, zero_point = self.runtime.output_quant
            out = (out.astype(np.float32) - zero_point) * scale
        elif out.dtype.kind in "iu":  # a quantized output whose parameters the runtime does not report (a QDQ
            out = out.astype(np.float32)  # ONNX): dequantizing is monotonic, so the ranking is the same
        return out[:, self.label_offset:self.label_offset + 1000]


def encode(image, spec: dict, quant: tuple[float, int] | None = None):
    """The tensor a model with input spec `spec` (a card's `input`) receives for one preprocessed image.

    Colour order, layout (NCHW: transposed, free when the image is laid out channels first), then the
    dtype: float as is, or integers round(x / scale) + zero point, clipped, with `quant` (scale, zero
    point), by default the card's own. Needs no model file where the card gives its quantization."""
    import numpy as np

    if spec["color"] == "NV12":
        raise UnsupportedArtifactError("NV12 input is encoded on the board", "Use an RGB or BGR card")
    x = image[..., ::-1] if spec["color"] == "BGR" else image
    if spec["layout"] == "NCHW":
        x = x.transpose(2, 0, 1)
    dtype = spec["dtype"]
    if dtype in INTEGER_RANGE:
        scale, zero_point = quant or _card_quant(spec) or (None, None)
        if scale is None:
            raise InvalidCardError(f"{dtype} input needs quant_scale and quant_zero_point",
                                   "The model file declares them: evaluate it, or add them to the card")
        low, high = INTEGER_RANGE[dtype]
        q = np.rint(x * np.float32(1.0 / scale)) + np.float32(zero_point)
        return np.clip(q, low, high).astype(dtype)
    return np.ascontiguousarray(x, dtype=dtype)


def _card_quant(spec: dict) -> tuple[float, int] | None:
    if spec.get("quant_scale") is None:
        return None
    return float(spec["quant_scale"]), int(spec["quant_zero_point"])
