"""The verdict a user reads about an int8 model against its float parent, with the uncertainty of each figure:
"int8 is 1.8x faster than float on this host (Intel Xeon; AVX512-VNNI), 95% CI 1.7-1.9x; top-1 -0.71 points
(95% CI -1.5 to +0.1; McNemar p = 0.12, not significant)".

Speed: the float/int8 ratio of p50 latencies from interleaved rounds (latency.bench_models), with the
distribution-free interval of the median of the per-round ratios (each round times both models, so a round
is a pair; latency.median_interval: order statistics, 95% or more from 6 rounds on, robust to a round that
another job disturbed). Accuracy: the drop in top-1 points on the same images, with an interval conditional
on the discordant images (those only one model got right): of those d images, the share b/d that only float
got right has an exact (Clopper-Pearson) interval (lo, hi), and drop = d/n * (2 b/d - 1), so the drop's
interval is d/n * (2 lo - 1, 2 hi - 1). It is the dual of McNemar's exact test, which conditions on d the same
way: the interval leaves out 0 exactly when p < 0.05.
"""
from __future__ import annotations


def round_ratios(int8_round_p50s, float_round_p50s) -> list[float]:
    """Each round's float p50 / int8 p50 (rounds paired by position: both models were timed in each round)."""
    return [f / i for i, f in zip(int8_round_p50s or [], float_round_p50s or []) if i and f]


def drop_interval(float_only: int, int8_only: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """[low, high] of the top-1 drop in points (float - int8) on n paired images, conditional on the
    float_only + int8_only discordant images (Clopper-Pearson interval of float_only among them); None for n = 0."""
    d = float_only + int8_only
    if n == 0:
        return None
    if d == 0:
        return [0.0, 0.0]
    tail = (1 - confidence) / 2
    # the exact binomial interval: the p at which seeing float_only or more (or fewer) has probability `tail`
    low = 0.0 if float_only == 0 else _solve(lambda p: 1 - _binom_cdf(float_only - 1, d, p) - tail)
    high = 1.0 if float_only == d else _solve(lambda p: tail - _binom_cdf(float_only, d, p))
    return [round(100 * d / n * (2 * low - 1), 3), round(100 * d / n * (2 * high - 1), 3)]


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n in the thousands overflows comb(n, i) * p**i)."""
    import math

    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    return min(1.0, math.fsum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                                       + i * log_p + (n - i) * log_q) for i in range(k + 1)))


def _solve(f, low: float = 0.0, high: float = 1.0) -> float:
    """The root of an increasing f on [0, 1] by bisection (60 halvings: below float resolution)."""
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if f(middle) < 0 else (low, middle)
    return (low + high) / 2


def host_words(host: dict | None) -> str:
    """'Intel(R) Xeon(R) Processor; AVX512-VNNI, AMX-INT8': the CPU and its int8 flags, for a verdict."""
    if not host:
        return ""
    # the best instruction set and what adds to it (AMX, i8mm), not the older ones every such CPU has
    shown = [f for f in host.get("flags") or [] if f not in ("AVX2", "SSE4.1", "AVX-VNNI") or f == host.get("isa")]
    flags = ", ".join(shown) or "no int8 flags found"
    return f"{host.get('cpu') or host.get('arch')}; {flags}"


def speed_sentence(speedup: float, interval: list | None = None, *, where: str = "on this host",
                   host: dict | None = None) -> str:
    """'int8 is 1.8x faster than float on this host (CPU; flags), 95% CI 1.7-1.9x' (or '... 3.2x SLOWER ...')."""
    said = f"int8 is {speedup:.1f}x faster than float" if speedup >= 1 else \
        f"int8 is {1 / speedup:.1f}x SLOWER than float"
    text = f"{said} {where}" + (f" ({host_words(host)})" if host else "")
    if interval:
        low, high = interval
        text += (f", 95% CI {low:.2f}-{high:.2f}x faster" if speedup >= 1 else
                 f", 95% CI {1 / high:.2f}-{1 / low:.2f}x slower")
    return text


def accuracy_sentence(v: dict) -> str:
    """'top-1 -0.71 points (95% CI -1.54 to +0.11; McNemar p = 0.12, not significant)' from quantize.accuracy_against_float."""
    change = 0.0 - v["drop_points"]  # int8 - float; 0.0 - x, so that no drop prints +0.00, not -0.00
    interval = v.get("drop_ci95")
    ci = f"95% CI {0.0 - interval[1]:+.2f} to {0.0 - interval[0]:+.2f}; " if interval else ""
    return (f"top-1 {change:+.2f} points ({ci}McNemar p = {v['p_value']:.2g}, "
            f"{'significant' if v['significant'] else 'not significant'})")


def verdict(speed: dict | None, accuracy: dict | None, host: dict | None = None) -> str | None:
    """The whole verdict from a bench's `speed_vs_float` and an eval's `accuracy_vs_float` (either may be missing)."""
    parts = []
    if speed:
        parts.append(speed_sentence(speed["speedup"], speed.get("speedup_ci95"), host=host))
    if accuracy:
        parts.append(accuracy_sentence(accuracy))
    return ", ".join(parts) or None
