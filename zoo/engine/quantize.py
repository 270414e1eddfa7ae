"""`zoo quantize` over one card or many: each card's float ONNX model quantized on the same calibration set,
with one calibration pass per preprocessing (the images decoded once per accuracy.pixels_key and shared by
every card with that key; only the normalisation and the card's encoding are per card).

A sweep reports through `progress(event)`: {"event": "start", kind, cards}, {"event": "note", message} before
each card and {"event": "card", number, cards, ...record} after it; it returns one record per card: {parent, id (the int8 card, or None),
status: quantized|skipped|failed, reason (skipped/failed), and for a quantized card the quantize record}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from zoo.artifacts.local import local_model, run_sha256
from zoo.cards import derived as derived_cards
from zoo.errors import DatasetError, NothingMeasured, UnsupportedArtifactError, UsageError, ZooError, brief, reason
from zoo.measure.accuracy import pixels_key
from zoo.measure.choose import UNAVAILABLE, choose
from zoo.measure.datasets import Dataset
from zoo.measure.preprocess import Preprocessor
from zoo.measure.runtimes import runtime_for_path
from zoo.measure.quantize import METHODS, calibration_of, calibration_values, derive_int8_card, quantize_file


def float_model(card: dict, *, mirrors: list[str] | None = None) -> Path:
    """The card's runnable float ONNX model; UnsupportedArtifactError (before any download where the card
    says enough) for a card that is quantized already or has no float ONNX weights."""
    if card["input"]["dtype"] != "float32" or calibration_of(card):
        raise UnsupportedArtifactError(f"{card['id']} is already quantized ({card['input']['dtype']} input)"
                                       if card["input"]["dtype"] != "float32" else
                                       f"{card['id']} is already quantized (by zoo quantize)",
                                       "Quantize a float card (a dequantized one: `zoo convert ID --dequantize`)")
    try:
        artifact = choose(card, runtime="onnxruntime")
    except UnsupportedArtifactError as error:
        raise UnsupportedArtifactError(f"{card['id']} has no float weights ONNX Runtime runs: {error.one_line()}",
                                       "Quantize a card with ONNX or native float weights") from None
    path = local_model(card, artifact, mirrors=mirrors)
    if runtime_for_path(path).name != "onnxruntime":
        raise UnsupportedArtifactError(f"{card['id']} has no float ONNX model to quantize")
    return path


def quantize_card(card: dict, calibration: Dataset, *, method: str = "minmax", per_channel: bool = True,
                  force: bool = False, mirrors: list[str] | None = None,
                  values: Callable[[], list] | None = None) -> dict:
    """One card quantized (zoo.measure.quantize.quantize_file) and its derived card ID+int8 written.

    Record keys: those of quantize_file, id (the derived card), derived_from, card_path."""
    path = float_model(card, mirrors=mirrors)
    record = quantize_file(card, path, calibration, method=method, per_channel=per_channel, force=force,
                           values=values)
    derived = derive_int8_card(card, record, run_sha256(path), root=calibration.root)
    return {**record, "id": derived["id"], "derived_from": derived["derived_from"],
            "card_path": str(derived_cards.path_of(derived["id"]))}


def quantize_sweep(entries: list, calibration: Dataset, *, method: str = "minmax", per_channel: bool = True,
                   force: bool = False, mirrors: list[str] | None = None,
                   progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Quantize every card of `entries` on `calibration`; cards that cannot be quantized are skipped with their
    reason, a card failing for its own reason is reported and the others go on. Calibration images that cannot
    be read fail the whole sweep at once (every card would fail alike)."""
    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not one ONNX Runtime calibrates with", f"Use one of: {', '.join(METHODS)}")
    emit = progress or (lambda event: None)
    decoded: dict[str, list] = {}  # pixels key -> the calibration images, decoded once
    records, errors = [], {}
    emit({"event": "start", "kind": "quantize", "cards": len(entries)})
    for number, entry in enumerate(entries, start=1):
        card = entry.card
        emit({"event": "note", "message": f"[{number}/{len(entries)}] {card['id']}: quantizing ..."})
        preprocessor = Preprocessor(card["preprocess"], card["resolution"])
        key = pixels_key(preprocessor)

        def values(key=key, preprocessor=preprocessor):
            if key not in decoded:
                decoded[key] = calibration_values(preprocessor, calibration)
            return decoded[key]

        record = {"parent": card["id"], "id": None}
        try:
            record |= {**quantize_card(card, calibration, method=method, per_channel=per_channel, force=force,
                                       mirrors=mirrors, values=values), "status": "quantized"}
        except DatasetError:
            raise  # the calibration set itself: no card can be quantized on it
        except UnsupportedArtifactError as error:
            record |= {"status": "skipped", "reason": error.one_line()}
            errors[card["id"]] = error
        except UNAVAILABLE as error:
            record |= {"status": "skipped", "reason": f"weights unavailable: {error.one_line()}"}
            errors[card["id"]] = error
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # this card's own failure: reported, the others go on
            record |= {"status": "failed", "reason": reason(error)}
            errors[card["id"]] = error
        records.append(record)
        emit({"event": "card", "number": number, "cards": len(entries), **record})
    if not any(r["status"] == "quantized" for r in records):
        if len(records) == 1 and isinstance(errors.get(records[0]["parent"]), ZooError):
            raise errors[records[0]["parent"]]  # one card: its own error, its own exit code
        raise NothingMeasured(f"nothing quantized: {sum(r['status'] == 'skipped' for r in records)} card(s) "
                              f"skipped, {sum(r['status'] == 'failed' for r in records)} failed",
                              "; ".join(f"{r['parent']}: {brief(r['reason'])}" for r in records[:5])
                              + (f"; and {len(records) - 5} more" if len(records) > 5 else ""),
                              summary={"records": records})
    return records
