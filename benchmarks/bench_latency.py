"""`zoo bench` against a bare ONNX Runtime loop, and the spread of `zoo bench` over repeated runs.

1. Overhead: p50 of zoo's timing loop (the library call behind `zoo bench`) against a bare
   `session.run` loop with identical settings (same model, threads, input, iteration count),
   interleaved A/B (order alternating) for 8 rounds in this run. Target: ratio within 1% of 1.0.
2. Repeatability: p50 of 5 separate `zoo bench ... --json` processes. Target: coefficient of
   variation <= 3%.
The model is the canonical MobileNetV2 1.0/224 with synthetic weights (`--synthetic-weights`).

    python benchmarks/bench_latency.py [--threads 1] [--iters 300] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CARD = "timm/mobilenetv2_100.ra_in1k"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bare_p50(model_path: str, threads: int, iters: int, warmup: int) -> float:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="zoo-bench-")
    os.environ["ZOO_HOME"] = home
    sys.path.insert(0, ROOT)
    import zoo
    from zoo.artifacts.local import synthetic_model

    model = str(synthetic_model(zoo.get(CARD)))
    zoo_p50s, bare_p50s = [], []
    for round_ in range(args.rounds):  # interleaved, order alternating, so that drift hits both alike
        runs = [lambda: zoo_p50s.append(zoo.bench(CARD, synthetic=True, threads=args.threads, iters=args.iters,
                                                  seconds=0, warmup=20, store=False)["p50_ms"]),
                lambda: bare_p50s.append(bare_p50(model, args.threads, args.iters, 20))]
        for run in runs if round_ % 2 == 0 else runs[::-1]:
            run()
    zoo_p50, bare = statistics.median(zoo_p50s), statistics.median(bare_p50s)
    overhead = zoo_p50 / bare
    print(f"1. zoo bench p50 {zoo_p50:.3f} ms vs bare session.run p50 {bare:.3f} ms "
          f"(median of {args.rounds} interleaved rounds, {args.iters} calls, threads {args.threads}): "
          f"ratio {overhead:.4f}  [target 0.99..1.01: {'ok' if abs(overhead - 1) <= 0.01 else 'MISSED'}]")

    p50s = []
    for _ in range(5):  # this checkout's CLI; --force: measure each time (a sweep would reuse the stored run)
        out = subprocess.run([sys.executable, "-c", "import zoo_cli; zoo_cli.main()", "bench", CARD,
                              "--synthetic-weights", "--threads", str(args.threads), "--force", "--json"],
                             capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT}).stdout
        p50s.append(json.loads(out.splitlines()[0])["p50_ms"])  # the card's JSON line (then the summary)
    cv = statistics.stdev(p50s) / statistics.mean(p50s)
    print(f"2. p50 over 5 `zoo bench` runs (default length): {', '.join(f'{p:.3f}' for p in p50s)} ms; "
          f"coefficient of variation {cv * 100:.2f}%  [target <= 3%: {'ok' if cv <= 0.03 else 'MISSED'}]")
    shutil.rmtree(home, ignore_errors=True)
    return 0 if abs(overhead - 1) <= 0.01 and cv <= 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
