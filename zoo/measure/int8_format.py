"""Which int8 format ONNX Runtime runs fast on this host: the CPU's int8 instructions, read from /proc/cpuinfo,
and the format ONNX Runtime's own guidance gives for them (the docstring of
`onnxruntime.quantization.quantize_static`, "Choosing parameters for CPU inference").

A format fixes what decides the int8 kernels ONNX Runtime picks: activation and weight types and reduce_range.
Every format is QDQ (ONNX Runtime's recommended layout for CPU since 1.11; its QOperator twin ran at the same
speed and accuracy here) with depthwise convolutions quantized like the others (kept float, they recovered
0.7 top-1 points on the coral model but cost the whole speed-up: README, `zoo quantize`).
"""
from __future__ import annotations

import platform
from pathlib import Path

from zoo.errors import UsageError

FORMATS = {
    # name: (activations, weights, reduce_range, what it is for)
    "u8s8": ("uint8", "int8", False, "x86 with VNNI (AVX512-VNNI, AVX-VNNI): u8 x s8 dot products without saturation"),
    "u8s8-reduced": ("uint8", "int8", True, "x86 without VNNI (AVX2, SSE): 7-bit weights, so the u8 x s8 "
                                            "pair sums of its kernels cannot saturate 16 bits"),
    "s8s8": ("int8", "int8", False, "Arm (dot-product / i8mm instructions)"),
    "u8u8": ("uint8", "uint8", False, "zoo's format before issue 19: exact on every CPU, but off ONNX "
                                      "Runtime's fast int8 kernels (3-4x slower than float on x86)"),
}
AUTO = "auto"

# x86 feature flags as /proc/cpuinfo spells them, best first; Arm's are in the "Features" line.
X86_INT8 = (("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx2", "AVX2"), ("sse4_1", "SSE4.1"))
EXTRA_X86 = (("amx_int8", "AMX-INT8"),)
ARM_INT8 = (("i8mm", "i8mm"), ("asimddp", "dot-product"))


def host_int8(cpuinfo: str | None = None, machine: str | None = None) -> dict:
    """This CPU's int8 capability: {arch, isa (the best int8 instruction set found, or None), flags (every
    int8-relevant one found, readable names), cpu (model name)}. `cpuinfo`/`machine` stand in for
    /proc/cpuinfo and platform.machine() (tests, other hosts)."""
    machine = (machine or platform.machine()).lower()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    words = set((fields.get("flags") or fields.get("features") or "").split())
    arch = "x86_64" if machine in ("x86_64", "amd64", "i686", "x86") else \
        "arm64" if machine in ("aarch64", "arm64", "armv8l") else machine
    table = X86_INT8 + EXTRA_X86 if arch == "x86_64" else ARM_INT8 if arch == "arm64" else ()
    flags = [name for flag, name in table if flag in words]
    if arch == "arm64" and not words and platform.system() == "Darwin":
        flags = ["dot-product"]  # every Apple Silicon core has it; macOS has no /proc/cpuinfo
    ranked = [name for _, name in (X86_INT8 if arch == "x86_64" else ARM_INT8 if arch == "arm64" else ())]
    isa = next((name for name in ranked if name in flags), None)
    cpu = fields.get("model name") or fields.get("cpu model") or platform.processor() or machine
    return {"arch": arch, "isa": isa, "flags": flags, "cpu": cpu}


def choose_format(host: dict) -> tuple[str, str]:
    """(format name, the reason in one sentence) for a host_int8() result, after ONNX Runtime's guidance."""
    isa, flags = host.get("isa"), ", ".join(host.get("flags") or []) or "no int8 flags found"
    if host.get("arch") == "x86_64" and isa in ("AVX512-VNNI", "AVX-VNNI"):
        return "u8s8", (f"x86 with {isa} ({flags}): ONNX Runtime's guidance for VNNI CPUs, uint8 activations x int8 "
                        "weights without reduce_range (its u8s8 kernels use VNNI dot products, no 16-bit saturation)")
    if host.get("arch") == "x86_64":
        return "u8s8-reduced", (f"x86 without VNNI ({flags}): ONNX Runtime's guidance, uint8 activations x int8 "
                                "weights with reduce_range (7-bit weights: its 16-bit pair sums cannot saturate)")
    if host.get("arch") == "arm64":
        return "s8s8", (f"Arm ({flags}): ONNX Runtime's guidance for Arm CPUs, int8 activations and weights "
                        "(its kernels use signed dot products)")
    return "u8s8-reduced", (f"an unrecognised CPU ({host.get('arch')}): ONNX Runtime's conservative x86 choice, "
                            "uint8 activations x int8 weights with reduce_range")


def resolve_format(name: str | None, host: dict | None = None) -> dict:
    """The format to quantize with: `name` (--format) or, for None/'auto', the host's choice. Returns
    {format, activations, weights, reduce_range, chosen_by: auto|--format, reason, host}."""
    host = host or host_int8()
    if name in (None, AUTO):
        name, reason = choose_format(host)
        chosen_by = AUTO
    elif name in FORMATS:
        reason, chosen_by = f"--format {name}: {FORMATS[name][3]}", "--format"
    else:
        raise UsageError(f"--format {name!r} is not an int8 format zoo knows",
                         f"Use one of: {AUTO}, {', '.join(FORMATS)}")
    activations, weights, reduce_range, _ = FORMATS[name]
    return {"format": name, "activations": activations, "weights": weights, "reduce_range": reduce_range,
            "chosen_by": chosen_by, "reason": reason, "host": host}
