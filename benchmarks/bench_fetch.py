"""Fetch throughput against curl, and bytes downloaded twice after an interruption, on a loopback server.

    python benchmarks/bench_fetch.py [--size-mb 200] [--rounds 9]

Both clients download the same file from the same server (the tests' FaultServer, which uses
sendfile, in its own process so that it takes no GIL from zoo) in the same run, after one warm-up
each, alternating which goes first (the order alone moves the timings on a small VM), each run
after `sync` so that neither pays for the other's dirty pages. zoo's time includes hashing (sha256
while streaming), the size check, fsync and the atomic move into the cache; curl's includes neither.
The script prints the ratio of the best runs and of the medians.
Targets: throughput ratio zoo/curl >= 0.95; bytes downloaded again after a drop at half-way = 0.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]  # the tests' loopback server, and zoo from this checkout

from conftest import FaultServer  # noqa: E402

SERVE = """
import sys; sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import FaultServer
server = FaultServer().start(); server.files["model.bin"] = Path({path!r})
print(server.url, flush=True); sys.stdin.read(); server.stop()
"""


def make_file(path: Path, size: int) -> str:
    digest, block = hashlib.sha256(), os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            chunk = block[i % 251:] + block[:i % 251]  # distinct blocks, cheap to make
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def timed(fn) -> float:
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def card_for(url: str, sha: str, size: int) -> dict:
    return {"id": "bench/model", "artifacts": [{"file": "model.bin", "format": "onnx", "precision": "fp32",
                                                "runtime": "onnxruntime", "urls": [url], "sha256": sha,
                                                "size_bytes": size}]}


def throughput(work: Path, source: Path, sha: str, size: int, rounds: int) -> None:
    from zoo.artifacts import cache, fetch

    server = subprocess.Popen([sys.executable, "-c", SERVE.format(tests=str(ROOT / "tests"), path=str(source))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip() + "/model.bin"
        card, out = card_for(url, sha, size), work / "curl.bin"
        def curl() -> float:
            out.unlink(missing_ok=True)  # each run starts alike: no earlier output to replace
            return timed(lambda: subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", str(out), url], check=True))

        def zoo() -> float:
            cache.remove_blob(sha)
            return timed(lambda: fetch.fetch_artifact(card))

        zoo(), curl()  # warm-up: imports, the server's page cache
        curl_s, zoo_s = [], []
        for i in range(rounds):  # alternate who goes first: the order itself changes the timings
            if i % 2:
                zoo_s.append(zoo()), curl_s.append(curl())
            else:
                curl_s.append(curl()), zoo_s.append(zoo())
    finally:
        server.communicate("")
    mb = size / 1e6
    print(f"file: {size >> 20} MiB from {url}, {rounds} rounds")
    print(f"curl -o          : best {mb / min(curl_s):7.1f} MB/s, median {mb / statistics.median(curl_s):7.1f} MB/s")
    print(f"zoo fetch (+hash): best {mb / min(zoo_s):7.1f} MB/s, median {mb / statistics.median(zoo_s):7.1f} MB/s")
    print(f"throughput ratio zoo/curl: best {min(curl_s) / min(zoo_s):.3f}, "
          f"median {statistics.median(curl_s) / statistics.median(zoo_s):.3f}  (target >= 0.95)")


def resumed(source: Path, sha: str, size: int) -> None:
    from zoo.artifacts import cache, fetch

    server = FaultServer().start()  # in process: the test needs its fault queue and byte counts
    try:
        server.files["model.bin"] = source
        card = card_for(f"{server.url}/model.bin", sha, size)
        cache.remove_blob(sha)
        server.fail("model.bin", "drop", at=size // 2)
        path = fetch.fetch_artifact(card)
        again = server.sent("model.bin") - size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        print(f"interrupted at {size // 2} bytes: {len(server.log)} requests, "
              f"bytes downloaded again beyond the resumed range: {again}  (target 0)")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not shutil.which("curl"):
        sys.exit("curl is not installed: it is the baseline")
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    os.environ.update({"ZOO_HOME": str(work / "home"), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    try:
        size = args.size_mb << 20
        source = work / "model.bin"
        sha = make_file(source, size)
        throughput(work, source, sha, size, args.rounds)
        resumed(source, sha, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
