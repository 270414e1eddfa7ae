"""Latency of a card's model on this host or on a target board, with the environment that produced it.

What the timer covers: one runtime call on a batch already in memory (ONNX Runtime's
`session.run`, LiteRT's set-tensor/invoke/get-tensor); no decoding or preprocessing. Warm-up
calls are run first and not counted. The run lasts at least `iters` calls and at least
`seconds`. Latency figures are per batch, in milliseconds; fps = batch / mean latency.
"""
from __future__ import annotations

import math
import platform
import resource
import time
from pathlib import Path

from zoo.artifacts.choose import run_sha256
from zoo.artifacts.hashes import file_sha256
from zoo.errors import UsageError
from zoo.measure import machine, targets
from zoo.measure.complexity import inspect_file
from zoo.measure.runtimes import open_runtime

DEFAULT_WARMUP = 10
DEFAULT_ITERS = 100
DEFAULT_SECONDS = 3.0


def latency_stats(latencies_ms: list[float], batch: int) -> dict:
    """p50/p90/p99/mean/std/min/max of per-batch latencies (ms), and throughput in images/s."""
    import numpy as np

    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    mean = float(values.mean())
    return {"p50_ms": round(float(p50), 4), "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(mean, 4), "std_ms": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
            "min_ms": round(float(values.min()), 4), "max_ms": round(float(values.max()), 4),
            "fps": round(batch * 1000.0 / mean, 2), "iterations": int(len(values))}


def conservative_percentile(latencies_ms, percentile: float, confidence: float = 0.99) -> float | None:
    """An upper bound of the `percentile` (0..1) latency that holds with `confidence`, given the sample count:
    MLPerf LoadGen's early-stopping estimate. Of n sorted samples it takes the k-th smallest, k the least
    with P(Binomial(n, percentile) <= k - 1) >= confidence (so that fewer than k samples lie at or below the
    true percentile with probability below 1 - confidence). None when n is too small for any bound."""
    import math

    import numpy as np

    values = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    n = len(values)
    if n == 0 or not 0 < percentile < 1:
        return None
    i = np.arange(n + 1)
    log_pmf = (math.lgamma(n + 1) - np.array([math.lgamma(k + 1) + math.lgamma(n - k + 1) for k in i])
               + i * math.log(percentile) + (n - i) * math.log1p(-percentile))
    cdf = np.cumsum(np.exp(log_pmf))  # cdf[j] = P(X <= j)
    reached = np.nonzero(cdf >= confidence)[0]
    k = int(reached[0]) + 1 if len(reached) else n + 1  # the k-th smallest sample, 1-based
    return round(float(values[k - 1]), 4) if k <= n else None


def time_runtime(runtime, batch_tensor, *, warmup: int, iters: int, seconds: float) -> list[float]:
    """Per-call latencies in ms of runtime.run(batch_tensor), after `warmup` uncounted calls."""
    run = runtime.run
    for _ in range(warmup):
        run(batch_tensor)
    latencies, deadline = [], time.perf_counter() + seconds
    perf_counter = time.perf_counter
    while len(latencies) < iters or perf_counter() < deadline:
        start = perf_counter()
        run(batch_tensor)
        latencies.append((perf_counter() - start) * 1000.0)
    return latencies


def random_input(runtime, batch: int):
    """A fixed-seed tensor of the model's input shape and dtype (batch in the first dimension)."""
    import numpy as np

    shape = [batch] + [d if d else 1 for d in runtime.input_shape[1:]]
    rng = np.random.default_rng(0)
    if runtime.input_dtype in ("uint8", "int8"):
        info = np.iinfo(runtime.input_dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=runtime.input_dtype)
    return rng.random(shape, dtype=np.float32).astype(runtime.input_dtype)


def input_bytes(runtime) -> int:
    """Bytes of one image's input tensor (dynamic dimensions counted as 1)."""
    import numpy as np

    dims = [d if isinstance(d, int) and d > 0 else 1 for d in runtime.input_shape[1:]]
    return int(np.prod(dims, dtype=np.int64)) * np.dtype(runtime.input_dtype).itemsize


def _counted(model_path: Path) -> dict:
    """MACs and params counted from the graph, and the file size, recorded with each run."""
    try:
        info = inspect_file(model_path)
    except UsageError:  # a format zoo cannot read (an RDK .bin): size only
        return {"macs": None, "params": None, "size_bytes": model_path.stat().st_size}
    return {"macs": info["macs"], "params": info["params"], "size_bytes": info["size_bytes"]}


def bench_file(card: dict, model_path: Path, *, artifact: dict | None = None, synthetic: bool = False,
               target: dict | None = None, provider: str | None = None, threads: int | None = None, batch: int = 1,
               warmup: int = DEFAULT_WARMUP, iters: int | None = None, seconds: float | None = None,
               cpus: list[int] | None = None) -> dict:
    """Time one model file of `card` on this host, or on `target` (a target's configuration).

    The run lasts `iters` calls or `seconds`, whichever is given (both: whichever ends later);
    neither: at least DEFAULT_ITERS calls and DEFAULT_SECONDS seconds.
    """

    if iters is None and seconds is None:
        iters, seconds = DEFAULT_ITERS, DEFAULT_SECONDS
    iters, seconds = (1 if iters is None else iters), (0.0 if seconds is None else seconds)
    if batch < 1 or warmup < 0 or iters < 1 or not 0 <= seconds < math.inf:
        raise UsageError("--batch and --iters must be at least 1, --warmup and --seconds at least 0 (and finite)")
    machine.check_threads(threads, "--threads", on_target=bool(target))
    model_sha256 = file_sha256(model_path)  # what is copied to a board is keyed by its own bytes
    if cpus and target:
        raise UsageError("--cpus pins the timed loop on this host; leave it out with --target")
    if target:
        result = _bench_on_target(target, model_path, model_sha256, threads=threads, batch=batch, warmup=warmup,
                                  iters=iters, seconds=seconds)
    else:
        result = _bench_on_host(model_path, provider=provider, threads=threads, batch=batch, warmup=warmup,
                                iters=iters, seconds=seconds, cpus=cpus)
    result.update(_counted(model_path))
    result.update({
        "kind": "bench", "card_id": card["id"], "synthetic_weights": synthetic,
        "artifact": {"file": artifact["file"] if artifact else model_path.name, "path": str(model_path),
                     "sha256": run_sha256(model_path, model_sha256),
                     "model_sha256": model_sha256},
        "batch": batch, "warmup": warmup,
        "claims": [c for c in card.get("claims", []) if c["metric"] in ("latency_ms", "fps")],
    })
    return result


PAIR_ROUNDS = 4


def bench_pair(first: tuple, second: tuple, *, rounds: int = PAIR_ROUNDS, iters: int | None = None,
               seconds: float | None = None, **options) -> tuple[dict, dict]:
    """Time two models of (card, model file, artifact) in interleaved rounds, the order alternating, so drift on
    a shared machine (another job, the clock, the heat) hits both alike; same threads, provider, batch, target.

    Each round times `iters` / rounds calls and `seconds` / rounds; each model's result is its first round's
    with the latency figures over the samples of every round (`rounds` says how many)."""
    if iters is None and seconds is None:
        iters, seconds = DEFAULT_ITERS, DEFAULT_SECONDS
    share = {"iters": math.ceil(iters / rounds) if iters else None, "seconds": seconds / rounds if seconds else None}
    timed: tuple[list, list] = ([], [])
    for number in range(rounds):
        for k in ((0, 1) if number % 2 == 0 else (1, 0)):
            card, path, artifact = (first, second)[k]
            timed[k].append(bench_file(card, path, artifact=artifact, **share, **options))
    return _merged(timed[0]), _merged(timed[1])


def _merged(results: list[dict]) -> dict:
    """One result from the rounds of one model: latency figures over every sample (a board reporting only
    summary figures: the median of each round's), the highest memory peak."""
    import statistics

    merged = dict(results[0])
    if all(r.get("samples_ms") for r in results):
        samples = [x for r in results for x in r["samples_ms"]]
        merged.update(latency_stats(samples, merged["batch"]), samples_ms=samples,
                      round_sizes=[len(r["samples_ms"]) for r in results],
                      p90_conservative_ms=conservative_percentile(samples, 0.90),
                      p99_conservative_ms=conservative_percentile(samples, 0.99))
    else:
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "fps"):
            if all(r.get(key) is not None for r in results):
                merged[key] = statistics.median(r[key] for r in results)
        merged["iterations"] = sum(r.get("iterations") or 0 for r in results) or None
    for key in ("peak_rss_bytes", "model_peak_bytes"):
        if all(r.get(key) is not None for r in results):
            merged[key] = max(r[key] for r in results)
    merged["rounds"] = len(results)
    return merged


def versus_float(parent_id: str, int8: dict, float_: dict) -> dict:
    """An int8 model's latency against its float parent's, timed in the same run (bench_pair): both p50s, the
    int8/float ratio and the speed-up (float / int8) with its 95% interval over the rounds, said plainly
    (zoo.measure.int8_verdict)."""
    from zoo.measure import int8_verdict
    from zoo.measure.int8_format import host_int8

    p50, parent_p50 = int8["p50_ms"] or int8["mean_ms"], float_["p50_ms"] or float_["mean_ms"]
    ratio = p50 / parent_p50
    where = "on this host" if not int8.get("target") else f"on {int8['device']}"
    interval = int8_verdict.speedup_interval(int8_verdict.rounds_of(int8), int8_verdict.rounds_of(float_)) \
        if int8.get("samples_ms") and float_.get("samples_ms") else None
    verdict = int8_verdict.speed_sentence(1 / ratio, interval, where=where,
                                          host=None if int8.get("target") else host_int8())
    return {"parent": parent_id, "p50_ms": p50, "parent_p50_ms": parent_p50, "ratio": round(ratio, 4),
            "speedup": round(1 / ratio, 4), "speedup_ci95": interval, "slower": ratio > 1,
            "rounds": int8.get("rounds"), "verdict": verdict}


def check_cpus(cpus: list[int] | None) -> set[int] | None:
    """The cores this process may run on now, after checking `cpus` are among them (None: no pinning)."""
    import os

    if not cpus:
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise UsageError("--cpus needs a Linux host (os.sched_setaffinity)")
    available = os.sched_getaffinity(0)
    wrong = sorted(set(cpus) - available)
    if wrong:
        raise UsageError(f"--cpus {','.join(map(str, wrong))}: not among this process's cores "
                         f"{','.join(map(str, sorted(available)))}")
    return available


def pinned(cpus: list[int] | None):
    """A context that runs its body on `cpus` only (os.sched_setaffinity, this process and the runtime threads
    it starts), restoring the previous set after; a no-op without cpus."""
    import contextlib
    import os

    @contextlib.contextmanager
    def pin():
        available = check_cpus(cpus)
        if available is None:
            yield
            return
        os.sched_setaffinity(0, set(cpus))
        try:
            yield
        finally:
            os.sched_setaffinity(0, available)

    return pin()


def _bench_on_host(model_path: Path, *, provider, threads, batch, warmup, iters, seconds, cpus=None) -> dict:
    with pinned(cpus):  # pinned before the session starts its threads: they inherit the set
        return _bench_pinned(model_path, provider=provider, threads=threads, batch=batch, warmup=warmup,
                             iters=iters, seconds=seconds, cpus=cpus)


def _memory() -> dict[str, int]:
    """This process's resident set now and its peak (bytes), from /proc/self/status (Linux); {} elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM") if key in fields}


def _reset_peak() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM to VmRSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _bench_pinned(model_path: Path, *, provider, threads, batch, warmup, iters, seconds, cpus) -> dict:
    import time

    # The model's own memory: the peak RSS during load and run above the RSS before it (not the process's
    # lifetime peak, which an earlier model or a large import may have set).
    windowed = _reset_peak()
    before = _memory().get("VmRSS")
    started = time.perf_counter()
    runtime = open_runtime(model_path, provider=provider, threads=threads)
    load_ms = (time.perf_counter() - started) * 1000.0
    if runtime.max_batch is not None and batch != runtime.max_batch:
        raise UsageError(f"{model_path.name} takes batch {runtime.max_batch} only, not {batch}",
                         f"Use --batch {runtime.max_batch}")
    machine.check_batch_memory(batch, input_bytes(runtime))
    tensor = random_input(runtime, batch)
    started = time.perf_counter()
    runtime.run(tensor)  # the first inference (allocations, kernel choice), counted apart from the warm loop
    first_ms = (time.perf_counter() - started) * 1000.0
    latencies = time_runtime(runtime, tensor, warmup=max(warmup - 1, 0), iters=iters, seconds=seconds)
    after = _memory()
    env = machine.host()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
    model_peak = after["VmHWM"] - before if windowed and before and "VmHWM" in after else None
    return {**latency_stats(latencies, batch), "peak_rss_bytes": peak, "model_peak_bytes": model_peak,
            "load_ms": round(load_ms, 3), "first_inference_ms": round(first_ms, 3),
            "p90_conservative_ms": conservative_percentile(latencies, 0.90),
            "p99_conservative_ms": conservative_percentile(latencies, 0.99),
            "samples_ms": [round(x, 4) for x in latencies], "cpus": sorted(cpus) if cpus else None,
            "device": env["device"], "target": None,
            "runtime": runtime.describe(), "environment": {**env, **runtime.describe(), "batch": batch}}


def _bench_on_target(target: dict, model_path: Path, sha256: str, *, threads, batch, warmup, iters, seconds) -> dict:
    if target["runtime"] == "rdk-bpu":
        if batch != 1:
            raise UsageError("hrt_model_exec runs batch 1; leave out --batch")
        perf = targets.run_hrt(target, model_path, sha256, threads=threads or 1, frames=max(iters, 1))
        board = machine.board(target["name"], target["ssh"], perf.pop("machine"))
        runtime_info = {"name": "rdk-bpu", "version": perf.get("runtime_version"), "provider": "hrt_model_exec",
                        "threads": perf["threads"]}
        # hrt_model_exec reports the mean only: the percentiles are not published by the tool.
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": perf["mean_ms"], "std_ms": None,
                "min_ms": perf.get("min_ms"), "max_ms": perf.get("max_ms"), "fps": perf["fps"],
                "iterations": perf["frames"], "peak_rss_bytes": None, "device": target["name"],
                "target": target["name"], "runtime": runtime_info, "environment": {**board, **runtime_info, "batch": 1},
                "tool_output": perf}
    raw = targets.run_onnxruntime(target, model_path, sha256, threads=threads or 0, batch=batch, warmup=warmup,
                                  iters=iters, seconds=seconds)
    board = machine.board(target["name"], target["ssh"], raw["machine"])
    runtime_info = {"name": "onnxruntime", "version": raw["runtime_version"], "provider": raw["provider"],
                    "threads": threads}
    samples = raw["latencies_ms"]
    return {**latency_stats(samples, batch), "peak_rss_bytes": raw["peak_rss_bytes"],
            "p90_conservative_ms": conservative_percentile(samples, 0.90),
            "p99_conservative_ms": conservative_percentile(samples, 0.99), "samples_ms": samples,
            "device": target["name"], "target": target["name"], "runtime": runtime_info,
            "environment": {**board, **runtime_info, "batch": batch}}
