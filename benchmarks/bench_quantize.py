"""int8 against float on real weights, in one run, through the library a user's `zoo` commands call: accuracy
on images the calibration never saw, the paired McNemar test, and the latency ratio on this host.

The only real float ImageNet weights here are the coral TF1 file's, dequantized (`zoo convert --dequantize`):
quantize that float card on 300 of the 1000 sample images (spread over the classes), then `zoo eval` the int8
card on the whole sample folder (its 300 calibration images are left out; the float parent is evaluated on
the other 700 in the same pass, each image decoded once for both) and `zoo bench` it (the parent timed in
interleaved rounds, 1 thread). Target (issue 14): int8 within 1.5 points of the float model's top-1 with
per-channel weights.

    python benchmarks/bench_quantize.py [--calib-n 300] [--method minmax] [--per-tensor] [--iters 800]
"""
from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--iters", type=int, default=800, help="timed calls per model, over 4 interleaved rounds")
    args = parser.parse_args()
    os.environ.setdefault("ZOO_HOME", tempfile.mkdtemp(prefix="bench-quantize-"))
    os.environ["ZOO_MIRROR"] = str(DATA / "coral")
    import zoo

    sample = DATA / "imagenet-sample"
    float_id = zoo.convert(CARD, dequantize=True)["id"]
    q = zoo.quantize(float_id, sample, calib_n=args.calib_n, method=args.method, per_channel=not args.per_tensor)
    evaluated = zoo.eval_sweep(q["id"], sample, force=True)["records"][0]
    v = evaluated["versus_float"]
    print(f"calibration: {q['calibration']['n']} images ({args.method}, "
          f"{'per-tensor' if args.per_tensor else 'per-channel'}); evaluation: the other {v['n']} images "
          f"(excluded {evaluated['calibration_excluded']} calibration images)")
    print(f"top-1 float {v['parent_top1']:.2f} %  int8 {v['top1']:.2f} %  drop {v['drop_points']:+.2f} points  "
          f"[target <= 1.5: {'ok' if v['drop_points'] <= 1.5 else 'MISSED'}]")
    print(f"McNemar exact: {v['float_only']} images right only in float, {v['int8_only']} only in int8, "
          f"p = {v['p_value']:.3g} ({v['verdict']})")
    timed = zoo.bench_sweep(q["id"], threads=1, iters=args.iters, force=True)["records"][0]["versus_float"]
    print(f"latency p50 (1 thread, batch 1, {timed['rounds']} interleaved rounds): float {timed['parent_p50_ms']:.2f} ms, "
          f"int8 {timed['p50_ms']:.2f} ms; int8/float {timed['ratio']:.2f}: {timed['verdict']}")
    return 0 if v["drop_points"] <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
