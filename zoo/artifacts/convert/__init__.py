"""`zoo convert`: a card's weights to ONNX, with numpy, onnx and onnxruntime only (no torch at run time).

- Native weights (.pth zip and legacy, .safetensors, PaddleClas .pdparams, MindSpore .ckpt): `readers` turn the
  file into (name, array) pairs executing nothing from it; `mapping` puts them onto the card's layer plan
  (every missing, extra or misshapen tensor refused by name); `builder` writes the ONNX graph, batch norm folded.
  Synthetic weights (`--synthetic-weights`) go through the same plan and builder.
- TFLite (.tflite): `tflite_onnx` writes a QDQ ONNX with the file's own quantization and interface (uint8 NHWC
  in, uint8 out), or with dequantize=True a float model (the derived card of `zoo convert --dequantize`).

Every result is checked by one ONNX Runtime run and cached under ZOO_HOME/converted by (source sha256,
CONVERTER_VERSION); records are written atomically after the model, so a failed conversion caches nothing.
Correctness against the frameworks' own forward passes is the test suite's job (tests/test_convert.py).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from zoo import settings
from zoo.artifacts.fetch import artifact_member, fetch_record
from zoo.artifacts.hashes import file_sha256
from zoo.cards import derived as derived_cards
from zoo.cards.formats import CONVERTIBLE_FORMATS
from zoo.errors import ConversionError, UnsupportedArtifactError, UsageError
from zoo.files import read_json, write_bytes_atomic, write_json_atomic

CONVERTER_VERSION = 2   # bump when a change alters the ONNX produced for the same source bytes
TFLITE_FORMAT = "tflite"
# Sources whose MobileNetV2 has its own layer plan or tensor names; every other source is timm's plan.
FAMILIES = ("paddleclas", "torchvision", "mindcv", "d-li14")


def family(card: dict, fmt: str | None = None) -> str:
    """Which MobileNetV2 definition a card's weights come from: its layer plan and its likely tensor names."""
    if fmt == "pdparams" or card.get("source") == "paddleclas":
        return "paddleclas"
    return card.get("source") if card.get("source") in FAMILIES else "timm"


def architecture(card: dict, fmt: str | None = None) -> dict:
    """What the converter builds for `card`: the family, its plan's name and the card's numbers."""
    from zoo.artifacts.convert import builder

    width, depth, classes = float(card["width"]), float(card.get("depth", 1.0)), int(card["num_classes"])
    kind = family(card, fmt)
    try:
        plan = builder.plan_for(kind, width, depth, classes)
    except ValueError as exc:
        raise ConversionError(f"{card['id']}: {exc}") from None
    return {"family": kind, "plan": plan.name, "width": width, "depth": depth, "num_classes": classes,
            "resolution": int(card["resolution"])}


# ---------------------------------------------------------------- building (in memory: nothing written on failure)

def _native_model(card: dict, source: Path | None, fmt: str | None, arch: dict):
    from zoo.artifacts.convert import builder, mapping, readers

    plan = builder.plan_for(arch["family"], arch["width"], arch["depth"], arch["num_classes"])
    if source is None:
        weights = builder.random_weights(plan)
    else:
        pairs = readers.read(source, fmt, limits=readers.Limits.for_plan(plan))  # bounded by what the plan needs
        weights = mapping.map_weights(pairs, plan, fmt=fmt, file=Path(source).name)
    return builder.build(plan, weights, arch["resolution"])


def _quiet(ort):
    """Session options that keep ONNX Runtime's own log off stderr: a failure comes back as one error line."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return options


def _check_native(path: Path, arch: dict) -> dict:
    """One ONNX Runtime run: the graph loads and gives finite [2, classes] logits that depend on the input."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _quiet(ort), providers=["CPUExecutionProvider"])
    r = arch["resolution"]
    x = np.random.default_rng(0).standard_normal((2, 3, r, r), dtype=np.float32)
    logits = session.run(["logits"], {"input": x})[0]
    if logits.shape != (2, arch["num_classes"]) or not np.isfinite(logits).all():
        raise ConversionError(f"the ONNX graph gave logits of shape {list(logits.shape)} with "
                              f"{int((~np.isfinite(logits)).sum())} non-finite values")
    return {"logits_spread": float(np.abs(logits[0] - logits[1]).max())}


def _check_tflite(path: Path) -> dict:
    """One ONNX Runtime run on a zero input of the declared type: the graph loads and runs."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _quiet(ort), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dtype = {"tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(inp.type, np.float32)
    shape = [1 if not isinstance(d, int) else d for d in inp.shape]
    out = session.run(None, {inp.name: np.zeros(shape, dtype)})[0]
    return {"output_shape": list(out.shape)}


def _key(card: dict, fmt: str | None, dequantize: bool) -> str:
    if fmt == TFLITE_FORMAT:
        return "tflite_float" if dequantize else "tflite_qdq"
    arch = architecture(card, fmt)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{arch['plan']}_r{arch['resolution']}")


def convert_file(card: dict, source: Path | None, fmt: str | None, *, source_sha256: str | None = None,
                 synthetic: bool = False, dequantize: bool = False, output: Path | None = None,
                 force: bool = False) -> dict:
    """Convert one weights file (or, synthetic=True, random weights of the card's plan) for `card`; cached.

    Record keys: id, source {file, format, sha256} (None with synthetic weights), synthetic_weights,
    architecture (native and synthetic) or tflite {mode, int8, tflite_ops, onnx_ops, inputs, outputs},
    path (the cached ONNX), sha256, size_bytes, converter_version, opset, check, seconds, cached, and
    output when copied there.
    """
    if synthetic:
        where = settings.converted_dir() / "synthetic" / f"v{CONVERTER_VERSION}"
    else:
        if fmt not in CONVERTIBLE_FORMATS | {TFLITE_FORMAT}:
            raise UsageError(f"{fmt} is not a format zoo converts",
                             f"Convertible formats: {', '.join(sorted(CONVERTIBLE_FORMATS | {TFLITE_FORMAT}))}")
        source_sha256 = source_sha256 or file_sha256(Path(source))
        where = settings.converted_dir() / source_sha256 / f"v{CONVERTER_VERSION}"
    if dequantize and fmt != TFLITE_FORMAT:
        raise UsageError("--dequantize applies to a .tflite artifact (a quantized model)",
                         "Native weights are float already: leave it out")
    key = _key(card, fmt, dequantize)
    onnx_path, record_path = where / f"{key}.onnx", where / f"{key}.json"
    from filelock import FileLock

    from zoo.artifacts.cache import convert_lock

    # One conversion of a file at a time across processes (parallel sweeps, `convert --force`), as for fetch:
    # a second one waits and finds the first one's result, or (--force) converts after it.
    with FileLock(str(convert_lock(onnx_path))):
        record = None
        if not force and onnx_path.is_file():
            record = read_json(record_path)  # None when missing or unreadable
            if not isinstance(record, dict) or file_sha256(onnx_path) != record.get("sha256"):
                record = None  # a corrupt or foreign cached file: convert again
        if record is None:
            record = _convert(card, source, fmt, onnx_path, synthetic=synthetic, dequantize=dequantize,
                              source_sha256=source_sha256)
            write_json_atomic(record_path, record, indent=2)
            record["cached"] = False
        else:
            record["cached"] = True
    record["path"] = str(onnx_path)
    if output is not None:
        output = Path(output)
        if output.is_dir():
            output = output / f"{card['id'].replace('/', '_')}.onnx"
        write_bytes_atomic(output, onnx_path.read_bytes())
        record["output"] = str(output)
    return record


def _convert(card, source, fmt, onnx_path: Path, *, synthetic, dequantize, source_sha256) -> dict:
    start = time.perf_counter()
    if fmt == TFLITE_FORMAT:
        from zoo.artifacts.convert import tflite_onnx

        from zoo.files import read_limited

        try:  # a flatbuffer is at most 2 GiB; a MobileNetV2 is a few MB
            data = read_limited(source, tflite_onnx.MAX_TFLITE_BYTES, Path(source).name)
        except ValueError as exc:
            raise ConversionError(str(exc)) from None
        model, details = tflite_onnx.convert(data, "float" if dequantize else "qdq", name=Path(source).name)
        details.pop("seconds", None)
        what = {"tflite": details}
    else:
        arch = architecture(card, fmt)
        model = _native_model(card, None if synthetic else Path(source), fmt, arch)
        what = {"architecture": arch}
    data = model.SerializeToString()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    # Checked under a temporary name of its own (parallel conversions never share one); only a model that runs
    # becomes the cached file.
    tmp = _written_aside(onnx_path, data)
    try:
        try:
            check = _check_tflite(tmp) if fmt == TFLITE_FORMAT else _check_native(tmp, what["architecture"])
        except ConversionError:
            raise
        except Exception as exc:  # onnxruntime raises its own unrelated classes (a graph that cannot run)
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConversionError(f"{card['id']}: the converted model does not run in ONNX Runtime "
                                  f"({text[:200]})") from None
        tmp.replace(onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
    import hashlib

    return {"id": card["id"], "synthetic_weights": synthetic,
            "source": None if synthetic else {"file": Path(source).name, "format": fmt, "sha256": source_sha256},
            **what, "path": str(onnx_path), "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
            "converter_version": CONVERTER_VERSION, "opset": opset, "check": check,
            "seconds": round(time.perf_counter() - start, 3)}


def _written_aside(path: Path, data: bytes) -> Path:
    """`data` in a new, uniquely named file beside `path`; a write that fails (a full disk, a file-size limit)
    leaves nothing and is one StorageError naming `path`."""
    import os
    import tempfile

    from zoo.files import storage_error, umask

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".check", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise storage_error(exc, path) from None
    return Path(tmp)


def source_sha256(onnx_path: Path) -> str | None:
    """The sha256 of the file a cached ONNX was converted from (None: not a conversion, or synthetic)."""
    onnx_path = Path(onnx_path)
    record = onnx_path.with_suffix(".json")
    if settings.converted_dir() not in onnx_path.parents or not record.is_file():
        return None
    source = (read_json(record) or {}).get("source")
    return source["sha256"] if isinstance(source, dict) else None


def is_convertible(artifact: dict) -> bool:
    """Native weights, or a TFLite model (file or archive member) that converts to ONNX."""
    loaded = (artifact.get("member") or artifact["file"]).lower()
    return artifact["format"] in CONVERTIBLE_FORMATS or loaded.endswith(".tflite")


def convertible_artifact(card: dict, artifact: dict | str | None = None) -> dict:
    """The card's artifact to convert: the one named, else its first native weights, else its first .tflite."""
    artifacts = card.get("artifacts") or []
    if artifact is not None:
        name = artifact if isinstance(artifact, str) else artifact["file"]
        chosen = next((a for a in artifacts if a["file"] == name), None)
        if chosen is None:
            raise UsageError(f"{card['id']} has no artifact {name!r}",
                             f"Its artifacts are: {', '.join(a['file'] for a in artifacts) or 'none'}")
    else:
        chosen = next((a for a in artifacts if a["format"] in CONVERTIBLE_FORMATS), None) or \
            next((a for a in artifacts if is_convertible(a)), None)
        if chosen is None:
            formats = ", ".join(sorted({a["format"] for a in artifacts})) or "none"
            raise UnsupportedArtifactError(f"{card['id']} has no weights zoo converts (its artifacts: {formats})",
                                           "Use --synthetic-weights for its architecture with random weights")
    if not is_convertible(chosen):
        raise UnsupportedArtifactError(f"{card['id']} {chosen['file']} is {chosen['format']}, which zoo does not convert",
                                       f"Convertible: {', '.join(sorted(CONVERTIBLE_FORMATS))} and .tflite")
    return chosen


def convert_card(card: dict, *, artifact: dict | str | None = None, output: Path | None = None,
                 synthetic: bool = False, dequantize: bool = False, mirrors: list[str] | None = None,
                 force: bool = False, progress=None) -> dict:
    """Fetch (verified) and convert a card's weights to ONNX; see convert_file for the record."""
    if card.get("architecture", "mobilenetv2") != "mobilenetv2":
        raise UnsupportedArtifactError(f"{card['id']}: zoo converts MobileNetV2 only")
    if synthetic:
        if dequantize:
            raise UsageError("--dequantize converts a card's .tflite model; leave out --synthetic-weights")
        return convert_file(card, None, None, synthetic=True, output=output, force=force)
    chosen = convertible_artifact(card, artifact)
    if chosen["format"] in CONVERTIBLE_FORMATS:
        fetched = fetch_record(card, chosen, mirrors=mirrors, progress=progress)
        return convert_file(card, Path(fetched["path"]), chosen["format"], source_sha256=fetched["sha256"],
                            dequantize=dequantize, output=output, force=force)
    path = artifact_member(card, chosen, mirrors=mirrors, progress=progress)  # the .tflite, verified, unpacked
    record = convert_file(card, path, TFLITE_FORMAT, dequantize=dequantize, output=output, force=force)
    if not dequantize:
        return record
    derived = derive_float_card(card, record)
    return {**record, "id": derived["id"], "derived_from": derived["derived_from"],
            "card_path": str(derived_cards.path_of(derived["id"]))}


# ---------------------------------------------------------------- derived cards

def derive_float_card(card: dict, record: dict) -> dict:
    """The float model of a .tflite card (`record` of its dequantized conversion) as a card of its own:
    id ID+float, input float32 (the real values the quantized input stood for: the same preprocessing),
    its artifact the converted file, by sha256 and file:// URL inside ZOO_HOME. Written to ZOO_HOME/derived,
    where load_registry finds it (registry "derived")."""
    name = card["id"].split("/", 1)[1] + "+float"
    kept = ("source", "architecture", "width", "depth", "resolution", "num_classes", "label_offset", "paper",
            "repository", "licence", "preprocess", "complexity")
    how = (f"zoo convert --dequantize (converter version {CONVERTER_VERSION}): weights and biases as "
           "scale * (q - zero_point) in float32, activations not quantized")
    data = {**{k: card[k] for k in kept if k in card}, "id": f"{card['source']}/{name}",
            "name": f"{card.get('name', name)} (float, dequantized weights)",
            "artifacts": [{"file": f"{name.replace('/', '_')}.onnx", "format": "onnx", "precision": "fp32",
                           "runtime": "onnxruntime", "size_bytes": record["size_bytes"], "sha256": record["sha256"],
                           "urls": [Path(record["path"]).as_uri()],
                           "note": f"converted from {record['source']['file']} by zoo"}],
            "input": {"layout": card["input"]["layout"], "color": card["input"]["color"], "dtype": "float32"},
            "derived_from": {"id": card["id"], "artifact_sha256": record["source"]["sha256"], "how": how},
            "notes": f"Derived from {card['id']}: {how}. Published figures belong to {card['id']}, not to this model."}
    return derived_cards.save(data)
