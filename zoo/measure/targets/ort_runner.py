"""Latency runner copied to a board and run there with its own Python and onnxruntime.

Standalone on purpose: it imports nothing from zoo (the board has only onnxruntime and numpy) but
machine.py, which is copied beside it, so the board's facts are gathered as the host's are.
Prints one JSON object: per-batch latencies in ms of `session.run` alone, and the board's facts.

    python3 ort_runner.py MODEL.onnx --threads 4 --batch 1 --warmup 10 --iters 200
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import facts  # noqa: E402  (copied beside this file; see the docstring)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--provider", default="CPUExecutionProvider")
    args = parser.parse_args()
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        print(json.dumps({"error": "missing-runtime", "detail": str(exc)}))
        return 3
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    try:
        session = ort.InferenceSession(args.model, options, providers=[args.provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        print(json.dumps({"error": "cannot-load", "detail": str(exc)[:500]}))
        return 4
    meta = session.get_inputs()[0]
    shape = [args.batch if not isinstance(d, int) else d for d in meta.shape]
    shape[0] = args.batch
    dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
             "tensor(float16)": np.float16}.get(meta.type, np.float32)
    feed = {meta.name: np.random.default_rng(0).random(shape).astype(dtype)}
    for _ in range(args.warmup):
        session.run(None, feed)
    latencies, deadline = [], time.perf_counter() + args.seconds
    while len(latencies) < args.iters or (args.seconds and time.perf_counter() < deadline):
        start = time.perf_counter()
        session.run(None, feed)
        latencies.append((time.perf_counter() - start) * 1000.0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "latencies_ms": latencies, "peak_rss_bytes": peak_kib * 1024, "runtime": "onnxruntime",
        "runtime_version": ort.__version__, "provider": args.provider, "threads": args.threads,
        "batch": args.batch, "machine": facts(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
