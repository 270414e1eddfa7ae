"""`compare --measure`: measure what a comparison lacks (accuracy on these images, latency, each on this host or a
board), by the same sweeps `zoo eval` and `zoo bench` run."""
from __future__ import annotations

from pathlib import Path

from zoo.engine.bench import BenchOptions, bench_sweep
from zoo.engine.eval import EvalOptions, eval_sweep
from zoo.errors import UsageError, ZooError
from zoo.measure import accuracy, machine, targets
from zoo.results import store
from zoo.results.metrics import ACCURACY_METRICS, METRICS, SPEED_METRICS


def measure_missing(entries: list, metric: str, *, data: Path | None, target: str | None, progress,
                    parents: dict | None = None) -> dict | None:
    """Sweep the cards that have no measurement for `metric` yet (on these images; on this host or on
    `target`); None when none lacks one. `parents`: as for eval_sweep and bench_sweep (an int8 card is measured
    beside its float parent). A sweep in which every lacking card was skipped or failed returns its summary
    (each card's reason is in it), never an error: the comparison ranks what there is."""
    if metric in ACCURACY_METRICS:
        if data is None:
            raise UsageError(f"--measure with --metric {metric} evaluates on your images: give --data DIR")
        dataset = accuracy.load_data(data)
        fingerprint = dataset.fingerprint()
        config = targets.get(target) if target else None
        have = {r.card_id for r in store.list_runs(kind="eval") if r.dataset_fingerprint == fingerprint
                and (r.device == target if target else (r.machine or {}).get("target") is None)}
        run = lambda todo: eval_sweep(todo, dataset, EvalOptions(target=config), progress=progress,  # noqa: E731
                                      parents=parents)
    elif metric in SPEED_METRICS:
        config = targets.get(target) if target else None
        here = machine.host()["fingerprint"]
        have = {r.card_id for r in store.list_runs(kind="bench")
                if (r.device == target if target else r.machine_fingerprint == here)}
        run = lambda todo: bench_sweep(todo, BenchOptions(target=config), progress=progress,  # noqa: E731
                                       parents=parents)
    else:
        measured = ", ".join(m for m in METRICS if m in ACCURACY_METRICS + SPEED_METRICS)
        raise UsageError(f"--measure applies to {measured}, not {metric}",
                         "macs, params and storage are counted from the files, not measured")
    todo = [e.card for e in entries if e.id not in have]
    if not todo:
        return None
    try:
        return run(todo)
    except ZooError as nothing:  # NothingMeasured, or the one lacking card's own error: the summary says why
        if getattr(nothing, "summary", None) is None:
            raise
        return nothing.summary
