"""The facts of the machine a measurement ran on, and their fingerprint: one function for host and board.

Standard library only, on purpose: the board's runner (targets/board_runner.py) is copied to the board
beside this file and calls the same `facts()`, `conditions()` and `clocks_and_heat()` there.
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


# ---------------------------------------------------------------- what may drift during a run
# Read before and after a timed run: a run whose clocks dropped, whose temperature or load rose, is flagged, so
# a ranking never silently rests on a machine that changed under it. Unreadable values are None (a VM often
# exposes no cpufreq or thermal zones), and the run says so rather than guessing.

DRIFT_OTHERS = 0.5        # cores other processes kept busy on average during a run, worth a flag
DRIFT_CLOCK = 0.10        # a clock falling by this fraction
DRIFT_TEMPERATURE = 10.0  # degrees C of warming


def busy_seconds() -> float | None:
    """CPU seconds every process of this machine has run so far (Linux /proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields[:8]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = ticks + [0] * (8 - len(ticks))
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def conditions(provider: str | None = None) -> dict:
    """What could drift during a run, now: the CPU seconds the machine and this process have used (their
    difference over a run is what other processes took), load average, the clocks and thermal zones
    (clocks_and_heat), and for an NVIDIA accelerator its SM clock, temperature and power."""
    import time

    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    own = os.times()
    state = {"at_s": time.monotonic(), "busy_s": busy_seconds(), "own_s": own.user + own.system,
             "loadavg_1m": load, **clocks_and_heat()}
    kind = (provider or "").lower().removesuffix("executionprovider")
    if kind in NVIDIA_PROVIDERS:
        gpu = nvidia_gpu(0)
        state["gpu"] = {k: gpu.get(k) for k in ("clocks_sm_mhz", "temperature_c", "power_w")} if gpu else None
    return state


def drift(before: dict, after: dict) -> dict:
    """{before, after, others_cores, moved: what changed enough to doubt the run (empty: nothing did),
    unreadable: what could not be read}. others_cores: the cores other processes kept busy on average (the
    machine's CPU time less this process's, over the wall time) — the load average would count zoo's own
    threads."""
    moved, unreadable = [], []
    others = None
    if before.get("busy_s") is not None and after.get("busy_s") is not None and after["at_s"] > before["at_s"]:
        spent = (after["busy_s"] - before["busy_s"]) - (after["own_s"] - before["own_s"])
        others = round(max(spent, 0.0) / (after["at_s"] - before["at_s"]), 2)
        if others > DRIFT_OTHERS:
            moved.append(f"other processes kept {others:g} cores busy")
    else:
        unreadable.append("other processes' CPU time")

    heat = []  # clocks that fell and zones that warmed: the run throttled

    def check(name, old, new, *, fell_by=None, rose_by=None, unit=""):
        if old is None or new is None:
            unreadable.append(name)
        elif fell_by is not None and new < old * (1 - fell_by):
            heat.append(f"{name} fell from {old:g} to {new:g}{unit}")
        elif rose_by is not None and new - old > rose_by:
            heat.append(f"{name} rose from {old:g} to {new:g}{unit}")

    check("CPU clock", before.get("cpu_mhz"), after.get("cpu_mhz"), fell_by=DRIFT_CLOCK, unit=" MHz")
    check("temperature", before.get("temperature_c"), after.get("temperature_c"), rose_by=DRIFT_TEMPERATURE,
          unit=" C")
    if "gpu" in before or "gpu" in after:
        old, new = before.get("gpu") or {}, after.get("gpu") or {}
        check("GPU SM clock", old.get("clocks_sm_mhz"), new.get("clocks_sm_mhz"), fell_by=DRIFT_CLOCK, unit=" MHz")
        check("GPU temperature", old.get("temperature_c"), new.get("temperature_c"), rose_by=DRIFT_TEMPERATURE,
              unit=" C")
    return {"before": before, "after": after, "others_cores": others, "moved": moved + heat, "unreadable": unreadable,
            "throttled": heat}


# ---------------------------------------------------------------- accelerators
# An accelerator run is measured on the accelerator, not on the host CPU: its own name and memory, read from the
# driver's tool, name the device a run records (the host CPU stays in the run's machine facts).

NVIDIA_FIELDS = ("index", "name", "uuid", "memory.total", "memory.used", "driver_version", "clocks.sm",
                 "clocks.max.sm", "temperature.gpu", "power.draw", "pstate")
NVIDIA_PROVIDERS = ("cuda", "tensorrt", "nv_tensorrt_rtx")
AMD_PROVIDERS = ("rocm", "migraphx")


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of `nvidia-smi --query-gpu=<NVIDIA_FIELDS> --format=csv,noheader,nounits` as dicts (numbers parsed;
    '[N/A]' and the like become None)."""
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(NVIDIA_FIELDS):
            continue
        row = dict(zip(NVIDIA_FIELDS, cells))
        for key in ("index", "memory.total", "memory.used", "clocks.sm", "clocks.max.sm", "temperature.gpu", "power.draw"):
            try:
                row[key] = float(row[key]) if key == "power.draw" else int(float(row[key]))
            except ValueError:
                row[key] = None
        rows.append(row)
    return rows


def _run(command: list[str], timeout: float = 10.0) -> str | None:
    import subprocess

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def visible_gpu(rows: list[dict], device_id: int, visible: str | None) -> dict | None:
    """The nvidia-smi row of the provider's device_id, through CUDA_VISIBLE_DEVICES (indices or UUIDs) when set."""
    wanted: str | int = device_id
    if visible:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if device_id >= len(entries):
            return None
        wanted = entries[device_id]
    for row in rows:
        if str(wanted).isdigit() and row["index"] == int(wanted):
            return row
        if isinstance(wanted, str) and not wanted.isdigit() and str(row["uuid"]).startswith(wanted):
            return row
    return None


def nvidia_gpu(device_id: int = 0, smi_output: str | None = None) -> dict | None:
    """The NVIDIA GPU a CUDA/TensorRT session runs on: name, memory, driver, uuid, clocks, temperature."""
    text = smi_output if smi_output is not None else _run(
        ["nvidia-smi", f"--query-gpu={','.join(NVIDIA_FIELDS)}", "--format=csv,noheader,nounits"])
    row = visible_gpu(parse_nvidia_smi(text or ""), device_id, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if row is None:
        return None
    return {"name": row["name"], "memory_bytes": row["memory.total"] * 2**20 if row["memory.total"] else None,
            "driver": row["driver_version"], "uuid": row["uuid"], "index": row["index"],
            "clocks_sm_mhz": row["clocks.sm"], "clocks_max_sm_mhz": row["clocks.max.sm"],
            "temperature_c": row["temperature.gpu"], "power_w": row["power.draw"], "pstate": row["pstate"]}


def accelerator_label(name: str, memory_bytes: int | None) -> str:
    """'NVIDIA H200 (140 GiB)': the device a run on an accelerator records."""
    return f"{name} ({memory_bytes / 2**30:.0f} GiB)" if memory_bytes else name


def accelerator(provider: str, device_id: int = 0, *, smi_output: str | None = None) -> dict:
    """The accelerator an execution provider runs on: {provider, device (the label runs are grouped by), name,
    memory_bytes, driver, ...}; where the driver's tool cannot be read, the device says so (never the host CPU)."""
    kind = provider.lower().removesuffix("executionprovider")
    info = nvidia_gpu(device_id, smi_output) if kind in NVIDIA_PROVIDERS else None
    if info is None and kind in NVIDIA_PROVIDERS:
        info = _nvidia_proc(device_id)
    if info is None and kind in AMD_PROVIDERS:
        name = _rocm_name(device_id)
        info = {"name": name, "memory_bytes": None} if name else None
    if info is None:
        return {"provider": provider, "device": f"{provider} device {device_id} (name unreadable)", "name": None,
                "memory_bytes": None}
    return {"provider": provider, "device": accelerator_label(info["name"], info.get("memory_bytes")), **info}


def _nvidia_proc(device_id: int) -> dict | None:
    """The GPU's model name from the kernel driver (/proc/driver/nvidia/gpus/*/information), when nvidia-smi is
    missing."""
    folders = sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))
    if device_id >= len(folders):
        return None
    try:
        fields = dict(line.split(":", 1) for line in folders[device_id].read_text().splitlines() if ":" in line)
    except OSError:
        return None
    name = fields.get("Model", "").strip()
    return {"name": name, "memory_bytes": None, "uuid": fields.get("GPU UUID", "").strip() or None} if name else None


def _rocm_name(device_id: int) -> str | None:
    text = _run(["rocm-smi", "--showproductname", "--csv"]) or ""
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return rows[device_id][2].strip() if device_id < len(rows) and len(rows[device_id]) > 2 else None


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


# ---------------------------------------------------------------- clocks and heat in detail
# A board throttles within seconds, and a big.LITTLE board's clusters run at their own clocks: a run records each
# CPU's clock and governor and each thermal zone, read on the machine that ran it (on a board, by its runner),
# and says whether it throttled. `root` is where /sys and /proc are: "/" but in a test of recorded readings.

def _numbers(root: Path, pattern: str, scale: float) -> list[float]:
    values = []
    for path in sorted(root.glob(pattern)):
        try:
            values.append(float(path.read_text().split()[0]) * scale)
        except (OSError, ValueError, IndexError):
            continue
    return values


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpufreq(root: Path = Path("/")) -> dict | None:
    """Each CPU's clock now and its maximum in MHz, and its governor (cpufreq); None where the kernel exposes no
    cpufreq, as in most VMs."""
    cpus = {}
    folders = root.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq")
    for folder in sorted(folders, key=lambda p: int(p.parent.name[3:])):
        now, top = (_numbers(folder, name, 1e-3) for name in ("scaling_cur_freq", "cpuinfo_max_freq"))
        cpus[folder.parent.name] = {"cur_mhz": round(now[0], 1) if now else None,
                                    "max_mhz": round(top[0], 1) if top else None,
                                    "governor": _text(folder / "scaling_governor")}
    return cpus or None


def thermal(root: Path = Path("/")) -> dict | None:
    """Each thermal zone's temperature in degrees C, keyed by the zone and its type; None where none is readable."""
    zones = {}
    folders = root.glob("sys/class/thermal/thermal_zone[0-9]*")
    for folder in sorted(folders, key=lambda p: int(p.name.removeprefix("thermal_zone"))):
        temperature = _numbers(folder, "temp", 1e-3)
        if temperature:
            zones[f"{folder.name} ({_text(folder / 'type') or 'unknown'})"] = round(temperature[0], 1)
    return zones or None


def clocks_and_heat(root: Path = Path("/")) -> dict:
    """{cpu_mhz (the mean clock), cpu_mhz_source (cpufreq; cpuinfo: /proc/cpuinfo's figure, a constant in a VM
    that says nothing of throttling; None), governor (cpu0's), temperature_c (the hottest zone), cpufreq (each
    CPU), thermal (each zone)}: what conditions() reads, in detail."""
    cpus, zones = cpufreq(root), thermal(root)
    clocks = [c["cur_mhz"] for c in (cpus or {}).values() if c["cur_mhz"] is not None]
    source = "cpufreq" if clocks else None
    if not clocks:
        try:
            clocks = [float(line.split(":", 1)[1]) for line in (root / "proc/cpuinfo").read_text().splitlines()
                      if line.startswith("cpu MHz")]
            source = "cpuinfo" if clocks else None
        except (OSError, ValueError):
            clocks = []
    return {"cpu_mhz": round(sum(clocks) / len(clocks), 1) if clocks else None, "cpu_mhz_source": source,
            "governor": (cpus or {}).get("cpu0", {}).get("governor"),
            "temperature_c": max(zones.values()) if zones else None, "cpufreq": cpus, "thermal": zones}


def throttled(before: dict, after: dict) -> list[str]:
    """What says a run throttled: the mean CPU clock fell by more than DRIFT_CLOCK, or the hottest zone rose by
    more than DRIFT_TEMPERATURE (an accelerator's too). Empty: it did not, or it could not be read."""
    return drift(before, after)["throttled"]
