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

from zoo.errors import NothingMeasured, ZooError, reason
from zoo.results import store
from zoo.results.records import Run

Progress = Callable[[dict], None]


def result_of(run: Run) -> dict:
    """A stored run as the result its measurement returned (what `--json` prints for a reused card)."""
    described = {"name": run.runtime, "version": run.runtime_version, "provider": run.provider,
                 "threads": run.threads}
    out = {**run.metrics, "kind": run.kind, "card_id": run.card_id, "run_id": run.id, "device": run.device,
           "precision": run.precision, "runtime": described, "batch": run.batch, "settings": run.settings,
           "artifact": {"file": run.artifact_file, "sha256": run.artifact_sha256}, "machine": run.machine,
           "created_at": run.created_at, "reused": True}
    if run.kind == "eval":
        out.update(dataset=run.dataset, preprocess=run.preprocess, notes=[])
    return out


@dataclass
class Sweep:
    kind: str
    progress: Progress | None = None
    records: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)  # card id -> the exception that skipped or failed it

    def emit(self, event: dict) -> None:
        if self.progress:
            self.progress(event)

    def note(self, message: str) -> None:
        self.emit({"event": "note", "message": message})

    def store(self, run: Run, store_runs: bool, result: dict | None = None) -> Run:
        """Record a finished run (unless store_runs is False); its id goes into `result` too."""
        if store_runs:
            store.record(run)
            if result is not None:
                result["run_id"] = run.id
        return run

    def finish(self, status: str, card_id: str, *, reason: str | None = None, error: BaseException | None = None,
               run: Run | None = None, result: dict | None = None, note: str | None = None) -> None:
        record = {"status": status, "card_id": card_id, "kind": self.kind}
        if error is not None:
            self.errors[card_id] = error
            reason = reason or _reason(error)
        if reason:
            record["reason"] = reason
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
               "records": self.records}
        if not out["measured"] and not out["reused"]:
            if len(self.records) == 1 and isinstance(self.errors.get(self.records[0]["card_id"]), ZooError):
                raise self.errors[self.records[0]["card_id"]]  # one card: its own error, its own exit code
            raise NothingMeasured(f"nothing measured: {len(out['skipped'])} card(s) skipped, "
                                  f"{len(out['failed'])} failed", _reasons(out), summary=out)
        return out


def _reason(error: BaseException) -> str:
    """One short line: a card's reason never runs to hundreds of characters (a long hint is cut)."""
    text = reason(error)
    return text if len(text) <= 240 else text[:237] + "..."


def _reasons(summary: dict) -> str:
    """The hint of a sweep that measured nothing: each card's reason, short, at most five."""
    lines = [f"{r['card_id']}: {r['reason']}" for r in summary["skipped"] + summary["failed"]]
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    return shown or "No card matched"
