"""The metrics zoo ranks on: one table that the CLI, the ranking, the plots and `compare --measure` read.

Column names carry their units: top1_pct, top5_pct, params_m (millions), macs_m (millions of multiply-accumulates,
normalised whatever the source's FLOPs convention), flops_g (10^9 FLOPs counted as 2 x MACs), size_mb (10^6 bytes
on disk), latency_ms (per batch), fps (images/s).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    column: str            # the ranked column of a compare table
    higher_is_better: bool
    axis: str              # its axis title in a plot
    measured_by: str | None = None  # the run kind that measures it (eval, bench); None: counted or claimed


METRICS = {m.name: m for m in (
    Metric("accuracy", "top1_pct", True, "ImageNet top-1 (%)", "eval"),
    Metric("top5", "top5_pct", True, "ImageNet top-5 (%)", "eval"),
    Metric("latency", "latency_ms", False, "latency per batch (ms)", "bench"),
    Metric("fps", "fps", True, "throughput (images per second)", "bench"),
    Metric("macs", "macs_m", False, "multiply-accumulates per image (millions)"),
    Metric("flops", "flops_g", False, "FLOPs per image (billions, 2 × MACs)"),
    Metric("params", "params_m", False, "parameters (millions)"),
    Metric("storage", "size_mb", False, "the card's file size on disk (MB)"),
)}
ALIASES = {"size": "storage"}  # the older name of storage
ACCURACY_METRICS = tuple(name for name, m in METRICS.items() if m.measured_by == "eval")
SPEED_METRICS = tuple(name for name, m in METRICS.items() if m.measured_by == "bench")
NAMES = tuple(METRICS) + tuple(ALIASES)


def metric(name: str) -> Metric:
    """The metric called `name` (or an alias of one); KeyError when there is none."""
    return METRICS[ALIASES.get(name, name)]
