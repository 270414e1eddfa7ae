"""int8 against float on real weights, on this host: each candidate int8 format's top-1 on images the calibration
never saw and its latency against float's, timed in interleaved rounds; the format `zoo quantize` picks here;
and the coral uint8 file itself on LiteRT and on ONNX Runtime, on the same footing.

The only real float ImageNet weights here are the coral TF1 file's, dequantized (`zoo convert --dequantize`).
Every candidate is quantized from that float card by zoo's library (zoo.measure.quantize.quantize_file, QDQ,
minmax) on 300 of the 1000 sample images (spread over the classes) and scored on the other 700 (each image
decoded once for every model; McNemar's test and the drop's interval against float on the same images). Then
every model is timed at batch 1, with 1 thread and with all threads: `--rounds` rounds, each model `--calls`
calls per round, the order reversed every other round, so drift on a shared machine hits every model alike.
The ratio is float p50 / int8 p50 over all calls (above 1: int8 is faster), with the 95% interval `zoo bench`
gives it (the order statistics of the per-round ratios, latency.median_interval) and their spread. Target (issue 19): int8 >= 1.5x faster than
float at batch 1 with <= 1.0 point top-1 drop.

    python benchmarks/bench_quantize.py [--calib-n 300] [--rounds 10] [--calls 50] [--profile]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
CARD = "coral/mobilenet_v2_1.0_224_quant"
# (label, format, per-channel, keep the depthwise convolutions in float)
CANDIDATES = [("u8s8 per-channel", "u8s8", True, False), ("u8s8 per-channel, depthwise float", "u8s8", True, True),
              ("u8s8 per-tensor", "u8s8", False, False), ("u8s8-reduced per-channel", "u8s8-reduced", True, False),
              ("s8s8 per-channel", "s8s8", True, False), ("u8u8 per-channel (before)", "u8u8", True, False)]


def depthwise(prepared: str) -> list[str]:
    import onnx

    graph = onnx.load(prepared).graph
    weights = {t.name: list(t.dims) for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "Conv" and weights.get(n.input[1], [0, 0])[1] == 1
            and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def timed(paths: dict, threads: int | None, rounds: int, calls: int) -> dict:
    """{label: [per-round latency lists (ms)]}: every model at batch 1, interleaved, order reversed each round."""
    from zoo.measure.latency import random_input
    from zoo.measure.runtimes import open_runtime

    runtimes = {label: open_runtime(Path(path), threads=threads) for label, path in paths.items()}
    tensors = {label: random_input(runtime, 1) for label, runtime in runtimes.items()}  # float or uint8 input
    for label, runtime in runtimes.items():
        for _ in range(10):
            runtime.run(tensors[label])
    samples = {label: [] for label in paths}
    order = list(paths)
    for number in range(rounds):
        for label in (order if number % 2 == 0 else order[::-1]):
            run, tensor, got = runtimes[label].run, tensors[label], []
            for _ in range(calls):
                start = time.perf_counter()
                run(tensor)
                got.append((time.perf_counter() - start) * 1000)
            samples[label].append(got)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib-n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10, help="at least 6 for a 95%% interval")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per model and round")
    parser.add_argument("--profile", action="store_true", help="ONNX Runtime's per-operator profile of the pick")
    args = parser.parse_args()
    os.environ.setdefault("ZOO_HOME", tempfile.mkdtemp(prefix="bench-quantize-"))
    os.environ["ZOO_MIRROR"] = str(DATA / "coral")
    import numpy as np

    import zoo
    from zoo.artifacts.local import local_model
    from zoo.measure.choose import choose
    from zoo.engine.quantize import float_model
    from zoo.errors import ZooError
    from zoo.measure.accuracy import Job, open_lanes, predict
    from zoo.measure.datasets import load_dataset
    from zoo.measure.int8_format import resolve_format
    from zoo.measure.int8_verdict import round_ratios
    from zoo.measure.latency import median_interval
    from zoo.measure.preprocess import Preprocessor
    from zoo.measure.quantize import accuracy_against_float, calibration_set, quantize_file

    load = os.getloadavg()
    sample = load_dataset(DATA / "imagenet-sample")
    card = zoo.get(zoo.convert(CARD, dequantize=True)["id"])
    path = float_model(card)
    calibration = calibration_set(sample, args.calib_n)
    held = sample.without(relative for relative, _ in calibration.items)
    picked = resolve_format(None)
    print(f"host: {picked['host']['cpu']} ({os.cpu_count()} cores; int8: {', '.join(picked['host']['flags'])}); "
          f"zoo picks {picked['format']}: {picked['reason']}")
    print(f"calibration: {len(calibration)} sample images (minmax); held out: {len(held)}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start")

    paths = {"float": str(path)}
    for label, format, per_channel, float_depthwise in CANDIDATES:
        record = quantize_file(card, path, calibration, format=format, per_channel=per_channel)
        if float_depthwise:
            record = quantize_file(card, path, calibration, format=format, per_channel=per_channel,
                                   keep_float=depthwise(record["prepared"]))
        paths[label] = record["path"]

    # the coral file itself (its own uint8 quantization-aware weights) on LiteRT and as a QDQ ONNX on ONNX Runtime:
    # which runtime makes int8 pay on this host, beside zoo's own int8 of its float weights
    coral, owner = zoo.get(CARD), {}
    for runtime in ("litert", "onnxruntime"):
        try:
            label = f"coral .tflite on {runtime}"
            paths[label], owner[label] = str(local_model(coral, choose(coral, runtime=runtime))), coral
        except ZooError as error:  # LiteRT is an extra: `pip install ".[litert]"`
            print(f"{label}: not timed ({error.one_line()})")
    preprocessor = Preprocessor(card["preprocess"], card["resolution"])
    jobs = {label: Job(open_lanes(owner.get(label, card), Path(p))[1], preprocessor) for label, p in paths.items()}
    done = predict(list(jobs.values()), held)
    labels = np.asarray(done["labels"])
    hits = {label: job.predictions()[:, 0] == labels for label, job in jobs.items()}
    accuracy = {label: accuracy_against_float("float", hits["float"], hits[label]) for label in paths if label != "float"}

    speed = {}
    for threads in (1, None):
        speed[threads] = timed(paths, threads, args.rounds, args.calls)
    print(f"\nbatch 1, {args.rounds} interleaved rounds x {args.calls} calls per model; float/int8 = float p50 / "
          "int8 p50 (above 1: int8 faster), 95% CI, [per-round min..max]")
    width = max(map(len, paths))
    head = f"{'model':{width}}  {'top-1 %':>7}  {'drop':>6}  {'drop 95% CI':>15}  {'McNemar p':>9}"
    for threads in speed:
        head += f"  {'p50 ms ' + ('1t' if threads else 'all'):>11}  {'float/int8':>10}  {'95% CI':>11}  {'rounds':>11}"
    print(head)
    for label in paths:
        v = accuracy.get(label)
        line = f"{label:{width}}  {100 * hits[label].mean():7.2f}  " + (
            f"{v['drop_points']:+6.2f}  {v['drop_ci95'][0]:+6.2f}..{v['drop_ci95'][1]:+6.2f}  {v['p_value']:9.2g}"
            if v else f"{'':6}  {'':15}  {'':9}")
        for threads, samples in speed.items():
            p50 = statistics.median(x for r in samples[label] for x in r)
            line += f"  {p50:11.2f}"
            if label == "float":
                line += f"  {'':10}  {'':11}  {'':11}"
                continue
            flat = statistics.median(x for r in samples["float"] for x in r)
            per_round = round_ratios([statistics.median(r) for r in samples[label]],
                                     [statistics.median(r) for r in samples["float"]])
            interval = median_interval(per_round)
            ci = f"{min(interval[0], flat / p50):5.2f}-{max(interval[1], flat / p50):5.2f}" if interval else "    —      "
            line += f"  {flat / p50:10.2f}  {ci}  {min(per_round):5.2f}..{max(per_round):5.2f}"
        print(line)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")

    pick = next(label for label, format, per_channel, dw in CANDIDATES
                if format == picked["format"] and per_channel and not dw)
    v = accuracy[pick]
    flat = [statistics.median(x for r in speed[t]["float"] for x in r) /
            statistics.median(x for r in speed[t][pick] for x in r) for t in speed]
    ok = v["drop_points"] <= 1.0 and min(flat) >= 1.5
    print(f"\nzoo's pick here, {pick}: {flat[0]:.2f}x (1 thread), {flat[1]:.2f}x (all threads) float's speed, drop "
          f"{v['drop_points']:+.2f} points [target >= 1.5x and <= 1.0 point: {'met' if ok else 'MISSED'}]")
    if args.profile:
        from zoo.measure.profile import profile_file, versus

        int8, float_ = profile_file(Path(paths[pick]), threads=1), profile_file(path, threads=1)
        print("ONNX Runtime profile, 1 thread (kernel ms per run): " + "; ".join(
            f"{r['family']} int8 {r['int8_ms']:.3f} / float {r['float_ms']:.3f}" for r in versus(int8, float_)[:4]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
