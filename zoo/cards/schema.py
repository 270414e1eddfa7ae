"""The model card schema: one validated YAML card per published model.

Units: accuracy in percent, latency in milliseconds, throughput in images/s,
MACs and params as plain counts. A card's MACs are always multiply-accumulates;
the source's own FLOPs figure and its convention are kept beside them.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from zoo.cards.formats import (
    ARCHIVE_FORMATS,
    ARTIFACT_FORMATS,
    METRIC_UNITS,
    PRECISIONS,
    RUNTIMES,
)
from zoo.cards.urls import check_url
from zoo.errors import InvalidCardError, excerpt

MAX_NUMBER = 1e18        # no card figure comes near it; beyond it, float arithmetic overflows or loses the value
MAX_DEPTH = 16           # a card nests about 5 deep
ID_PATTERN = r"^[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9._+-]*$"  # '+': derived cards (ID+float)
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
PAPER_URL = "https://arxiv.org/abs/1801.04381"

ArtifactFormat = Literal[ARTIFACT_FORMATS]
Precision = Literal[PRECISIONS]
Runtime = Literal[RUNTIMES]
Metric = Literal[tuple(METRIC_UNITS)]
# How each source's own evaluation preprocesses (zoo.measure.preprocess implements them, one each).
PreprocessProtocol = Literal["pillow", "tf1-slim", "tf2-resize", "paddleclas", "mindcv", "opencv"]
# protocol -> (the geometries it has, the interpolations it has)
PROTOCOL_RULES = {
    "tf1-slim": (("central_fraction_crop",), ("bilinear",)),
    "tf2-resize": (("central_fraction_crop",), ("bilinear", "nearest")),
    "paddleclas": (("shorter_side_crop",), ("bilinear",)),
    "mindcv": (("shorter_side_crop",), ("bilinear",)),
    "opencv": (("central_fraction_crop",), ("bilinear",)),
}


def _hex(length: int | tuple[int, int]):
    low, high = (length, length) if isinstance(length, int) else length

    def check(value: str) -> str:
        if not (low <= len(value) <= high) or not re.fullmatch(r"[0-9a-f]+", value):
            want = f"{low}" if low == high else f"{low} to {high}"
            raise ValueError(f"must be {want} lowercase hex digits, got {excerpt(value)}")
        return value

    return check


def _file_name(value: str) -> str:
    if not value or value in {".", ".."} or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError(f"must be a bare file name without path separators or '..', got {excerpt(value)}")
    if not value.isprintable():  # it names a file in the cache and is printed: no newline, no escape sequence
        raise ValueError(f"must be a file name without control characters, got {excerpt(value)}")
    return value


def _member_path(value: str) -> str:
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or not all(parts):
        raise ValueError(f"must be a relative path inside the archive without '..', got {excerpt(value)}")
    return value


def _reference(value: str) -> str:
    # torchvision publishes its figures in the wheel itself: "pypi:torchvision==0.29.2 (wheel) <path>".
    if re.fullmatch(r"pypi:[A-Za-z0-9_.-]+==\S+.*", value):
        return value
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    raise ValueError(f"must be an https URL or a 'pypi:NAME==VERSION ...' reference, got {excerpt(value)}")


Sha256 = Annotated[str, AfterValidator(_hex(64))]
Sha256Prefix = Annotated[str, AfterValidator(_hex((6, 63)))]
FileName = Annotated[str, AfterValidator(_file_name)]
MemberPath = Annotated[str, AfterValidator(_member_path)]
Url = Annotated[str, AfterValidator(check_url)]
Reference = Annotated[str, AfterValidator(_reference)]
OTHER_HASH_LENGTHS = {"sha1": 40, "sha384": 96}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _sane_numbers(cls, value):
        # Also numbers given as strings ("1e308"), which pydantic converts after hostile_values looked.
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, (int, float)) and not isinstance(number, bool) and abs(number) > MAX_NUMBER:
                raise ValueError(f"number out of range (at most {MAX_NUMBER:.0e} in size)")
        return value


class Artifact(_Strict):
    """One downloadable file and how to check it."""

    file: FileName
    format: ArtifactFormat
    precision: Precision
    runtime: Runtime = Field(description="what runs it; native weights run on onnxruntime after conversion")
    size_bytes: int | None = Field(None, gt=0)
    sha256: Sha256 | None = None
    sha256_prefix: Sha256Prefix | None = Field(None, description="hash fragment from the file name, when only that is published")
    other_hashes: dict[Literal["sha1", "sha384"], str] = Field(default_factory=dict)
    urls: list[Url] = Field(min_length=1)
    member: MemberPath | None = Field(None, description="file inside the archive that the runtime loads")
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        for algo, value in self.other_hashes.items():
            _hex(OTHER_HASH_LENGTHS[algo])(value)
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError("sha256_prefix does not match the start of sha256")
        if self.member and self.format not in ARCHIVE_FORMATS:
            raise ValueError(f"member is only for archives ({', '.join(sorted(ARCHIVE_FORMATS))})")
        return self


class InputSpec(_Strict):
    """The tensor the model takes."""

    layout: Literal["NCHW", "NHWC"]
    color: Literal["RGB", "BGR", "NV12"]
    dtype: Literal["float32", "float16", "uint8", "int8"]
    quant_scale: float | None = Field(None, gt=0)
    quant_zero_point: int | None = None

    @model_validator(mode="after")
    def _quant_pair(self):
        if (self.quant_scale is None) != (self.quant_zero_point is None):
            raise ValueError("quant_scale and quant_zero_point go together")
        if self.quant_scale is not None and self.dtype not in ("uint8", "int8"):
            raise ValueError("quantization parameters need an integer dtype")
        return self


class Preprocess(_Strict):
    """How the source evaluates: its protocol (decoder, kernel, rounding), resize and crop, interpolation,
    normalisation.

    `protocol`: pillow (timm, torchvision: Pillow decode and antialiased resize), tf1-slim (TF-slim's eval:
    TF's JPEG decode, central_crop, TF1 resize_bilinear), tf2-resize (the same with TF2's tf.image.resize),
    paddleclas and mindcv (their OpenCV-based eval transforms), opencv (cv2 decode and INTER_LINEAR resize).
    `shorter_side_crop`: resize the shorter side to resolution / crop_pct, then centre-crop
    (timm, torchvision, PaddleClas, MindCV). `central_fraction_crop`: centre-crop crop_pct of
    each side, then resize to resolution (TF-slim, TFLite, coral).
    Normalisation is either mean/std on pixels scaled to [0, 1], or scale/offset on raw 0..255 pixels.
    """

    protocol: PreprocessProtocol = "pillow"
    resize: Literal["shorter_side_crop", "central_fraction_crop"]
    crop_pct: float = Field(gt=0, le=1)
    interpolation: Literal["bilinear", "bicubic", "nearest", "area"]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale: float | None = None
    offset: float | None = None

    @model_validator(mode="after")
    def _one_normalisation(self):
        mean_std = self.mean is not None and self.std is not None
        scale_offset = self.scale is not None and self.offset is not None
        if mean_std == scale_offset or (self.mean is None) != (self.std is None) \
                or (self.scale is None) != (self.offset is None):
            raise ValueError("give either mean and std, or scale and offset")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.scale is not None and self.scale == 0:
            raise ValueError("scale must not be zero")
        resizes, interpolations = PROTOCOL_RULES.get(self.protocol, ((self.resize,), (self.interpolation,)))
        if self.resize not in resizes or self.interpolation not in interpolations:
            raise ValueError(f"protocol {self.protocol} takes resize {' or '.join(resizes)} with interpolation "
                             f"{' or '.join(interpolations)}, not {self.resize} with {self.interpolation}")
        return self


class Complexity(_Strict):
    """Normalised params and MACs, with the source's own FLOPs figure and convention."""

    params: int | None = Field(None, gt=0)
    macs: int | None = Field(None, gt=0)
    reported_params_m: float | None = Field(None, gt=0)
    reported_flops_g: float | None = Field(None, gt=0, description="the source's own number, as published")
    flops_convention: Literal["macs", "2x_macs"] | None = None
    reference: Reference | None = None

    @model_validator(mode="after")
    def _normalise(self):
        if self.reported_flops_g is not None:
            if self.flops_convention is None:
                raise ValueError("flops_convention is required with reported_flops_g")
            expected = self.reported_flops_g * 1e9 / (2 if self.flops_convention == "2x_macs" else 1)
            if self.macs is None:
                self.macs = round(expected)
            elif abs(self.macs - expected) > 0.01 * expected:
                raise ValueError(f"macs {self.macs} disagrees with reported_flops_g under '{self.flops_convention}'")
        if self.reported_params_m is not None and self.params is None:
            self.params = round(self.reported_params_m * 1e6)
        if (self.reported_flops_g is not None or self.reported_params_m is not None) and self.reference is None:
            raise ValueError("reference is required with reported figures")
        return self


class Claim(_Strict):
    """One published figure, with where it was published and what it was measured on."""

    metric: Metric
    value: float
    unit: Literal["%", "ms", "images/s"]
    dataset: str = "imagenet-1k"
    split: str = "val"
    protocol: str | None = Field(None, description="evaluation protocol as published (crop, interpolation)")
    device: str | None = Field(None, description="hardware the figure was measured on")
    runtime: str | None = None
    precision: Precision | None = None
    batch: int | None = Field(None, gt=0)
    threads: int | None = Field(None, gt=0)
    reference: Reference
    artifact: FileName | None = Field(None, description="the card artifact this figure belongs to")
    artifact_sha256: Sha256 | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _units(self):
        if self.unit != METRIC_UNITS[self.metric]:
            raise ValueError(f"unit of {self.metric} must be {METRIC_UNITS[self.metric]!r}, got {self.unit!r}")
        if self.unit == "%" and not 0 <= self.value <= 100:
            raise ValueError(f"{self.metric} must be a percentage in 0..100, got {self.value}")
        if self.metric in ("latency_ms", "fps") and (self.value <= 0 or not self.device):
            raise ValueError(f"{self.metric} needs a positive value and the device it was measured on")
        return self


class Calibration(_Strict):
    """The calibration set of a quantized derived card (`zoo quantize`)."""

    root: str = Field(min_length=1, description="the folder the images came from")
    n: int = Field(gt=0, description="how many images calibrated it")
    fingerprint: Sha256 = Field(description="sha256 over the images' relative paths, sizes and labels")
    files: list[str] = Field(default_factory=list, description="the images, relative to root")
    method: str = Field(min_length=1)
    per_channel: bool


class Int8Host(_Strict):
    """The CPU a quantization format was chosen for (zoo.measure.int8_format.host_int8)."""

    arch: str
    isa: str | None = Field(None, description="its best int8 instruction set, e.g. AVX512-VNNI")
    flags: list[str] = Field(default_factory=list)
    cpu: str


class Quantization(_Strict):
    """The int8 format of a quantized derived card, and why it was chosen (`zoo quantize --format`)."""

    format: str = Field(min_length=1, description="e.g. u8s8 (uint8 activations, int8 weights)")
    activations: Literal["uint8", "int8"]
    weights: Literal["uint8", "int8"]
    reduce_range: bool
    per_channel: bool
    layout: Literal["QDQ"]
    keep_float: list[str] = Field(default_factory=list, description="nodes kept in float (--max-drop)")
    chosen_by: Literal["auto", "--format"]
    reason: str = Field(min_length=1)
    host: Int8Host


class DerivedFrom(_Strict):
    """Where a derived card's model comes from: another card's artifact, and what was done to it."""

    id: str = Field(pattern=ID_PATTERN, description="the card it was derived from")
    artifact_sha256: Sha256 = Field(description="the sha256 of that card's file it was made from")
    how: str = Field(min_length=1, description="e.g. 'zoo convert --dequantize (converter version 2)'")
    calibration: Calibration | None = Field(None, description="the images a quantized model was calibrated on")
    quantization: Quantization | None = Field(None, description="a quantized model's int8 format and its reason")


class Card(_Strict):
    """A published MobileNetV2 model: identity, provenance, artifacts, input, preprocessing, claims."""

    schema_version: Literal[1] = 1
    id: str = Field(pattern=ID_PATTERN, description="source/name")
    source: str = Field(pattern=SOURCE_PATTERN)
    name: str = Field(min_length=1, description="the upstream name")
    architecture: Literal["mobilenetv2"]
    width: float = Field(gt=0, le=4, description="width (channel) multiplier")
    depth: float = Field(1.0, gt=0, le=4, description="depth multiplier, where the source varies it")
    resolution: int = Field(ge=32, le=1024)
    num_classes: Literal[1000, 1001]
    label_offset: Literal[0, 1] = Field(description="output index of class 0 (1 when a background class comes first)")
    paper: Url = PAPER_URL
    repository: Url
    licence: str = Field(min_length=1)
    artifacts: list[Artifact] = Field(default_factory=list)
    input: InputSpec
    preprocess: Preprocess
    complexity: Complexity = Field(default_factory=Complexity)
    claims: list[Claim] = Field(default_factory=list)
    notes: str | None = None
    derived_from: DerivedFrom | None = Field(None, description="set on cards zoo made from another card's model")

    @model_validator(mode="after")
    def _consistent(self):
        if self.id.split("/", 1)[0] != self.source:
            raise ValueError(f"id {self.id!r} must start with its source {self.source!r}/")
        if self.label_offset != self.num_classes - 1000:
            raise ValueError("label_offset must be 1 with 1001 classes (background first) and 0 with 1000")
        files = [a.file for a in self.artifacts]
        if len(files) != len(set(files)):
            raise ValueError("artifact file names must be unique on a card")
        by_file = {a.file: a for a in self.artifacts}
        for i, claim in enumerate(self.claims):
            if claim.artifact is not None and claim.artifact not in by_file:
                raise ValueError(f"claims[{i}].artifact {claim.artifact!r} is not one of this card's artifacts")
            known = by_file[claim.artifact].sha256 if claim.artifact else None
            if claim.artifact_sha256 and known and claim.artifact_sha256 != known:
                raise ValueError(f"claims[{i}].artifact_sha256 differs from the artifact's sha256")
        return self


def validation_messages(error: ValidationError, where: str) -> list[str]:
    """One line per problem: 'where: field.path: message', with field names and values shortened and escaped."""
    lines = []
    for item in error.errors():
        path = ".".join(f"[{p}]" if isinstance(p, int) else (str(p) if re.fullmatch(r"[\w.-]{1,40}", str(p))
                                                             else excerpt(str(p), 40))
                        for p in item["loc"]).replace(".[", "[")
        message = item["msg"].removeprefix("Value error, ")
        message = message if len(message) <= 200 and message.isprintable() else excerpt(message, 200)
        lines.append(f"{where}: {path or '(card)'}: {message}")
    return lines


def hostile_values(data: Any, path: str = "", depth: int = 0) -> str | None:
    """The first value no card may hold: nesting deeper than MAX_DEPTH, a non-finite number or one beyond
    MAX_NUMBER, a non-string key. Returns 'field: problem', or None. Checked before pydantic sees the data."""
    if depth > MAX_DEPTH:
        return f"{path or '(card)'}: nests deeper than {MAX_DEPTH} levels"
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return None
    if isinstance(data, (int, float)):
        if isinstance(data, float) and not math.isfinite(data):
            return f"{path}: {data} is not a finite number"
        if abs(data) > MAX_NUMBER:
            return f"{path}: number out of range (at most {MAX_NUMBER:.0e} in size)"
        return None
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                return f"{path or '(card)'}: key {excerpt(key, 40)} is not a string"
            name = key if re.fullmatch(r"[\w.-]{1,40}", key) else excerpt(key, 40)
            if problem := hostile_values(value, f"{path}.{name}" if path else name, depth + 1):
                return problem
        return None
    if isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            if problem := hostile_values(value, f"{path}[{i}]", depth + 1):
                return problem
        return None
    return f"{path or '(card)'}: unsupported value of type {type(data).__name__}"


def validate_card(data: Any, where: str) -> Card:
    """Validate one card's data, or raise InvalidCardError naming the file and field."""
    if not isinstance(data, dict):
        raise InvalidCardError(f"{where}: a card must be a mapping, got {type(data).__name__}")
    if problem := hostile_values(data):
        error = InvalidCardError(f"{where}: {problem}")
        error.lines = [error.message]
        raise error
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        lines = validation_messages(exc, where)
        error = InvalidCardError("; ".join(lines))
        error.lines = lines
        raise error from None


def json_schema() -> dict:
    return Card.model_json_schema()
