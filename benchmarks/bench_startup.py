"""Start-up time of `zoo list` and `zoo --help` against `python -c pass`, measured in the same run.

Target (issue 2): median wall time of `zoo list` <= 0.15 s on a 2-core machine, and neither
command imports pandas, onnxruntime, torch, timm or pydantic. Prints medians and ratios;
exits 1 when a heavy module is imported or the median is over the target.

    python benchmarks/bench_startup.py [--runs 21]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("pandas", "onnxruntime", "torch", "timm", "pydantic", "numpy", "PIL")
TARGET_S = 0.15


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_imports(args: list[str]) -> list[str]:
    probe = ("import sys, contextlib, io\n"
             f"sys.argv = ['zoo'] + {args!r}\n"
             "import zoo_cli\n"
             "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
             "    try:\n        zoo_cli.main()\n    except SystemExit:\n        pass\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    zoo = shutil.which("zoo") or sys.exit("`zoo` is not on PATH: pip install -e . first")
    baseline = median_wall([sys.executable, "-c", "pass"], runs)
    ok = True
    print(f"python -c pass   median {baseline * 1000:7.1f} ms")
    for args in (["list"], ["--help"]):
        wall = median_wall([zoo, *args], runs)
        heavy = heavy_imports(args)
        verdict = "ok" if not heavy and (args != ["list"] or wall <= TARGET_S) else "OVER TARGET"
        ok &= verdict == "ok"
        print(f"zoo {' '.join(args):12} median {wall * 1000:7.1f} ms  ratio to python -c pass {wall / baseline:5.2f}x"
              f"  heavy imports: {', '.join(heavy) or 'none'}  [{verdict}]")
    print(f"target: zoo list median <= {TARGET_S * 1000:.0f} ms, no heavy imports")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
