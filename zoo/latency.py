"""Latency of a card's model on this host or on a target board, with the environment that produced it.

What the timer covers: one runtime call on a batch already in memory (ONNX Runtime's
`session.run`, LiteRT's set-tensor/invoke/get-tensor); no decoding or preprocessing. Warm-up
calls are run first and not counted. The run lasts at least `iters` calls and at least
`seconds`. Latency figures are per batch, in milliseconds; fps = batch / mean latency.
"""
from __future__ import annotations

import hashlib
import platform
import resource
import time
from pathlib import Path

from . import settings
from .errors import UsageError

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


def environment() -> dict:
    """This host: CPU model, cores, frequency governor where readable, OS."""
    from .store import machine

    info = machine()
    try:
        info["governor"] = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        info["governor"] = None
    return info


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


def synthetic_model(card: dict) -> Path:
    """The card's architecture with random weights as ONNX (cached under ZOO_HOME).

    The plain MobileNetV2 is built with onnx.helper (zoo.synthetic: no torch needed); other layer
    plans through timm, as `zoo convert --synthetic-weights` does.
    """
    from .synthetic import save_mobilenet_v2

    if card.get("depth", 1.0) != 1.0 or card["source"] == "paddleclas":
        # timm's deeper variants and PaddleClas' own layer plan need timm (the convert extra) to build.
        from .converter import available, convert_card

        if not available():
            raise UsageError(f"{card['id']}: synthetic weights for this architecture need timm",
                             'pip install "zoo[convert]", or benchmark its published weights')
        return Path(convert_card(card, synthetic=True)["path"])
    options = {"width": card["width"], "resolution": card["resolution"], "num_classes": card["num_classes"]}
    key = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:16]
    path = settings.zoo_home() / "synthetic" / f"mobilenetv2_{key}.onnx"
    if not path.is_file():
        tmp = save_mobilenet_v2(path.with_suffix(".onnx.tmp"), **options)
        tmp.replace(path)
    return path


def _runnable_with(card: dict, runtime: str) -> dict:
    """The card's first artifact that `runtime` (onnxruntime or litert) loads, directly or from an archive."""
    suffix = {"onnxruntime": ".onnx", "litert": ".tflite"}.get(runtime)
    if suffix is None:
        raise UsageError(f"unknown --runtime {runtime!r}", "Use onnxruntime or litert (or --target for a board)")
    from .accuracy import model_suffix

    for artifact in card.get("artifacts", []):
        if model_suffix(artifact) == suffix:
            return artifact
    from .errors import UnsupportedArtifactError

    raise UnsupportedArtifactError(f"{card['id']} has no artifact that {runtime} runs",
                                   "Leave out --runtime, or use --synthetic-weights for an ONNX model")


def _model_for(card: dict, *, synthetic: bool, target: dict | None, mirrors,
               runtime: str | None = None) -> tuple[Path, dict | None]:
    """The model file to time and the card artifact it came from (None for synthetic weights)."""
    from .accuracy import fetch_model, model_suffix, runnable_artifact

    if synthetic:
        if target and target["runtime"] != "onnxruntime":
            raise UsageError("--synthetic-weights builds an ONNX model; this target runs " + target["runtime"])
        return synthetic_model(card), None
    if target and target["runtime"] == "rdk-bpu":
        artifact = next((a for a in card.get("artifacts", []) if a["runtime"] == "rdk-bpu"), None)
        if artifact is None:
            from .errors import TargetError

            raise TargetError(f"{card['id']} has no artifact for the RDK BPU (target {target['name']})",
                              "Pick an rdk/ card (`zoo list --source rdk`)")
        return fetch_model(card, artifact, mirrors=mirrors), artifact
    artifacts = card.get("artifacts", [])
    if not target and artifacts and all(a["runtime"] == "rdk-bpu" for a in artifacts):
        from .errors import UnsupportedArtifactError

        raise UnsupportedArtifactError(f"{card['id']} runs on an RDK BPU only, not on this host",
                                       "Add the board with `zoo target add NAME --ssh USER@HOST --runtime rdk-bpu`, "
                                       "then `zoo bench ID --target NAME`")
    artifact = _runnable_with(card, runtime) if runtime else runnable_artifact(card)
    if target and model_suffix(artifact) != ".onnx":
        from .errors import TargetError

        raise TargetError(f"{card['id']}: target {target['name']} runs ONNX models; this card's artifact is "
                          f"{artifact['format']}", "Use --synthetic-weights, or a card with an .onnx artifact")
    return fetch_model(card, artifact, mirrors=mirrors), artifact


def _counted(model_path: Path) -> dict:
    """MACs and params counted from the graph, and the file size, recorded with each run."""
    from .complexity import inspect_file

    try:
        info = inspect_file(model_path)
    except UsageError:  # a format zoo cannot read (an RDK .bin): size only
        return {"macs": None, "params": None, "size_bytes": model_path.stat().st_size}
    return {"macs": info["macs"], "params": info["params"], "size_bytes": info["size_bytes"]}


def bench_card(card: dict, *, runtime: str | None = None, provider: str | None = None, threads: int | None = None,
               batch: int = 1, warmup: int = DEFAULT_WARMUP, iters: int | None = None, seconds: float | None = None,
               synthetic: bool = False, target: str | None = None, mirrors: list[str] | None = None,
               store: bool = True) -> dict:
    """Measure latency; records the run in the results store unless store=False.

    The run lasts `iters` calls or `seconds`, whichever is given (both: whichever ends later);
    neither: at least DEFAULT_ITERS calls and DEFAULT_SECONDS seconds.
    """
    if iters is None and seconds is None:
        iters, seconds = DEFAULT_ITERS, DEFAULT_SECONDS
    iters, seconds = (1 if iters is None else iters), (0.0 if seconds is None else seconds)
    if batch < 1 or warmup < 0 or iters < 1 or seconds < 0:
        raise UsageError("--batch and --iters must be at least 1, --warmup and --seconds at least 0")
    target_config = None
    if target:
        from . import targets

        target_config = targets.get(target)
    if runtime and (synthetic or target):
        raise UsageError("--runtime picks a card artifact on this host; leave it out with --synthetic-weights or --target")
    model_path, artifact = _model_for(card, synthetic=synthetic, target=target_config, mirrors=mirrors,
                                      runtime=runtime)
    from .cache import file_sha256
    from .converter import source_sha256

    sha256 = file_sha256(model_path)  # what is copied to a board is keyed by its own bytes
    recorded_sha256 = source_sha256(model_path) or sha256  # a converted ONNX's run belongs to the native file
    if target_config:
        result = _bench_on_target(target_config, model_path, sha256, threads=threads, batch=batch, warmup=warmup,
                                  iters=iters, seconds=seconds)
    else:
        result = _bench_on_host(model_path, provider=provider, threads=threads, batch=batch, warmup=warmup,
                                iters=iters, seconds=seconds)
    result.update(_counted(model_path))
    result.update({
        "kind": "bench", "card_id": card["id"], "synthetic_weights": synthetic,
        "artifact": {"file": artifact["file"] if artifact else model_path.name, "path": str(model_path),
                     "sha256": recorded_sha256, "model_sha256": sha256},
        "batch": batch, "warmup": warmup,
        "claims": [c for c in card.get("claims", []) if c["metric"] in ("latency_ms", "fps")],
    })
    if store:
        from .store import record_run

        metric_keys = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "iterations",
                       "peak_rss_bytes", "synthetic_weights", "warmup", "macs", "params", "size_bytes")
        result["run_id"] = record_run({
            "kind": "bench", "card_id": card["id"], "artifact_file": result["artifact"]["file"],
            "artifact_sha256": recorded_sha256, "runtime": result["runtime"]["name"],
            "runtime_version": result["runtime"]["version"] or "unknown", "provider": result["runtime"]["provider"],
            "threads": result["runtime"]["threads"], "batch": batch, "device": result["device"],
            "machine": result["environment"], "metrics": {k: result.get(k) for k in metric_keys},
        })
    return result


def _bench_on_host(model_path: Path, *, provider, threads, batch, warmup, iters, seconds) -> dict:
    from .runtimes import open_runtime

    runtime = open_runtime(model_path, provider=provider, threads=threads)
    if runtime.max_batch is not None and batch != runtime.max_batch:
        raise UsageError(f"{model_path.name} takes batch {runtime.max_batch} only, not {batch}",
                         f"Use --batch {runtime.max_batch}")
    tensor = random_input(runtime, batch)
    latencies = time_runtime(runtime, tensor, warmup=warmup, iters=iters, seconds=seconds)
    env = environment()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
    return {**latency_stats(latencies, batch), "peak_rss_bytes": peak, "device": env["device"], "target": None,
            "runtime": runtime.describe(), "environment": {**env, **runtime.describe(), "batch": batch}}


def _target_machine(target: dict, facts: dict) -> dict:
    """A board as a run records it: what the runner reported, the target's name and address, a fingerprint."""
    from .store import fingerprint

    machine = {**facts, "target": target["name"], "ssh": target["ssh"]}
    return {**machine, "fingerprint": fingerprint(machine), "device": target["name"]}


def _bench_on_target(target: dict, model_path: Path, sha256: str, *, threads, batch, warmup, iters, seconds) -> dict:
    from . import targets

    if target["runtime"] == "rdk-bpu":
        if batch != 1:
            raise UsageError("hrt_model_exec runs batch 1; leave out --batch")
        perf = targets.run_hrt(target, model_path, sha256, threads=threads or 1, frames=max(iters, 1))
        machine = _target_machine(target, perf.pop("machine"))
        runtime = {"name": "rdk-bpu", "version": perf.get("runtime_version"), "provider": "hrt_model_exec",
                   "threads": perf["threads"]}
        # hrt_model_exec reports the mean only: the percentiles are not published by the tool.
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": perf["mean_ms"], "std_ms": None,
                "min_ms": perf.get("min_ms"), "max_ms": perf.get("max_ms"), "fps": perf["fps"],
                "iterations": perf["frames"], "peak_rss_bytes": None, "device": target["name"],
                "target": target["name"], "runtime": runtime, "environment": {**machine, **runtime, "batch": 1},
                "tool_output": perf}
    raw = targets.run_onnxruntime(target, model_path, sha256, threads=threads or 0, batch=batch, warmup=warmup,
                                  iters=iters, seconds=seconds)
    machine = _target_machine(target, raw["machine"])
    runtime = {"name": "onnxruntime", "version": raw["runtime_version"], "provider": raw["provider"],
               "threads": threads}
    return {**latency_stats(raw["latencies_ms"], batch), "peak_rss_bytes": raw["peak_rss_bytes"],
            "device": target["name"], "target": target["name"], "runtime": runtime,
            "environment": {**machine, **runtime, "batch": batch}}
