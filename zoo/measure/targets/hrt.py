"""D-Robotics `hrt_model_exec perf`: the command line and a parser for its output.

The parser reads the "Perf result" block (the whole run) and the per-thread line above it:

    Frame count: 200,  Thread Average: 3.420286 ms,  thread max latency: 3.921000 ms, ...
    Running condition:
      Thread number is: 4
      Frame count   is: 200
    Perf result:
      Average    latency    is: 3.420286 ms
      Frame      rate       is: 1152.067096 FPS
"""
from __future__ import annotations

import re
import shlex

from zoo.errors import TargetError

_FIELDS = {
    "threads": (r"Thread number is:\s*(\d+)", int),
    "frames": (r"Frame count\s+is:\s*(\d+)", int),
    "run_time_ms": (r"Program run time:\s*([\d.]+)\s*ms", float),
    "total_latency_ms": (r"Frame totally latency is:\s*([\d.]+)\s*ms", float),
    "mean_ms": (r"Average\s+latency\s+is:\s*([\d.]+)\s*ms", float),
    "fps": (r"Frame\s+rate\s+is:\s*([\d.]+)\s*FPS", float),
    "max_ms": (r"thread max latency:\s*([\d.]+)\s*ms", float),
    "min_ms": (r"thread min latency:\s*([\d.]+)\s*ms", float),
}
_OPTIONAL = {"max_ms", "min_ms", "run_time_ms", "total_latency_ms"}


def perf_command(model_file: str, threads: int, frames: int) -> str:
    return (f"hrt_model_exec perf --model_file {shlex.quote(model_file)} "
            f"--thread_num {int(threads)} --frame_count {int(frames)}")


def parse_perf(text: str) -> dict:
    """Figures of one `hrt_model_exec perf` run; TargetError when the output has no perf result."""
    result = {}
    for key, (pattern, kind) in _FIELDS.items():
        match = re.search(pattern, text)
        if match:
            result[key] = kind(match.group(1))
        elif key not in _OPTIONAL:
            last = text.strip().splitlines()[-1] if text.strip() else "(no output)"
            raise TargetError(f"hrt_model_exec printed no '{pattern.split(':')[0].replace(chr(92), '')}' figure; "
                              f"its last line was: {last[:160]}",
                              "Run `hrt_model_exec perf` on the board by hand to see why")
    version = re.search(r"\[DNN\] Runtime version = (\S+)", text)
    result["runtime_version"] = version.group(1) if version else None
    return result
