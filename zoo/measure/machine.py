"""The facts of the machine a measurement ran on, and their fingerprint: one function for host and board.

Standard library only, on purpose: the board's latency runner (targets/ort_runner.py) is copied to
the board beside this file and calls the same `facts()` there.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path


def fingerprint(facts: dict) -> str:
    """A short, stable hash of a machine's facts: runs on the same machine share it."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def facts() -> dict:
    """This machine: CPU model, cores, architecture, OS, Python (the fingerprinted part)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(), "os": platform.platform(terse=True),
            "python": platform.python_version()}


def governor() -> str | None:
    """The CPU frequency governor where readable (latency depends on it)."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


def host() -> dict:
    """This machine as a run records it: its facts, `fingerprint` over them, `device` (a readable name),
    and the frequency governor (not fingerprinted: it may change between runs)."""
    info = facts()
    return {**info, "fingerprint": fingerprint(info), "device": f"{info['cpu']} ({info['cores']} cores)",
            "governor": governor()}


def board(name: str, address: str, reported: dict) -> dict:
    """A target board as a run records it: what its runner reported, the target's name and address."""
    info = {**reported, "target": name, "ssh": address}
    return {**info, "fingerprint": fingerprint(info), "device": name}


# ---------------------------------------------------------------- limits of this machine
# Options that size threads and memory are checked against the machine before any work: 100000 threads
# crash ONNX Runtime (a segfault), 3000 hang it, and a batch that cannot fit ends in a MemoryError.

THREADS_PER_CORE = 4       # more threads than this per core only adds contention
MEMORY_FRACTION = 0.5      # a run may plan to use at most this part of the memory available now
ACTIVATION_FACTOR = 24     # a MobileNetV2 run peaks at ~18x its input's bytes (measured, ONNX Runtime, batch 16-64)
TARGET_MAX_THREADS = 256   # a board's cores are not known here: only nonsense is refused


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_threads(value: int | None, option: str, *, on_target: bool = False) -> None:
    """A thread or worker count between 1 and THREADS_PER_CORE per core of this host (None: the default)."""
    from zoo.errors import UsageError

    if value is None:
        return
    cores = os.cpu_count() or 1
    limit = TARGET_MAX_THREADS if on_target else THREADS_PER_CORE * cores
    if not 1 <= value <= limit:
        where = "on a target" if on_target else f"on this machine ({cores} cores, {THREADS_PER_CORE} per core)"
        raise UsageError(f"{option} {value} is out of range: 1 to {limit} {where}",
                         f"Use {option} {min(limit, cores) if not on_target else 'N'} or leave it out for the default")


def check_batch_memory(batch: int, input_bytes: int, *, in_flight: int = 1, option: str = "--batch") -> None:
    """Refuse a batch whose input tensors and activations (in_flight batches at once) would not fit."""
    from zoo.errors import UsageError

    if batch < 1:
        raise UsageError(f"{option} must be at least 1, got {batch}")
    available = available_memory()
    per_batch = max(1, input_bytes) * ACTIVATION_FACTOR * in_flight
    if available is None or batch * per_batch <= MEMORY_FRACTION * available:
        return
    largest = max(1, int(MEMORY_FRACTION * available // per_batch))
    raise UsageError(f"{option} {batch} needs about {batch * per_batch / 2**30:.1f} GiB ({in_flight} batch(es) of "
                     f"{input_bytes:,}-byte inputs and their activations), more than half of the "
                     f"{available / 2**30:.1f} GiB available", f"Use {option} {largest} or less")
