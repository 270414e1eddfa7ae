"""Do latency ranks survive noise? Ten cards timed twice on this host, as `zoo bench` times them.

Each run times the ten cards together in interleaved rounds (zoo.engine.bench), and each p50 gets its 95%
interval from the round medians. A pair of cards is *separated* by a run when their intervals do not overlap;
only separated pairs are ranked apart (the others share a rank range such as 2–4). This script prints, per
run, how many of the 45 pairs it separated, and how many pairs separated by one run kept their order in the
other. Target: >= 95% of separated pairs keep their order. Run it beside a busy process (e.g.
`python -c 'while True: pass' &`) to see the intervals widen rather than the ranks flip.

    python benchmarks/bench_ranks.py [--threads 1] [--seconds 3] [--rounds 10]
"""
from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ten architectures from 13 M to 580 M MACs, several of them close to each other on purpose.
CARDS = ["d-li14/mobilenetv2_0.1", "d-li14/mobilenetv2_0.25", "d-li14/mobilenetv2_0.35", "d-li14/mobilenetv2_0.5",
         "tf-slim/mobilenet_v2_1.0_96", "tf-slim/mobilenet_v2_1.0_128", "d-li14/mobilenetv2_0.75",
         "tf-slim/mobilenet_v2_1.0_160", "d-li14/mobilenetv2_1.0", "tf-slim/mobilenet_v2_1.4_224"]


def separated(records: dict) -> dict[tuple, bool]:
    """(a, b) -> whether a is faster than b, for every pair whose 95% intervals do not overlap."""
    out = {}
    for a, b in itertools.combinations(sorted(records), 2):
        (lo_a, hi_a), (lo_b, hi_b) = records[a]["p50_ci95"], records[b]["p50_ci95"]
        if hi_a < lo_b or hi_b < lo_a:
            out[(a, b)] = hi_a < lo_b
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="zoo-bench-ranks-")
    os.environ["ZOO_HOME"] = home
    sys.path.insert(0, ROOT)
    import zoo

    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        runs = []
        for number in (1, 2):
            summary = zoo.bench_sweep(CARDS, synthetic=True, threads=args.threads, seconds=args.seconds,
                                      rounds=args.rounds, force=True, store=False)
            records = {r["card_id"]: r for r in summary["records"] if r["status"] == "measured"}
            runs.append(records)
            pairs = separated(records)
            print(f"run {number}: {len(pairs)} of {len(records) * (len(records) - 1) // 2} pairs separated; "
                  "p50 ms [95% interval]: " + ", ".join(
                      f"{c.split('/')[1]} {r['p50_ms']:.2f} [{r['p50_ci95'][0]:.2f}–{r['p50_ci95'][1]:.2f}]"
                      for c, r in sorted(records.items(), key=lambda kv: kv[1]["p50_ms"])))
        first, second = (separated(r) for r in runs)
        p50 = [{c: r["p50_ms"] for c, r in run.items()} for run in runs]
        kept = total = 0
        for pairs, other in ((first, p50[1]), (second, p50[0])):
            for (a, b), a_faster in pairs.items():
                total += 1
                kept += (other[a] < other[b]) == a_faster
        both = set(first) & set(second)
        flipped = sum(first[p] != second[p] for p in both)
        share = kept / total if total else float("nan")
        print(f"separated pairs that kept their order in the other run: {kept} of {total} ({100 * share:.1f}%); "
              f"separated by both runs: {len(both)}, of which flipped: {flipped}")
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        print("target >= 95%:", "met" if share >= 0.95 else "missed")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
