"""The int8 format chosen for a CPU (zoo.measure.int8_format) and the verdict's intervals (zoo.measure.int8_verdict)."""
from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.measure.int8_format import FORMATS, choose_format, host_int8, resolve_format
from zoo.measure.int8_verdict import accuracy_sentence, drop_interval, round_ratios, speed_sentence, verdict
from zoo.measure.quantize import accuracy_against_float, mcnemar_exact

# /proc/cpuinfo as these CPUs write it (the lines that matter)
SAPPHIRE_RAPIDS = ("model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f "
                   "avx512bw avx512_vnni avx_vnni amx_int8 amx_tile\n")
ALDER_LAKE = "model name\t: 12th Gen Intel(R) Core(TM) i7-1260P\nflags\t\t: sse4_1 avx avx2 fma avx_vnni\n"
HASWELL = "model name\t: Intel(R) Xeon(R) CPU E5-2680 v3\nflags\t\t: sse4_1 sse4_2 avx avx2 fma\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve i8mm bf16\n"
CORTEX_A72 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nCPU part\t: 0xd08\n"


@pytest.mark.parametrize("cpuinfo, machine, isa, flags, chosen", [
    (SAPPHIRE_RAPIDS, "x86_64", "AVX512-VNNI", ["AVX512-VNNI", "AVX-VNNI", "AVX2", "SSE4.1", "AMX-INT8"], "u8s8"),
    (ALDER_LAKE, "x86_64", "AVX-VNNI", ["AVX-VNNI", "AVX2", "SSE4.1"], "u8s8"),
    (HASWELL, "AMD64", "AVX2", ["AVX2", "SSE4.1"], "u8s8-reduced"),
    (GRAVITON3, "aarch64", "i8mm", ["i8mm", "dot-product"], "s8s8"),
    (CORTEX_A72, "aarch64", None, [], "s8s8"),
    ("", "riscv64", None, [], "u8s8-reduced"),
])
def test_the_format_follows_the_cpus_int8_instructions(cpuinfo, machine, isa, flags, chosen):
    host = host_int8(cpuinfo, machine)
    assert host["isa"] == isa and host["flags"] == flags
    name, reason = choose_format(host)
    assert name == chosen and name in FORMATS
    resolved = resolve_format(None, host)
    assert resolved["format"] == chosen and resolved["chosen_by"] == "auto" and resolved["reason"] == reason
    assert (resolved["activations"], resolved["weights"], resolved["reduce_range"]) == FORMATS[chosen][:3]
    assert (isa or "no int8 flags found" if host["arch"] != "riscv64" else "unrecognised") in reason


def test_this_hosts_flags_are_read_from_proc_cpuinfo():
    from pathlib import Path

    here = host_int8()
    text = Path("/proc/cpuinfo").read_text()
    assert ("AVX512-VNNI" in here["flags"]) == (" avx512_vnni" in text)
    assert ("AVX2" in here["flags"]) == (" avx2" in text)


def test_format_given_overrides_and_a_wrong_one_is_refused():
    host = host_int8(HASWELL, "x86_64")
    given = resolve_format("u8u8", host)
    assert given["format"] == "u8u8" and given["chosen_by"] == "--format" and given["weights"] == "uint8"
    assert given["reason"].startswith("--format u8u8: ")
    with pytest.raises(UsageError, match="--format 'int4' is not an int8 format") as error:
        resolve_format("int4", host)
    assert "auto, u8s8, u8s8-reduced, s8s8, u8u8" in error.value.one_line()


# ---------------------------------------------------------------- intervals

def test_the_speedup_interval_is_the_order_statistics_of_the_round_ratios():
    """latency.speed_against_float: each round's float p50 / int8 p50, the distribution-free interval of their
    median (10 rounds: the 2nd smallest to the 2nd largest, 97.9%), so one disturbed round stays outside."""
    from zoo.measure.latency import speed_against_float

    int8 = [2.5, 2.4, 2.6, 2.5, 2.7, 2.5, 2.4, 2.6, 2.5, 4.9]  # the last round: another job took the core
    float_ = [4.5, 4.4, 4.6, 4.4, 4.8, 4.5, 4.3, 4.7, 4.5, 4.6]
    v = speed_against_float("x/float", {"p50_ms": 2.5, "mean_ms": 2.7, "round_p50_ms": int8},
                            {"p50_ms": 4.5, "mean_ms": 4.6, "round_p50_ms": float_})
    ratios = sorted(round_ratios(int8, float_))
    assert v["speedup"] == 1.8 and v["speedup_ci95"] == [round(ratios[1], 4), round(ratios[-2], 4)]
    assert ratios[0] < 1 and v["speedup_ci95"][0] > 1.7  # the disturbed round does not reach the interval
    assert "95% CI 1.7" in v["verdict"] and v["verdict"].startswith("int8 is 1.8x faster than float on this host (")
    few = speed_against_float("x/float", {"p50_ms": 2.5, "mean_ms": 2.5, "round_p50_ms": int8[:5]},
                              {"p50_ms": 4.5, "mean_ms": 4.5, "round_p50_ms": float_[:5]})
    assert few["speedup_ci95"] is None and "95% CI" not in few["verdict"]  # 5 rounds cannot reach 95%


def test_the_speedup_interval_covers_the_true_ratio():
    """Simulated runs of 10 rounds with a known float/int8 ratio (1.8) and noise that differs round to round:
    the interval holds the true ratio in at least 95% of them, as order statistics promise."""
    from zoo.measure.latency import median_interval

    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        drift = rng.lognormal(0, 0.1, 10)  # a round's load, shared by both models
        int8 = 2.5 * drift * rng.lognormal(0, 0.03, 10)
        float_ = 4.5 * drift * rng.lognormal(0, 0.03, 10)
        low, high, coverage = median_interval(round_ratios(list(int8), list(float_)))
        covered += low <= 1.8 <= high
        assert coverage >= 0.95
    assert covered >= 190


@pytest.mark.parametrize("b, c, n", [(13, 8, 700), (10, 0, 100), (30, 12, 1000), (5, 5, 50), (0, 7, 300),
                                     (2, 9, 700), (9, 2, 700), (8, 1, 400), (61, 39, 5000), (1, 0, 10)])
def test_the_drop_interval_is_the_dual_of_mcnemars_exact_test(b, c, n):
    low, high = drop_interval(b, c, n)
    drop = 100 * (b - c) / n
    assert low - 1e-3 <= drop <= high + 1e-3 and -100 * (b + c) / n - 1e-3 <= low and high <= 100 * (b + c) / n + 1e-3
    # the interval leaves out 0 exactly where the exact test calls the difference significant (2 vs 9: p = 0.065,
    # which a Wilson interval would call significant)
    assert (low > 0 or high < 0) == (mcnemar_exact(b, c) < 0.05)


def test_the_exact_interval_matches_the_beta_quantiles():
    """Clopper-Pearson bounds are Beta quantiles: checked against scipy (there with the test extra's stack)."""
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in ((13, 8), (2, 9), (61, 39)):
        low, high = drop_interval(b, c, b + c)  # n = d: the interval is 100 * (2 p - 1)
        assert (low / 100 + 1) / 2 == pytest.approx(scipy_stats.beta.ppf(0.025, b, c + 1), abs=1e-4)
        assert (high / 100 + 1) / 2 == pytest.approx(scipy_stats.beta.ppf(0.975, b + 1, c), abs=1e-4)


def test_no_discordant_images_and_no_images():
    assert drop_interval(0, 0, 100) == [0.0, 0.0] and drop_interval(0, 0, 0) is None


def test_the_sentences():
    host = {"arch": "x86_64", "isa": "AVX512-VNNI", "cpu": "Intel(R) Xeon(R) Processor",
            "flags": ["AVX512-VNNI", "AVX-VNNI", "AVX2", "SSE4.1", "AMX-INT8"]}
    assert speed_sentence(1.84, [1.79, 1.9], host=host) == (
        "int8 is 1.8x faster than float on this host (Intel(R) Xeon(R) Processor; AVX512-VNNI, AMX-INT8), "
        "95% CI 1.79-1.90x faster")
    assert speed_sentence(0.3125, [0.3, 0.33], where="on rdk-x5") == \
        "int8 is 3.2x SLOWER than float on rdk-x5, 95% CI 3.03-3.33x slower"
    float_hits = np.array([True] * 600 + [True] * 13 + [False] * 8 + [False] * 79)
    int8_hits = np.array([True] * 600 + [False] * 13 + [True] * 8 + [False] * 79)
    v = accuracy_against_float("x/float", float_hits, int8_hits)
    assert v["drop_points"] == pytest.approx(100 * 5 / 700, abs=1e-3) and v["drop_ci95"] == drop_interval(13, 8, 700)
    low, high = v["drop_ci95"]
    assert accuracy_sentence(v) == v["verdict"] == (
        f"top-1 -0.71 points (95% CI {-high:+.2f} to {-low:+.2f}; McNemar p = {v['p_value']:.2g}, not significant)")
    speed = {"speedup": 1.84, "speedup_ci95": [1.79, 1.9]}
    assert verdict(speed, v, host) == speed_sentence(1.84, [1.79, 1.9], host=host) + ", " + v["verdict"]
    assert verdict(None, None) is None
