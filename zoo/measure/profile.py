"""Where a model's time goes: ONNX Runtime's own per-operator profile (SessionOptions.enable_profiling), summarised
per operator type and per node, and an int8 model's set beside its float parent's.

The profile is a separate run from the timed loop (profiling adds a little per node): a fresh session, `warmup`
uncounted runs, then `runs` profiled ones. Times are kernel times in ms per run (a node's `dur` in the trace,
averaged over the profiled runs); `share` is the part of the summed kernel time; `calls` the kernel calls per
run. `run_ms` is the mean whole run (model_run), so run_ms - kernel_ms is the executor's own overhead.
"""
from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

from zoo.errors import UsageError
from zoo.measure.runtimes.onnxruntime import resolve_provider

DEFAULT_RUNS = 50
TOP_NODES = 15

# Operator types that do one job in float and in int8 graphs: ONNX Runtime fuses QDQ Conv into QLinearConv,
# float Conv + activation into FusedConv, and its NCHWc layout adds Reorder nodes.
FAMILIES = {
    "conv": ("Conv", "FusedConv", "QLinearConv", "ConvInteger", "NhwcFusedConv", "NhwcConv", "NchwcConv",
             "QLinearConvTranspose"),
    "add": ("Add", "QLinearAdd", "Sum", "Mul", "QLinearMul"),
    "pool": ("AveragePool", "GlobalAveragePool", "QLinearAveragePool", "QLinearGlobalAveragePool", "MaxPool"),
    "matmul/gemm": ("MatMul", "Gemm", "QLinearMatMul", "MatMulInteger", "FusedMatMul", "FusedGemm"),
    "softmax": ("Softmax", "QLinearSoftmax"),
    "activation": ("Relu", "Clip", "QLinearLeakyRelu", "QLinearSigmoid"),
    "quantize/dequantize": ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"),
    "layout": ("Transpose", "ReorderInput", "ReorderOutput", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
               "Identity"),
}
FAMILY_OF = {op: family for family, ops in FAMILIES.items() for op in ops}


def profile_file(model_path: Path, *, threads: int | None = None, batch: int = 1, runs: int = DEFAULT_RUNS,
                 warmup: int = 5, provider: str | None = None) -> dict:
    """ONNX Runtime's per-node profile of a model on a fixed-seed input of `batch` images.

    Returns {runs, threads, batch, provider, run_ms, kernel_ms, by_op: [{op, family, ms, share, calls}],
    by_family: [{family, ms, share, calls}], by_node: [{node, op, ms, share, calls, output_shape}] (the
    TOP_NODES slowest), nodes (how many)}, each list slowest first."""
    import numpy as np
    import onnxruntime as ort

    if runs < 1:
        raise UsageError(f"profile runs must be at least 1, got {runs}")
    providers = resolve_provider(provider)  # 'cuda' -> CUDAExecutionProvider, as bench and eval name them
    with tempfile.TemporaryDirectory(prefix="zoo-profile-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model_path), options, providers=[providers])
        spec = session.get_inputs()[0]
        shape = [batch] + [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape[1:]]
        dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(spec.type, np.float32)
        rng = np.random.default_rng(0)
        x = rng.random(shape, dtype=np.float32).astype(dtype) if dtype == np.float32 else \
            rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
        for _ in range(warmup + runs):
            session.run(None, {spec.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    return summarise(events, runs=runs) | {"threads": threads, "batch": batch, "provider": providers}


def summarise(events: list[dict], *, runs: int) -> dict:
    """The per-type, per-family and per-node summary of a Chrome-trace profile over its last `runs` model runs."""
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session"
                     and e.get("name") == "model_run")[-runs:]
    if not windows:
        raise UsageError("the ONNX Runtime profile holds no model run")
    start = windows[0][0]
    nodes: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        name = e["name"][: -len("_kernel_time")] or "(unnamed)"
        args = e.get("args") or {}
        node = nodes.setdefault(name, {"node": name, "op": args.get("op_name", "?"), "us": 0.0, "calls": 0,
                                       "output_shape": _shape(args.get("output_type_shape"))})
        node["us"] += e["dur"]
        node["calls"] += 1
    total_us = sum(n["us"] for n in nodes.values()) or 1.0
    n = len(windows)

    def rows(groups: dict, key: str) -> list[dict]:
        out = [{key: k, "ms": round(us / n / 1000, 4), "share": round(us / total_us, 4), "calls": round(calls / n, 2)}
               for k, (us, calls) in groups.items()]
        return sorted(out, key=lambda r: -r["ms"])

    by_op, by_family = defaultdict(lambda: [0.0, 0]), defaultdict(lambda: [0.0, 0])
    for node in nodes.values():
        for groups, key in ((by_op, node["op"]), (by_family, FAMILY_OF.get(node["op"], "other"))):
            groups[key][0] += node["us"]
            groups[key][1] += node["calls"]
    ops = rows(by_op, "op")
    for row in ops:
        row["family"] = FAMILY_OF.get(row["op"], "other")
    per_node = sorted(({"node": v["node"], "op": v["op"], "ms": round(v["us"] / n / 1000, 4),
                        "share": round(v["us"] / total_us, 4), "calls": round(v["calls"] / n, 2),
                        "output_shape": v["output_shape"]} for v in nodes.values()), key=lambda r: -r["ms"])
    return {"runs": n, "run_ms": round(sum(b - a for a, b in windows) / n / 1000, 4),
            "kernel_ms": round(total_us / n / 1000, 4), "by_op": ops, "by_family": rows(by_family, "family"),
            "by_node": per_node[:TOP_NODES], "nodes": len(nodes)}


def _shape(value) -> list | None:
    """[1, 112, 112, 32] from the trace's [{"uint8": [1, 112, 112, 32]}]."""
    try:
        return list(next(iter(value[0].values())))
    except (TypeError, IndexError, AttributeError, StopIteration):
        return None


def versus(int8: dict, float_: dict) -> list[dict]:
    """An int8 profile beside its float parent's, per operator family: [{family, int8_ms, float_ms, ratio
    (int8 / float; above 1: slower in int8)}], the families where int8 spends most first."""
    a = {r["family"]: r["ms"] for r in int8["by_family"]}
    b = {r["family"]: r["ms"] for r in float_["by_family"]}
    out = [{"family": f, "int8_ms": a.get(f, 0.0), "float_ms": b.get(f, 0.0),
            "ratio": round(a[f] / b[f], 3) if a.get(f) and b.get(f) else None} for f in set(a) | set(b)]
    total = {"family": "total (kernels)", "int8_ms": int8["kernel_ms"], "float_ms": float_["kernel_ms"],
             "ratio": round(int8["kernel_ms"] / float_["kernel_ms"], 3) if float_["kernel_ms"] else None}
    return sorted(out, key=lambda r: -max(r["int8_ms"], r["float_ms"])) + [total]


def profile_run(model_path: Path, parent_path: Path | None = None, **options) -> dict:
    """What `zoo bench --profile` stores with a run: the model's profile_file() and, for an int8 card timed
    beside its float parent, the parent's as `float` and the two side by side as `vs_float` (versus())."""
    own = profile_file(model_path, **options)
    if parent_path is None:
        return own
    parent = profile_file(parent_path, **options)
    return {**own, "float": parent, "vs_float": versus(own, parent)}
