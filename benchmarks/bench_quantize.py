"""int8 against float on real weights, in one run: accuracy on images the calibration never saw, the paired
McNemar test, and the latency ratio on this host.

The only real float ImageNet weights here are the coral TF1 file's, dequantized (`zoo convert --dequantize`):
quantize that float card on 300 of the 1000 sample images (spread over the classes), evaluate float and int8
on the other 700 (each image decoded once for both), and time both models interleaved. Target (issue 14):
int8 within 1.5 points of the float model's top-1 with per-channel weights.

    python benchmarks/bench_quantize.py [--calib-n 300] [--method minmax] [--iters 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
CARD = "coral/mobilenet_v2_1.0_224_quant"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib-n", type=int, default=300)
    parser.add_argument("--method", default="minmax")
    parser.add_argument("--per-tensor", action="store_true")
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("ZOO_HOME", tempfile.mkdtemp(prefix="bench-quantize-"))
    os.environ["ZOO_MIRROR"] = str(DATA / "coral")
    import numpy as np

    import zoo
    from zoo.artifacts.choose import choose, local_model
    from zoo.measure import accuracy, latency
    from zoo.measure.datasets import Dataset, load_dataset
    from zoo.measure.preprocess import Preprocessor
    from zoo.measure.quantize import calibration_set, mcnemar_exact

    float_id = zoo.convert(CARD, dequantize=True)["id"]
    sample = load_dataset(DATA / "imagenet-sample")
    calibration = calibration_set(sample, args.calib_n)
    held_out = Dataset(sample.root, sample.layout, [i for i in sample.items if i not in set(calibration.items)])
    q = zoo.quantize(float_id, DATA / "imagenet-sample", calib_n=args.calib_n, method=args.method,
                     per_channel=not args.per_tensor)
    jobs, paths = [], {}
    for card_id in (float_id, q["id"]):
        card = zoo.get(card_id)
        paths[card_id] = local_model(card, choose(card))
        _, models, _ = accuracy.open_lanes(card, paths[card_id])
        jobs.append(accuracy.Job(models, Preprocessor(card["preprocess"], card["resolution"]), card_id))
    done = accuracy.predict(jobs, held_out)
    truth = np.asarray(done["labels"])
    hits = [job.predictions()[:, 0] == truth for job in jobs]
    top1 = [100 * float(h.mean()) for h in hits]
    only_float, only_int8 = int((hits[0] & ~hits[1]).sum()), int((~hits[0] & hits[1]).sum())
    p = mcnemar_exact(only_float, only_int8)
    print(f"calibration: {len(calibration)} images ({args.method}, {'per-tensor' if args.per_tensor else 'per-channel'}); "
          f"evaluation: the other {len(truth)} images")
    print(f"top-1 float {top1[0]:.2f} %  int8 {top1[1]:.2f} %  drop {top1[0] - top1[1]:+.2f} points  "
          f"[target <= 1.5: {'ok' if top1[0] - top1[1] <= 1.5 else 'MISSED'}]")
    print(f"McNemar exact: {only_float} images right only in float, {only_int8} only in int8, p = {p:.3g} "
          f"({'significant' if p < 0.05 else 'not significant'} at 5%)")
    p50 = {k: [] for k in paths}
    for round_ in range(4):  # interleaved, order alternating: drift on a shared machine hits both alike
        for card_id in (list(paths) if round_ % 2 == 0 else list(paths)[::-1]):
            result = latency.bench_file(zoo.get(card_id), paths[card_id], threads=1, iters=args.iters, seconds=0,
                                        warmup=10)
            p50[card_id].append(result["p50_ms"])
    f, i = (statistics.median(p50[k]) for k in paths)
    print(f"latency p50 (1 thread, batch 1, median of 4 interleaved rounds): float {f:.2f} ms, int8 {i:.2f} ms; "
          f"int8/float {i / f:.2f}" + ("  (int8 is SLOWER here)" if i > f else ""))
    return 0 if top1[0] - top1[1] <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
