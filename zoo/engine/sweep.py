"""What every sweep shares (eval, bench): the per-card records, the progress events, storing runs, the summary.

A sweep reports through `progress(event)`: {"event": "note", message}, {"event": "start", kind, cards, units}
(units: images x cards to evaluate, or model-rounds to time), {"event": "advance", done, units}, and
{"event": "card", ...} once per card with its record. It returns the summary: {kind, cards, measured, reused,
skipped, failed, records}; measured/reused are card ids, skipped/failed are {card_id, reason}. Each run is
stored in its own transaction as soon as it is done, so Ctrl-C leaves the store holding only whole runs, and
running the sweep again measures only what is missing.

Card record: {status: measured|reused|skipped|failed, card_id, kind, reason (skipped/failed), run_id, and for
measured/reused the headline figures: top1, top5, n, dataset, calibration_excluded (eval) or p50_ms, p50_ci95,
fps, device, runtime, precision, synthetic_weights (bench); accuracy_vs_float / speed_vs_float for a quantized
card measured beside its float parent}; every measured or reused card also carries the whole result under
`result` (a reused run's is rebuilt from the stored record: result_of).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from zoo.errors import NothingMeasured, RunNotStored, ZooError, brief
from zoo.results import store
from zoo.results.records import Run

Progress = Callable[[dict], None]
LITERT_MISSING = ("note: LiteRT is not installed here (ai-edge-litert has no wheel for this platform, or it was left "
                  "out): .tflite models run as their QDQ ONNX conversion on ONNX Runtime, whose top-1 can differ from "
                  "LiteRT's by about a point; each line names the runtime that ran")


# Figures a measurement leaves out when they do not apply, stored as null: left out of a reused result too.
ABSENT_WHEN_NULL = ("same_file_as", "speed_vs_float", "accuracy_vs_float", "calibration_excluded", "engine")


def result_of(run: Run, card: dict | None = None, path=None) -> dict:
    """A stored run as the result its measurement returned (what `--json` prints for a reused card): the same
    keys, from the record, plus `reused` and `created_at`; `card` and `path` (its model file here) fill in what
    the record does not keep (the card's claims and input, the artifact's path)."""
    described = {"name": run.runtime, "version": run.runtime_version, "provider": run.provider,
                 "threads": run.threads}
    metrics = {k: v for k, v in run.metrics.items() if v is not None or k not in ABSENT_WHEN_NULL}
    out = {**metrics, "kind": run.kind, "card_id": run.card_id, "run_id": run.id, "device": run.device,
           "precision": run.precision, "runtime": described, "batch": run.batch, "settings": run.settings,
           "artifact": {"file": run.artifact_file, "sha256": run.artifact_sha256,
                        **({"path": str(path)} if path is not None else {})},
           "created_at": run.created_at, "reused": True}
    wanted = ("top1", "top5") if run.kind == "eval" else ("latency_ms", "fps")
    out["claims"] = [c for c in (card or {}).get("claims", []) if c["metric"] in wanted]
    if run.kind == "eval":
        out.update(dataset=run.dataset, preprocess=run.preprocess, notes=[], machine=run.machine)
        if card:
            out["input"] = card["input"]
    else:  # a bench result calls the machine its environment
        out.update(environment=run.machine, target=(run.settings or {}).get("target"))
    return out


@dataclass
class Sweep:
    kind: str
    progress: Progress | None = None
    records: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)  # card id -> the exception that skipped or failed it
    said_litert: bool = False

    def emit(self, event: dict) -> None:
        if self.progress:
            self.progress(event)

    def note(self, message: str) -> None:
        self.emit({"event": "note", "message": message})

    def runs_as_onnx(self, artifact: dict | None, runtime: str | None) -> None:
        """Say once per sweep that a .tflite model runs as its ONNX conversion because LiteRT is missing here."""
        if artifact and artifact.get("runs_as") == "onnx" and runtime is None and not self.said_litert:
            self.said_litert = True
            self.note(LITERT_MISSING)

    def store(self, run: Run, store_runs: bool, result: dict | None = None) -> Run:
        """Record a finished run (unless store_runs is False); its id goes into `result` too. A run the store
        cannot take (full, locked, not writable) is kept to be stored later, and a note says where."""
        if store_runs:
            try:
                store.record(run)
            except RunNotStored as kept:
                self.note(f"{run.card_id}: {kept.one_line()}")
                if result is not None:
                    result["kept_in"] = kept.kept
            if result is not None:
                result["run_id"] = run.id
        return run

    def finish(self, status: str, card_id: str, *, reason: str | None = None, error: BaseException | None = None,
               run: Run | None = None, result: dict | None = None, note: str | None = None) -> None:
        record = {"status": status, "card_id": card_id, "kind": self.kind}
        if error is not None:
            self.errors[card_id] = error
            reason = reason or _reason(error)
            if isinstance(error, ZooError) and error.hint:  # said once per sweep, in its summary
                record["hint"] = error.hint
        if reason:
            record["reason"] = brief(reason, 240)
        if note:
            record["note"] = note
        if run is not None:
            record["run_id"] = run.id
            if self.kind == "eval":
                record.update(top1=run.top1, top5=run.top5, n=run.n_images, runtime=run.runtime,
                              precision=run.precision, device=run.device,
                              dataset=(run.dataset or {}).get("path"))
                if run.metrics.get("calibration_excluded"):
                    record["calibration_excluded"] = run.metrics["calibration_excluded"]
                if run.metrics.get("accuracy_vs_float"):
                    record["accuracy_vs_float"] = run.metrics["accuracy_vs_float"]
            else:
                record.update(p50_ms=run.latency_ms, p50_ci95=run.metrics.get("p50_ci95"), fps=run.fps,
                              synthetic_weights=run.synthetic_weights, device=run.device, runtime=run.runtime,
                              precision=run.precision, threads=run.threads, provider=run.provider)
                for key in ("speed_vs_float", "same_file_as"):
                    if run.metrics.get(key):
                        record[key] = run.metrics[key]
            record["result"] = result if result is not None else result_of(run)
        self.records.append(record)
        self.emit({"event": "card", **record})

    def summary(self) -> dict:
        def of(status):
            return [r for r in self.records if r["status"] == status]

        out = {"kind": self.kind, "cards": len(self.records),
               "measured": [r["card_id"] for r in of("measured")], "reused": [r["card_id"] for r in of("reused")],
               "skipped": [{"card_id": r["card_id"], "reason": r["reason"]} for r in of("skipped")],
               "failed": [{"card_id": r["card_id"], "reason": r["reason"]} for r in of("failed")],
               "hints": _hints(self.records), "records": self.records}
        if not out["measured"] and not out["reused"]:
            if len(self.records) == 1 and isinstance(self.errors.get(self.records[0]["card_id"]), ZooError):
                error = self.errors[self.records[0]["card_id"]]
                error.summary = out  # for a caller that goes on without the card (compare --measure)
                raise error  # one card: its own error, its own exit code
            raise NothingMeasured(f"nothing measured: {len(out['skipped'])} card(s) skipped, "
                                  f"{len(out['failed'])} failed", _reasons(out), summary=out)
        return out


def _reason(error: BaseException) -> str:
    """A card's reason: the error's message (its hint, the same for many cards, goes to `hint`), else the
    exception's type and text; cut to one short line by finish()."""
    return error.message if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"


def _hints(records: list) -> list[dict]:
    """What to do about the cards skipped or failed, each hint once: {hint, cards} (their ids)."""
    hints: dict[str, list] = {}
    for r in records:
        if r.get("hint") and r["status"] in ("skipped", "failed"):
            hints.setdefault(r["hint"], []).append(r["card_id"])
    return [{"hint": hint, "cards": cards} for hint, cards in hints.items()]


def _reasons(summary: dict) -> str:
    """The hint of a sweep that measured nothing: each card's reason, short, at most five."""
    lines = [f"{r['card_id']}: {r['reason']}" for r in summary["skipped"] + summary["failed"]]
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    return shown or "No card matched"
