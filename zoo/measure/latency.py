"""Latency of model files on this host or on a target board, timed together in interleaved rounds.

What the timer covers: one runtime call on a batch already in memory (ONNX Runtime's `session.run`, LiteRT's
set-tensor/invoke/get-tensor); no decoding or preprocessing. Warm-up calls are run first and not counted.

Models measured together are timed in rounds: each round times every model once, in a new random order, for
its share of the calls and seconds. Drift on a shared machine (another job, the clock, the heat) then hits every
model alike, and the spread of each model's round medians gives its p50 a distribution-free 95% interval
(`p50_ci95`): two models whose intervals overlap cannot be told apart. Latency figures are per batch, in
milliseconds; fps = batch / mean latency. What could drift during the run (load, clocks, temperatures) is read
before and after (`conditions`), and a run where it moved says so.
"""
from __future__ import annotations

import math
import platform
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from zoo.artifacts.hashes import file_sha256
from zoo.artifacts.local import run_sha256
from zoo.errors import UsageError
from zoo.measure import machine, targets
from zoo.measure.complexity import counted
from zoo.measure.runtimes import is_cpu, open_runtime

DEFAULT_WARMUP = 10
DEFAULT_ITERS = 100
DEFAULT_SECONDS = 3.0
DEFAULT_ROUNDS = 10       # ten round medians give a 97.9% interval for the p50 without the extreme two
MEMORY_FLOOR = 2 * 2**30  # below this much available memory, models open from earlier rounds are closed first
# MLPerf LoadGen's early-stopping minimum query counts at 99% confidence: fewer samples cannot bound that
# percentile at all. A tool that reports no samples (hrt_model_exec) is still run at least this long.
EARLY_STOPPING_MINIMUM = {0.90: 64, 0.99: 662}
BOARD_OPEN = 4            # runners a board holds open at once (each its own process, model and memory)


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


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """A distribution-free interval for the median of whatever produced `values` (here: round medians), from
    order statistics: the k-th smallest to the k-th largest, k the largest with coverage
    1 - 2 P(Binomial(n, 1/2) <= k - 1) >= confidence. Returns (low, high, coverage); None for fewer than 6
    values (five cannot reach 95%: even min..max covers only 93.8%)."""
    xs = sorted(values)
    n = len(xs)
    best = None
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * sum(math.comb(n, j) for j in range(k)) / 2 ** n
        if coverage < confidence:
            break
        best = (xs[k - 1], xs[n - k], coverage)
    return best


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


@dataclass
class Timed:
    """One model file to time: the card it is timed for, the artifact it came from (None: synthetic weights)."""

    card: dict
    path: Path
    artifact: dict | None = None
    synthetic: bool = False
    precision: str = "fp32"
    runtime: str | None = None                     # on a board: the runner's (onnxruntime, litert); here: by suffix
    samples: list = field(default_factory=list)    # per round, the latencies of that round
    opened: object = None                          # _HostModel while open
    first: dict = field(default_factory=dict)      # load_ms, first_inference_ms, model_peak_bytes, runtime, ...
    error: BaseException | None = None             # why it could not be timed (the others go on)


class _HostModel:
    """A model file opened on this host for timing: its runtime, its input, and what opening it cost."""

    def __init__(self, path: Path, *, provider, threads, batch: int):
        windowed = _reset_peak()
        before = _memory().get("VmRSS")
        started = time.perf_counter()
        self.runtime = open_runtime(path, provider=provider, threads=threads)
        load_ms = (time.perf_counter() - started) * 1000.0
        if self.runtime.max_batch is not None and batch != self.runtime.max_batch:
            raise UsageError(f"{path.name} takes batch {self.runtime.max_batch} only, not {batch}",
                             f"Use --batch {self.runtime.max_batch}")
        machine.check_batch_memory(batch, input_bytes(self.runtime))
        self.tensor = random_input(self.runtime, batch)
        started = time.perf_counter()
        self.runtime.run(self.tensor)  # the first inference (allocations, kernel choice), apart from the warm loop
        first_ms = (time.perf_counter() - started) * 1000.0
        after = _memory()
        self.opening = {"load_ms": round(load_ms, 3), "first_inference_ms": round(first_ms, 3),
                        "model_peak_bytes": after["VmHWM"] - before if windowed and before and "VmHWM" in after
                        else None}


def bench_file(card: dict, model_path: Path, *, artifact: dict | None = None, synthetic: bool = False,
               **options) -> dict:
    """Time one model file of `card` on this host or on `target` (see bench_models)."""
    precision = "fp32" if synthetic or artifact is None else artifact.get("precision") or "fp32"
    result = bench_models([Timed(card, Path(model_path), artifact, synthetic, precision)], **options)[0]
    if isinstance(result, BaseException):
        raise result
    return result


def bench_models(models: list[Timed], *, target: dict | None = None, provider: str | None = None,
                 threads: int | None = None, batch: int = 1, warmup: int = DEFAULT_WARMUP, iters: int | None = None,
                 seconds: float | None = None, cpus: list[int] | None = None, rounds: int = DEFAULT_ROUNDS,
                 seed: int | None = None, cooldown: float = 0.0, progress=None) -> list[dict]:
    """Time every model in `rounds` interleaved rounds (each round in a new random order; `seed` fixes it), on
    this host or on `target` (a target's configuration), with the same provider, threads and batch.

    Each model gets at least `iters` calls and `seconds` in all, split evenly over the rounds; neither given:
    DEFAULT_ITERS calls and DEFAULT_SECONDS. On this host a model stays open from round to round (its opening
    and first inference are measured once, apart), unless memory runs short. `progress(done, total)` counts
    model-rounds. `cooldown`: seconds of idle before each model's round but the first (a board that heats up
    gets to cool down). Returns one result per model, in order (the keys in README's `zoo bench --json`), or the
    exception that stopped that model (it is left out of later rounds; the others go on).

    On a board, each model is held open by its runner from round to round too (up to BOARD_OPEN at once), and the
    board's load, clocks and temperatures are read there before and after (`conditions`)."""
    if iters is None and seconds is None:
        iters, seconds = DEFAULT_ITERS, DEFAULT_SECONDS
    iters, seconds = (1 if iters is None else iters), (0.0 if seconds is None else seconds)
    if batch < 1 or warmup < 0 or iters < 1 or not 0 <= seconds < math.inf or rounds < 1:
        raise UsageError("--batch and --iters must be at least 1, --warmup and --seconds at least 0 (and finite)")
    machine.check_threads(threads, "--threads", on_target=bool(target))
    if not seconds:
        rounds = min(rounds, iters)  # every round times at least one call
    order = random.Random(seed)

    def share(number: int) -> dict:  # this round's part of the calls (exactly `iters` in all) and seconds
        return {"iters": iters // rounds + (number < iters % rounds), "seconds": seconds / rounds}

    hashes = {id(m): file_sha256(m.path) for m in models}  # what is copied to a board is keyed by its own bytes
    if not 0 <= cooldown < math.inf:
        raise UsageError(f"--cooldown must be 0 or more seconds, got {cooldown}")
    before = _conditions(target, provider)
    done = 0
    try:
        for number in range(rounds):
            for model in order.sample(models, len(models)):
                done += 1
                if model.error is not None:
                    continue
                if cooldown and done > 1:
                    time.sleep(cooldown)
                try:
                    if target:
                        model.samples.append(_round_on_target(model, models, target, hashes[id(model)],
                                                              threads=threads, batch=batch, rounds=rounds,
                                                              warmup=warmup if number == 0 else min(warmup, 2),
                                                              **share(number)))
                    else:
                        model.samples.append(_round_on_host(model, models, provider=provider, threads=threads,
                                                            batch=batch, warmup=warmup if number == 0 else
                                                            min(warmup, 2), cpus=cpus, **share(number)))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # this model cannot run: the others go on
                    model.error, model.opened = error, None
                if progress:
                    progress(done, rounds * len(models))
    finally:
        for model in models:
            _close(model)
    before, after = before or {}, _conditions(target, provider) or {}
    if target and "own_s" in before and "own_s" in after:
        # the board's readings come from short-lived processes: zoo's own CPU time there is its runners'
        after = {**after, "own_s": before["own_s"] + sum(m.first.get("runner_cpu_s") or 0.0 for m in models)}
    conditions = machine.drift(before, after)
    return [m.error if m.error is not None else
            _result(m, hashes[id(m)], target=target, batch=batch, warmup=warmup, cpus=cpus, conditions=conditions)
            for m in models]


def _conditions(target: dict | None, provider: str | None) -> dict | None:
    """What could drift, read where the models run: this host, or the board (by its runner), with each CPU's clock
    and each thermal zone (machine.clocks_and_heat)."""
    if target:
        return targets.board_conditions(target)
    return machine.conditions(provider=None if is_cpu(provider) else provider)


def _close(model: Timed) -> None:
    """Close a model held open between rounds; a board's runner reports its peak memory as it exits."""
    opened, model.opened = model.opened, None
    if hasattr(opened, "close"):
        opened.close()
        model.first["peak_rss_bytes"] = max(opened.peak_rss_bytes or 0, model.first.get("peak_rss_bytes") or 0) or None
        model.first["runner_cpu_s"] = (model.first.get("runner_cpu_s") or 0.0) + opened.cpu_s


def _round_on_host(model: Timed, models: list[Timed], *, provider, threads, batch, warmup, iters, seconds,
                   cpus) -> list[float]:
    with pinned(cpus):  # pinned before the session starts its threads: they inherit the set
        if model.opened is None:
            available = machine.available_memory()
            if available is not None and available < MEMORY_FLOOR:
                for other in models:  # reopened in a later round: memory before speed
                    other.opened = None
            model.opened = _HostModel(model.path, provider=provider, threads=threads, batch=batch)
            if not model.first:
                model.first = {**model.opened.opening, "runtime": model.opened.runtime.describe()}
        runtime, tensor = model.opened.runtime, model.opened.tensor
        return time_runtime(runtime, tensor, warmup=warmup, iters=iters, seconds=seconds)


def _result(model: Timed, model_sha256: str, *, target, batch, warmup, cpus, conditions) -> dict:
    """One model's result from its rounds: figures over every sample, the p50's interval over round medians."""
    import statistics

    rounds = [r for r in model.samples if r]
    if target:
        result = _merged_board(rounds, batch, model.first)
    else:
        samples = [x for r in rounds for x in r]
        runtime = model.first["runtime"]
        accelerator = runtime.get("accelerator")
        host = machine.host()
        result = {**latency_stats(samples, batch), "samples_ms": [round(x, 4) for x in samples],
                  "p90_conservative_ms": conservative_percentile(samples, 0.90),
                  "p99_conservative_ms": conservative_percentile(samples, 0.99),
                  "load_ms": model.first["load_ms"], "first_inference_ms": model.first["first_inference_ms"],
                  "model_peak_bytes": model.first["model_peak_bytes"], "peak_rss_bytes": _peak_rss(),
                  "cpus": sorted(cpus) if cpus else None,
                  "device": accelerator["device"] if accelerator else host["device"], "target": None,
                  "runtime": runtime, "environment": {**host, **runtime, "batch": batch}}
        round_p50s = [statistics.median(r) for r in rounds]
        result["round_p50_ms"] = [round(x, 4) for x in round_p50s]
    interval = median_interval(result["round_p50_ms"]) if result.get("round_p50_ms") else None
    if interval:
        low, high, coverage = interval
        p50 = result["p50_ms"] or result["mean_ms"]
        result["p50_ci95"] = [round(min(low, p50), 4), round(max(high, p50), 4)]
        result["p50_ci_coverage"] = round(coverage, 4)
    else:
        result["p50_ci95"], result["p50_ci_coverage"] = None, None
    result.update(counted(model.path))
    result.update({
        "kind": "bench", "card_id": model.card["id"], "synthetic_weights": model.synthetic,
        "precision": model.precision,
        "artifact": {"file": model.artifact["file"] if model.artifact else model.path.name, "path": str(model.path),
                     "sha256": run_sha256(model.path, model_sha256), "model_sha256": model_sha256},
        "batch": batch, "warmup": warmup, "rounds": len(rounds), "conditions": conditions,
        "claims": [c for c in model.card.get("claims", []) if c["metric"] in ("latency_ms", "fps")],
    })
    return result


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)


def speed_against_float(parent_id: str, int8: dict, float_: dict) -> dict:
    """An int8 model's latency against its float parent's, timed in the same rounds: both p50s, the int8/float
    ratio and the speed-up (float / int8) with its 95% interval, said plainly with the CPU's int8 instructions
    (zoo.measure.int8_verdict). The interval: each round's float p50 / int8 p50 (the two ran in that round), the
    distribution-free interval of their median (median_interval), widened to hold the overall speed-up."""
    from zoo.measure import int8_verdict
    from zoo.measure.int8_format import host_int8

    p50, parent_p50 = int8["p50_ms"] or int8["mean_ms"], float_["p50_ms"] or float_["mean_ms"]
    ratio = p50 / parent_p50
    where = "on this host" if not int8.get("target") else f"on {int8['device']}"
    interval = median_interval(int8_verdict.round_ratios(int8.get("round_p50_ms"), float_.get("round_p50_ms")))
    speedup = 1 / ratio
    ci = [round(min(interval[0], speedup), 4), round(max(interval[1], speedup), 4)] if interval else None
    verdict = int8_verdict.speed_sentence(speedup, ci, where=where, host=None if int8.get("target") else host_int8())
    return {"parent": parent_id, "p50_ms": p50, "parent_p50_ms": parent_p50, "ratio": round(ratio, 4),
            "speedup": round(speedup, 4), "speedup_ci95": ci, "slower": ratio > 1, "rounds": int8.get("rounds"),
            "verdict": verdict}


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


# ---------------------------------------------------------------- a target board

def _round_on_target(model: Timed, models: list[Timed], target: dict, sha256: str, *, threads, batch, warmup,
                     iters, seconds, rounds) -> dict:
    """One round of one model on the board: its runner's figures (and samples where the tool gives them)."""
    if target["runtime"] == "rdk-bpu":
        return _round_on_rdk(model, target, sha256, threads=threads or 1, batch=batch, warmup=warmup, iters=iters,
                             seconds=seconds, rounds=rounds)
    from zoo.measure.targets.session import BoardRuntime

    if model.opened is None:
        held = [m for m in models if m.opened is not None]
        if len(held) >= BOARD_OPEN:  # reopened in a later round: the board's memory before speed
            for other in held:
                _close(other)
        model.opened = BoardRuntime(target, model.path, sha256, runtime=model.runtime or "onnxruntime",
                                    threads=threads)
        hello = model.opened.hello
        model.first.setdefault("load_ms", hello.get("load_ms"))
        model.first.setdefault("rss_before_load_bytes", hello.get("rss_before_load_bytes"))
    board = model.opened
    timed = board.time(batch=batch, warmup=warmup, iters=iters, seconds=seconds)
    if timed.get("first_inference_ms") is not None:
        model.first.setdefault("first_inference_ms", round(timed["first_inference_ms"], 3))
    model.first["peak_rss_bytes"] = max(board.peak_rss_bytes or 0, model.first.get("peak_rss_bytes") or 0) or None
    machine_facts = machine.board(target["name"], target["ssh"], board.machine)
    runtime_info = {"name": board.name, "version": board.version, "provider": board.provider, "threads": threads}
    return {"samples_ms": timed["latencies_ms"], "peak_rss_bytes": model.first["peak_rss_bytes"],
            "runtime": runtime_info, "environment": {**machine_facts, **runtime_info, "batch": batch}}


def _round_on_rdk(model: Timed, target: dict, sha256: str, *, threads, batch, warmup, iters, seconds,
                  rounds) -> dict:
    """One round of `hrt_model_exec perf` on an RDK board. Its default 200 frames last ~0.2 s: the frame count is
    raised so the whole run meets the same minimums as everywhere else (its seconds, its calls, and MLPerf's
    early-stopping minimum for a p99), sized from a first short run that also warms the BPU up."""
    if batch != 1:
        raise UsageError("hrt_model_exec runs batch 1; leave out --batch")
    if "probe_fps" not in model.first:
        probe = targets.run_hrt(target, model.path, sha256, threads=threads, frames=max(warmup, 50))
        model.first["probe_fps"] = probe["fps"]
    frames = max(iters, math.ceil(EARLY_STOPPING_MINIMUM[0.99] / rounds),
                 math.ceil(seconds * model.first["probe_fps"]))
    perf = targets.run_hrt(target, model.path, sha256, threads=threads, frames=frames)
    board = machine.board(target["name"], target["ssh"], perf.pop("machine"))
    runtime_info = {"name": "rdk-bpu", "version": perf.get("runtime_version"), "provider": "hrt_model_exec",
                    "threads": perf["threads"]}
    # hrt_model_exec reports the mean only: the percentiles are not published by the tool.
    return {"samples_ms": None, "mean_ms": perf["mean_ms"], "min_ms": perf.get("min_ms"),
            "max_ms": perf.get("max_ms"), "fps": perf["fps"], "iterations": perf["frames"], "frames_asked": frames,
            "peak_rss_bytes": None, "runtime": runtime_info, "environment": {**board, **runtime_info, "batch": 1},
            "tool_output": perf}


def _merged_board(rounds: list[dict], batch: int, first: dict) -> dict:
    """A board's result from its rounds: figures over every sample, or (a tool that reports summary figures
    only) the median of each round's."""
    import statistics

    head = rounds[0]
    target = head["environment"]["target"]
    peak, before = first.get("peak_rss_bytes"), first.get("rss_before_load_bytes")
    merged = {"device": target, "target": target, "runtime": head["runtime"], "environment": head["environment"],
              "peak_rss_bytes": peak, "load_ms": first.get("load_ms"),
              "first_inference_ms": first.get("first_inference_ms"),
              "model_peak_bytes": peak - before if peak and before else None, "cpus": None}
    if all(r.get("samples_ms") for r in rounds):
        samples = [x for r in rounds for x in r["samples_ms"]]
        merged.update(latency_stats(samples, batch), samples_ms=samples,
                      p90_conservative_ms=conservative_percentile(samples, 0.90),
                      p99_conservative_ms=conservative_percentile(samples, 0.99),
                      round_p50_ms=[round(statistics.median(r["samples_ms"]), 4) for r in rounds])
        return merged
    merged.update({"p50_ms": None, "p90_ms": None, "p99_ms": None, "std_ms": None, "samples_ms": None,
                   "p90_conservative_ms": None, "p99_conservative_ms": None, "tool_output": head.get("tool_output"),
                   "iterations": sum(r.get("iterations") or 0 for r in rounds) or None,
                   "frames_asked": sum(r.get("frames_asked") or 0 for r in rounds) or None,
                   "round_p50_ms": [r["mean_ms"] for r in rounds if r.get("mean_ms") is not None]})
    for key in ("mean_ms", "min_ms", "max_ms", "fps"):
        values = [r[key] for r in rounds if r.get(key) is not None]
        merged[key] = statistics.median(values) if values else None
    return merged
