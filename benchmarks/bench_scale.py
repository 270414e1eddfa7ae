"""`zoo list` and `zoo compare` on a registry of 10,000 cards, against the 80 embedded cards in the same run.

The 10,000 cards are the real cards copied under new ids (`<name>-sNNN`), once as a card directory
(`--registry DIR`) and once as a remote registry (its index served over HTTP on 127.0.0.1, added with
`zoo registry add` and fetched with `zoo registry update`). Targets (issue 11): `zoo list` <= 0.5 s and
`zoo compare --metric latency` <= 1.5 s on both routes; the 80-card `zoo list` stays <= 0.15 s.
Medians of --runs rounds, each timing every configuration once (interleaved). The first call on each route, which validates every card and builds the catalog
under ZOO_HOME (zoo.cards.catalog), is reported apart. Python writes its bytecode caches, as an installed
zoo has them.

    python benchmarks/bench_scale.py [--cards 10000] [--runs 5]
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ZOO = [sys.executable, "-c", "import zoo_cli; zoo_cli.main()"]
TARGETS = {"list": 0.5, "compare": 1.5}
FLOORS = ("typer", "pandas")  # what any `zoo list` / `zoo compare` must import, timed alongside


def make_cards(out: Path, count: int) -> int:
    """`count` cards copied from the real ones under new ids, one YAML file each."""
    real = sorted((ROOT / "cards").rglob("*.yaml"))
    for i in range(count):
        card = yaml.safe_load(real[i % len(real)].read_text())
        name = card["id"].split("/", 1)[1] + f"-s{i:05d}"
        card["id"] = f"{card['source']}/{name}"
        folder = out / card["source"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return count


def run(args: list[str], home: Path) -> float:
    env = dict(os.environ, ZOO_HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed zoo has its .pyc files: compiling is not zoo's time
    start = time.perf_counter()
    proc = subprocess.run(ZOO + args, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed: {proc.stderr.strip()}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-scale-"))
    try:
        cards = work / "cards"
        make_cards(cards, options.cards)
        small, big_dir, big_remote = work / "home-80", work / "home-dir", work / "home-remote"
        served = work / "served"
        served.mkdir()
        run(["registry", "build", "--cards", str(cards), "--out", str(served / "index.json")], small)
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
        handler.log_message = lambda *a: None
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/index.json"
        run(["registry", "add", "big", url], big_remote)
        run(["registry", "update"], big_remote)
        httpd.shutdown()
        first = {"card directory": run(["--registry", str(cards), "list"], big_dir),
                 "remote index": run(["list"], big_remote)}
        run(["list"], small)
        configs = [(label, home, extra, command, args)
                   for label, home, extra in (("80 embedded cards", small, []),
                                              (f"{options.cards} cards, card directory", big_dir, ["--registry", str(cards)]),
                                              (f"{options.cards} cards, remote index", big_remote, []))
                   for command, args in (("list", ["list"]), ("compare", ["compare", "--metric", "latency"]))]
        walls: dict[tuple, list[float]] = {}
        floors: dict[str, list[float]] = {}
        for _ in range(options.runs):  # interleaved: a noisy neighbour slows every configuration alike
            for label, home, extra, command, args in configs:
                walls.setdefault((label, command), []).append(run(extra + args, home))
            for module in FLOORS:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
                floors.setdefault(module, []).append(time.perf_counter() - start)
        rows = [(label, command, statistics.median(times)) for (label, command), times in walls.items()]
        base = {command: wall for label, command, wall in rows if label.startswith("80")}
        ok = True
        print("floors on this machine now: " + ", ".join(f"`python -c 'import {m}'` {statistics.median(t):.3f} s"
                                                      for m, t in floors.items()) + " (compare needs both)")
        for route, wall in first.items():
            print(f"first `zoo list` on {options.cards} cards, {route} (validates, builds the catalog): {wall:.2f} s")
        for label, command, wall in rows:
            target = 0.15 if (label.startswith("80") and command == "list") else TARGETS[command]
            verdict = "ok" if wall <= target else "OVER TARGET"
            ok &= verdict == "ok"
            print(f"{label:34} zoo {command:8} median {wall:6.3f} s  ratio to 80 cards {wall / base[command]:5.2f}x"
                  f"  target {target:.2f} s [{verdict}]")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
