"""int8 on the user's own images: ONNX Runtime's static quantization (QDQ) in the int8 format this CPU runs fast
(zoo.measure.int8_format), calibrated on images preprocessed exactly as the card's source does, a few images
at a time, and the paired test that says whether the accuracy drop is real.

The quantized model is cached by everything that decides its bytes: the float model's sha256, the
calibration set's fingerprint, the settings, and QUANTIZER_VERSION; a record beside it says all of these
and the quantized file's own sha256.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from zoo import settings
from zoo.cards import derived as derived_cards
from zoo.artifacts.hashes import file_sha256
from zoo.errors import DatasetError, UnsupportedArtifactError, UsageError
from zoo.files import read_json, write_json_atomic
from zoo.measure.accuracy import DECODE_ERRORS
from zoo.measure.datasets import Dataset
from zoo.measure.int8_verdict import accuracy_sentence, drop_interval
from zoo.measure.preprocess import Preprocessor
from zoo.measure.runtimes import encode

QUANTIZER_VERSION = 2   # bump when a change alters the model produced for the same inputs
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION = 300
MIN_CALIBRATION = 10
# What decides the quantized model's bytes; the rest of the options (the reason, the host) only explain them.
BYTES_OPTIONS = ("method", "per_channel", "format", "activations", "weights", "reduce_range", "layout", "keep_float")
CALIBRATION_CHUNK = 4  # images per calibration step: entropy/percentile hold every activation of a step (~62 MB
                       # an image at 224), then fold it into their histograms


def calibration_set(dataset: Dataset, n: int) -> Dataset:
    """`n` images chosen deterministically and spread over the classes: each class's images ordered by a hash
    of their name, then one class after another in turn, so 300 images of a 1000-class set cover 300 classes."""
    if n < MIN_CALIBRATION:
        raise UsageError(f"--calib-n must be at least {MIN_CALIBRATION}, got {n}")
    by_class: dict[int, list[str]] = {}
    for relative, label in dataset.items:
        by_class.setdefault(label, []).append(relative)
    queues = [sorted(names, key=lambda r: hashlib.sha1(r.encode("utf-8", "surrogateescape")).hexdigest())
              for _, names in sorted(by_class.items())]
    labels = sorted(by_class)
    chosen: list[tuple[str, int]] = []
    depth = 0
    while len(chosen) < n and any(depth < len(q) for q in queues):
        for label, queue in zip(labels, queues):
            if depth < len(queue) and len(chosen) < n:
                chosen.append((queue[depth], label))
        depth += 1
    if len(chosen) < n:
        raise DatasetError(f"the calibration folder {dataset.root} has {len(chosen)} images, fewer than --calib-n {n}",
                           f"Give a folder with at least {n} images, or a smaller --calib-n")
    return Dataset(dataset.root, dataset.layout, sorted(chosen), dataset.labels_file, 0, [])


def calibration_of(card: dict) -> dict | None:
    """The calibration record of a card quantized by zoo (derived_from.calibration), else None."""
    calibration = (card.get("derived_from") or {}).get("calibration")
    return calibration if isinstance(calibration, dict) else None


def same_folder(a, b) -> bool:
    """Whether two folder paths name the same folder once resolved (symlinks, '..', relative paths)."""
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError, TypeError):
        return False


def held_out(card: dict, dataset: Dataset) -> tuple[Dataset, int]:
    """(the images of `dataset` a quantized card may be scored on, how many were left out): evaluated on the
    folder that calibrated it (roots compared resolved), its calibration images are excluded; any other
    folder, or any other card, is returned whole."""
    calibration = calibration_of(card)
    if not calibration or not same_folder(calibration.get("root", ""), dataset.root):
        return dataset, 0
    held = dataset.without(calibration.get("files") or ())
    excluded = len(dataset) - len(held)
    if not excluded:
        return dataset, 0
    if not len(held):
        raise DatasetError(f"all {len(dataset)} images of {dataset.root} calibrated {card['id']}: none is left to "
                           "evaluate it on", "Evaluate on other images than the calibration's (--data DIR)")
    return held, excluded


def accuracy_against_float(parent_id: str, float_hits, int8_hits) -> dict:
    """The int8 model against its float parent on the same images, from per-image top-1 outcomes (aligned
    boolean arrays): both top-1s, the drop in points with its 95% interval, the discordant pairs, McNemar's
    exact p-value, and the verdict in words (zoo.measure.int8_verdict)."""
    paired = paired_top1(float_hits, int8_hits)
    n, float_only, int8_only, p_value = paired["n"], paired["first_only"], paired["second_only"], paired["p_value"]
    parent_top1, top1 = paired["first_top1"], paired["second_top1"]
    drop = round(parent_top1 - top1, 3) if n else None
    significant = p_value < 0.05
    v = {"parent": parent_id, "n": n, "parent_top1": parent_top1, "top1": top1, "drop_points": drop,
         "drop_ci95": drop_interval(float_only, int8_only, n), "float_only": float_only, "int8_only": int8_only,
         "p_value": p_value, "significant": significant}
    return {**v, "verdict": accuracy_sentence(v) if n else "no images"}


def paired_top1(first_hits, second_hits) -> dict:
    """Two models' per-image top-1 outcomes on the same images (aligned boolean arrays): n, each top-1 in percent
    (None on no images), the discordant pairs (first_only: images only the first got right) and McNemar's p."""
    import numpy as np

    first, second = np.asarray(first_hits, bool), np.asarray(second_hits, bool)
    n = len(first)
    first_only, second_only = int((first & ~second).sum()), int((~first & second).sum())
    return {"n": n, "first_only": first_only, "second_only": second_only,
            "p_value": mcnemar_exact(first_only, second_only),
            "first_top1": round(100 * float(first.mean()), 3) if n else None,
            "second_top1": round(100 * float(second.mean()), 3) if n else None}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: b images only the first model got right,
    c only the second (a binomial test of b against b + c at p = 1/2; written out, it is three lines)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _cache_key(model_sha256: str, calibration_fingerprint: str, options: dict) -> str:
    decides = {k: options[k] for k in BYTES_OPTIONS}
    blob = json.dumps({"model": model_sha256, "calibration": calibration_fingerprint, "options": decides,
                       "version": QUANTIZER_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def calibration_values(preprocessor: Preprocessor, calibration: Dataset) -> list:
    """Each readable calibration image decoded and resized as the protocol says (Preprocessor.values, before
    normalisation): what every card sharing the preprocessing's accuracy.pixels_key can be calibrated on."""
    from PIL import Image

    values = []
    for relative, _ in calibration.items:
        try:
            values.append(preprocessor.values(calibration.path(relative)))
        except (*DECODE_ERRORS, Image.DecompressionBombError):
            continue  # unreadable: counted by the caller
    return values


def _chunk(n: int) -> int:
    """The largest divisor of n up to CALIBRATION_CHUNK (ONNX Runtime's strided calibration needs one)."""
    return next(k for k in range(min(CALIBRATION_CHUNK, n), 0, -1) if n % k == 0)


def prepare(float_model: Path, out: Path) -> None:
    """ONNX Runtime's recommended pre-processing (graph optimisation and ONNX shape inference), then a name for
    every node (`Conv_12`: op type and position), by which --max-drop keeps layers in float and the doctor
    names them. Its symbolic shape inference is skipped: it needs sympy, and on these graphs (static shapes
    but the batch) the quantized model is the same without it (checked on the coral float model)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_model), str(out), skip_symbolic_shape=True)
    model = onnx.load(str(out))
    for number, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{number}"
    onnx.save(model, str(out))


def quantize_file(card: dict, float_model: Path, calibration: Dataset, *, method: str = "minmax",
                  per_channel: bool = True, format: str | None = None, keep_float=(), force: bool = False,
                  values: Callable[[], list] | None = None, host: dict | None = None) -> dict:
    """Quantize a float ONNX model of `card` to QDQ int8, calibrated on `calibration` preprocessed as the card says.

    `format`: a name of zoo.measure.int8_format.FORMATS, or None/'auto' for this host's choice (`host`: a
    host_int8() result standing in for this one). `keep_float`: node names of the prepared model left in float.
    `values()`: the calibration images' calibration_values under this card's pixels key, when a sweep shares
    them between cards (asked only when the model is not cached); by default they are decoded here.
    Calibration runs CALIBRATION_CHUNK images at a time, so memory does not grow with the number of images.

    Record keys: path, prepared (the pre-processed float model whose node and tensor names the int8 model keeps),
    sha256, size_bytes, source {path, sha256}, calibration {root, n, fingerprint, files}, options {method,
    per_channel, format, activations, weights, reduce_range, layout, keep_float, chosen_by, reason, host},
    quantizer_version, onnxruntime, cached."""
    import onnxruntime
    from filelock import FileLock
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from zoo.measure.int8_format import resolve_format

    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not one ONNX Runtime calibrates with", f"Use one of: {', '.join(METHODS)}")
    chosen = resolve_format(format, host)
    if card["input"]["dtype"] != "float32":
        raise UnsupportedArtifactError(f"{card['id']} takes {card['input']['dtype']} input: it is already quantized",
                                       "Quantize a float card (a dequantized one: `zoo convert ID --dequantize`)")
    float_model = Path(float_model)
    if already_quantized(float_model):
        raise UnsupportedArtifactError(f"{card['id']}: its model is already quantized",
                                       "Quantize the float card it came from (`zoo list '*+float'`)")
    options = {"method": method, "per_channel": per_channel, **{k: v for k, v in chosen.items() if k != "host"},
               "layout": "QDQ", "keep_float": sorted(set(keep_float)), "host": chosen["host"]}
    source_sha = file_sha256(float_model)
    fingerprint = calibration.fingerprint()
    where = settings.quantized_dir() / _cache_key(source_sha, fingerprint, options)
    model_path, prepared, record_path = where / "model.onnx", where / "prepared.onnx", where / "record.json"
    where.mkdir(parents=True, exist_ok=True)
    with FileLock(str(where / "lock")):
        record = None if force else read_json(record_path)
        if isinstance(record, dict) and model_path.is_file() and prepared.is_file() \
                and file_sha256(model_path) == record.get("sha256"):
            return {**record, "path": str(model_path), "prepared": str(prepared), "cached": True}
        preprocessor = Preprocessor(card["preprocess"], card["resolution"])
        channels_first = card["input"]["layout"] == "NCHW"
        decoded = values() if values else calibration_values(preprocessor, calibration)
        if len(decoded) < MIN_CALIBRATION:
            raise DatasetError(f"only {len(decoded)} of the {len(calibration)} calibration images could be read",
                               f"Give at least {MIN_CALIBRATION} readable images")
        feed_name = input_name(float_model)

        class Reader(CalibrationDataReader):
            """The images of [start, end), each encoded exactly as eval feeds the model (accuracy.Job: normalise,
            then the card's encoding) only when asked: one calibration step's inputs in memory at a time."""

            def __init__(self):
                self.set_range(0, len(decoded))

            def __len__(self):
                return len(decoded)

            def set_range(self, start_index: int, end_index: int):
                self._next, self._end = start_index, end_index

            def get_next(self):
                if self._next >= self._end:
                    return None
                self._next += 1
                x = encode(preprocessor.normalise(decoded[self._next - 1], channels_first), card["input"])
                return {feed_name: x[None]}

        calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                     "percentile": CalibrationMethod.Percentile}[method]
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        with tempfile.TemporaryDirectory(dir=where) as tmp, contextlib.redirect_stdout(io.StringIO()):
            out = Path(tmp) / "model.onnx"
            prepare(float_model, Path(tmp) / "prepared.onnx")
            # CalibStridedMinMax: despite its name, ONNX Runtime calibrates every method in steps of this many
            # images (for minmax the result is the same; entropy/percentile merge their histograms).
            quantize_static(str(Path(tmp) / "prepared.onnx"), str(out), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=options["reduce_range"],
                            calibrate_method=calibrate, activation_type=types[options["activations"]],
                            weight_type=types[options["weights"]], nodes_to_exclude=options["keep_float"] or None,
                            extra_options={"CalibStridedMinMax": _chunk(len(decoded))})
            os.replace(Path(tmp) / "prepared.onnx", prepared)
            os.replace(out, model_path)
        record = {"sha256": file_sha256(model_path), "size_bytes": model_path.stat().st_size,
                  "source": {"path": str(float_model), "sha256": source_sha},
                  "calibration": {"root": str(Path(calibration.root).resolve()), "n": len(decoded),
                                  "fingerprint": fingerprint, "files": [relative for relative, _ in calibration.items]},
                  "options": options, "quantizer_version": QUANTIZER_VERSION, "onnxruntime": onnxruntime.__version__}
        write_json_atomic(record_path, record)
    return {**record, "path": str(model_path), "prepared": str(prepared), "cached": False}


def input_name(model_path: Path) -> str:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def already_quantized(model_path: Path) -> bool:
    """Whether an ONNX model holds quantized operators already (QDQ or QLinear)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger") for n in graph.node)


def derive_int8_card(card: dict, record: dict, parent_sha256: str, root: Path | None = None) -> dict:
    """The quantized model as a card of its own: id ID+int8, the parent's input and preprocessing (the QDQ model
    takes the same float tensor), its artifact the quantized file by sha256, its calibration and int8 format
    recorded (`root`: the calibration folder this time, resolved; a cached model may have been calibrated on a
    copy of it). Written to ZOO_HOME/derived, where load_registry finds it (registry "derived")."""
    name = card["id"].split("/", 1)[1] + "+int8"
    options = record["options"]
    kept = f", {len(options['keep_float'])} node(s) kept in float" if options.get("keep_float") else ""
    how = (f"zoo quantize (ONNX Runtime {record['onnxruntime']} static quantization, QDQ, {options['method']}, "
           f"format {options['format']}: {options['activations']} activations, "
           f"{'per-channel' if options['per_channel'] else 'per-tensor'} {options['weights']} weights"
           f"{', reduce_range' if options['reduce_range'] else ''}{kept}; quantizer version {record['quantizer_version']})")
    fields = ("source", "architecture", "width", "depth", "resolution", "num_classes", "label_offset", "paper",
              "repository", "licence", "input", "preprocess", "complexity")
    calibration = {**{k: record["calibration"][k] for k in ("root", "n", "fingerprint", "files")},
                   "method": options["method"], "per_channel": options["per_channel"]}
    if root is not None:
        calibration["root"] = str(Path(root).expanduser().resolve())
    quantization = {k: options[k] for k in ("format", "activations", "weights", "reduce_range", "per_channel",
                                            "layout", "keep_float", "chosen_by", "reason", "host")}
    data = {**{k: card[k] for k in fields if k in card}, "id": f"{card['source']}/{name}",
            "name": f"{card.get('name', name)} (int8, quantized by zoo)",
            "artifacts": [{"file": f"{name}.onnx", "format": "onnx", "precision": options["activations"],
                           "runtime": "onnxruntime", "size_bytes": record["size_bytes"], "sha256": record["sha256"],
                           "urls": [Path(record["path"]).as_uri()], "note": "quantized by zoo on your images"}],
            "derived_from": {"id": card["id"], "artifact_sha256": parent_sha256, "how": how,
                             "calibration": calibration, "quantization": quantization},
            "notes": f"Derived from {card['id']}: {how}, calibrated on {calibration['n']} images of "
                     f"{calibration['root']}. Format chosen: {options['reason']}. Published figures belong to the "
                     "source's models, not to this one."}
    return derived_cards.save(data)
