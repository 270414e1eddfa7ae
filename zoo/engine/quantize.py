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
from zoo.measure.int8_format import resolve_format
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
                  format: str | None = None, keep_float=(), force: bool = False, mirrors: list[str] | None = None,
                  values: Callable[[], list] | None = None) -> dict:
    """One card quantized (zoo.measure.quantize.quantize_file) and its derived card ID+int8 written.

    Record keys: those of quantize_file, id (the derived card), derived_from, card_path."""
    path = float_model(card, mirrors=mirrors)
    record = quantize_file(card, path, calibration, method=method, per_channel=per_channel, format=format,
                           keep_float=keep_float, force=force, values=values)
    derived = derive_int8_card(card, record, run_sha256(path), root=calibration.root)
    return {**record, "id": derived["id"], "derived_from": derived["derived_from"],
            "card_path": str(derived_cards.path_of(derived["id"]))}


def quantize_sweep(entries: list, calibration: Dataset, *, method: str = "minmax", per_channel: bool = True,
                   format: str | None = None, force: bool = False, mirrors: list[str] | None = None,
                   progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Quantize every card of `entries` on `calibration`; cards that cannot be quantized are skipped with their
    reason, a card failing for its own reason is reported and the others go on. Calibration images that cannot
    be read fail the whole sweep at once (every card would fail alike).

    When nothing is quantized the error raised (the one card's own, or NothingMeasured naming every card's
    reason) carries the records as `error.summary["records"]`, so that a caller can still show each card's
    reason."""
    if method not in METHODS:
        raise UsageError(f"--method {method!r} is not one ONNX Runtime calibrates with", f"Use one of: {', '.join(METHODS)}")
    resolve_format(format)  # a bad --format fails the command, not each card
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
            record |= {**quantize_card(card, calibration, method=method, per_channel=per_channel, format=format,
                                       force=force, mirrors=mirrors, values=values), "status": "quantized"}
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
            error = errors[records[0]["parent"]]  # one card: its own error, its own exit code
        else:
            error = NothingMeasured(f"nothing quantized: {sum(r['status'] == 'skipped' for r in records)} card(s) "
                                    f"skipped, {sum(r['status'] == 'failed' for r in records)} failed",
                                    "; ".join(f"{r['parent']}: {brief(r['reason'])}" for r in records[:5])
                                    + (f"; and {len(records) - 5} more" if len(records) > 5 else ""))
        error.summary = {"records": records}  # every card's reason, for --json and the lines on stdout
        raise error
    return records


# ---------------------------------------------------------------- the quantization doctor

EXPLAIN_IMAGES = 32   # calibration images the layers are compared on: ~5 million values per layer at 224
MAX_TRIES = 8         # kept layers double each try: 0, 1, 2, 4, ... 64
DOCTOR_ITERS = 200    # timed calls per model and try (latency.DEFAULT_ROUNDS interleaved rounds, batch 1)


def doctor(card: dict, calibration: Dataset, held: Dataset | None = None, *, method: str = "minmax",
           per_channel: bool = True, format: str | None = None, max_drop: float | None = None,
           images: int = EXPLAIN_IMAGES, threads: int = 1, iters: int = DOCTOR_ITERS, force: bool = False,
           mirrors: list[str] | None = None, progress: Callable[[dict], None] | None = None) -> dict:
    """Quantize one card and compare its int8 activations with the float model's, layer by layer, on `images` of
    the calibration images (zoo.measure.doctor). With `max_drop` (top-1 points), measure the drop on `held` and,
    while it is larger, quantize again keeping the worst layers in float (1, then 2, 4, ... layers: each try
    keeps the worst of the layers the last one still quantizes, as a broken layer hides those after it),
    reporting each try's drop and speed (float / int8 p50 at batch 1 on `threads`, interleaved rounds). The
    derived card ID+int8 is the first try that fits, else the one with the least drop; the report is kept
    beside its model (zoo.measure.doctor.saved).

    Report keys: parent, id, card_path, sha256, options, images, layers (worst first, as first quantized),
    max_drop, held_out {root, n}, tries [{try, keep_float, n, parent_top1, top1, drop_points, drop_ci95,
    float_only, int8_only, p_value, p50_ms, parent_p50_ms, speedup, speedup_ci95, sha256, path, worst}],
    chosen
    (the try made the card), met."""
    from zoo.files import write_json_atomic
    from zoo.measure import latency
    from zoo.measure.doctor import keepable, layer_errors, top1_hits, worst_first
    from zoo.measure.quantize import accuracy_against_float, input_name
    from zoo.measure.runtimes import encode

    emit = progress or (lambda event: None)
    if max_drop is not None and (held is None or not len(held)):
        raise DatasetError("--max-drop measures the drop on held-out images, and none are left",
                           "Give --data DIR with images that did not calibrate the card")
    path = float_model(card, mirrors=mirrors)
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])
    decoded = calibration_values(preprocessor, calibration)
    name, channels_first = input_name(path), card["input"]["layout"] == "NCHW"

    def feeds():
        for values in decoded[:images]:
            yield {name: encode(preprocessor.normalise(values, channels_first), card["input"])[None]}

    def attempt(keep):
        record = quantize_file(card, path, calibration, method=method, per_channel=per_channel, format=format,
                               keep_float=keep, force=force, values=lambda: decoded)
        return record, layer_errors(record["prepared"], record["path"], feeds())["layers"]

    emit({"event": "note", "message": f"{card['id']}: quantizing, then comparing {min(images, len(decoded))} "
                                      "calibration images layer by layer ..."})
    record, layers = attempt(())
    first = {"record": record, "layers": layers}
    tries, keep = [], []
    if max_drop is not None:
        float_hits = top1_hits(card, path, held)
        while True:
            v = accuracy_against_float(card["id"], float_hits, top1_hits(card, record["path"], held))
            timed = latency.bench_models([latency.Timed({"id": f"{card['id']}+int8"}, Path(record["path"]),
                                                        precision=record["options"]["activations"]),
                                          latency.Timed(card, path)], threads=threads, iters=iters, warmup=10)
            for result in timed:
                if isinstance(result, BaseException):
                    raise result
            speed = latency.speed_against_float(card["id"], *timed)
            remaining = keepable(layers, keep)
            tries.append({"try": len(tries), "keep_float": list(keep), **{k: v[k] for k in (
                "n", "parent_top1", "top1", "drop_points", "drop_ci95", "float_only", "int8_only", "p_value")},
                **{k: speed[k] for k in ("p50_ms", "parent_p50_ms", "speedup", "speedup_ci95")},
                "sha256": record["sha256"], "path": record["path"], "record": record,
                "worst": [{k: r[k] for k in ("node", "what", "lost_db")} for r in remaining[:3]]})
            emit({"event": "note", "message": f"try {len(tries) - 1}: {len(keep)} layer(s) kept in float: drop "
                                              f"{v['drop_points']:+.2f} points, {speed['speedup']:.2f}x float's speed"})
            if v["drop_points"] <= max_drop or len(tries) >= MAX_TRIES or not remaining:
                break
            keep = keep + [r["node"] for r in remaining[:max(1, len(keep))]]
            record, layers = attempt(keep)
        fits = [t for t in tries if t["drop_points"] <= max_drop]
        best = fits[0] if fits else min(tries, key=lambda t: (t["drop_points"], -t["speedup"]))
        record = best["record"]
    derived = derive_int8_card(card, record, run_sha256(path), root=calibration.root)
    report = {"parent": card["id"], "id": derived["id"], "card_path": str(derived_cards.path_of(derived["id"])),
              "sha256": record["sha256"], "options": record["options"], "images": min(images, len(decoded)),
              "layers": worst_first(first["layers"]), "max_drop": max_drop,
              "held_out": {"root": str(held.root), "n": len(held)} if max_drop is not None else None,
              "tries": [{k: v for k, v in t.items() if k != "record"} for t in tries],
              "chosen": best["try"] if tries else None,
              "met": (best["drop_points"] <= max_drop) if tries else None, "quantize": record}
    write_json_atomic(Path(record["path"]).parent / "doctor.json", report)
    return report
