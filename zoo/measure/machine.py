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
