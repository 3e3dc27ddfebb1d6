"""Batch-means uncertainty of J/token over a steady window (method: docs/method.md, "Uncertainty").

The window [start, end] is cut into k = floor((end - start) / interval_s) consecutive intervals of
exactly `interval_s` from the start (a remainder shorter than one interval at the end is left out
of the estimate, not out of the run's J/token). Each interval gives J/token_i = energy_i /
tokens_i: energy from the trapezoidal integral of the sampled power (power_trace.power_integral),
tokens from the streamed chunks stamped inside it. The intervals are treated as k roughly
independent observations of the same quantity; the 95% confidence half-width of their mean is
t(0.975, k-1) x s / sqrt(k), reported relative to the mean.

The same code serves the live stopping rule of a saturate run (measure.convergence) and the
offline summary, so both see the same numbers for the same window. Stdlib only, except the power
traces' type.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

from jouleflow.analysis.power_trace import GpuTrace, power_integral

# Student-t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95%); beyond 30 the
# Cornish-Fisher expansion around the normal quantile is accurate to < 1e-4.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
MIN_INTERVALS = 2  # a standard deviation needs two observations
DEFAULT_INTERVAL_S = 5.0  # runs that do not name theirs (every arrival but saturate)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = NormalDist().inv_cdf(0.975)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True)
class BatchMeans:
    """Mean of k interval values and its 95% confidence half-width (absolute and relative)."""

    n_intervals: int
    mean: float | None = None
    half_width: float | None = None
    rel_half_width: float | None = None
    reason: str | None = None  # why there is no estimate

    def to_dict(self) -> dict:
        return asdict(self)


def batch_means(values: Sequence[float]) -> BatchMeans:
    """Student-t 95% confidence interval of the mean of `values` (one value per interval)."""
    k = len(values)
    if k < MIN_INTERVALS:
        return BatchMeans(k, reason=f"{k} interval(s): at least {MIN_INTERVALS} are needed")
    if any(not math.isfinite(v) for v in values):
        return BatchMeans(k, reason="an interval's value is not finite")
    mean = statistics.fmean(values)
    half = t_quantile_975(k - 1) * statistics.stdev(values) / math.sqrt(k)
    rel = half / abs(mean) if mean else None
    return BatchMeans(k, mean, half, rel, None if rel is not None else "the mean is zero")


def whole_intervals(span_s: float, interval_s: float) -> int:
    """How many whole intervals of `interval_s` fit in `span_s` (a span of exactly k intervals
    counts k, whatever the floating-point rounding of the division)."""
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    return int(math.floor(span_s / interval_s + 1e-9)) if span_s > 0 else 0


def interval_edges(start: float, end: float, interval_s: float) -> list[float]:
    """k + 1 edges of the k whole intervals of length `interval_s` from `start` within [start, end]."""
    k = whole_intervals(end - start, interval_s)
    return [start + i * interval_s for i in range(k + 1)] if k else []


def tokens_per_interval(t: Sequence[float], n: Sequence[int], edges: Sequence[float]) -> list[int]:
    """Tokens of the chunks in each interval [e_i, e_i+1); the last interval is closed (as the window).

    `t` sorted ascending, `n` the chunks' token counts.
    """
    prefix = [0]
    for count in n:
        prefix.append(prefix[-1] + count)
    out = []
    for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        lo = bisect_left(t, a)
        hi = bisect_right(t, b) if i == len(edges) - 2 else bisect_left(t, b)
        out.append(prefix[hi] - prefix[lo])
    return out


def counter_per_interval(
    t: Sequence[float], counter: Sequence[float], edges: Sequence[float]
) -> list[float | None]:
    """Growth of a cumulative counter (e.g. vLLM's generation_tokens_total) over each interval,
    linearly interpolated at the edges; None where the samples do not bracket the interval.

    `t` sorted ascending. The engine's own count: exact where a client counts chunks, which an engine
    falling behind merges (several tokens per chunk until the stream's final usage reconciles them).
    """

    def at(x: float) -> float | None:
        i = bisect_left(t, x)
        if i < len(t) and t[i] == x:
            return float(counter[i])
        if i == 0 or i == len(t):
            return None
        t0, t1, c0, c1 = t[i - 1], t[i], counter[i - 1], counter[i]
        return float(c0 + (c1 - c0) * (x - t0) / (t1 - t0))

    values = [at(x) for x in edges]
    return [None if a is None or b is None else b - a for a, b in zip(values, values[1:], strict=False)]


def _around(trace: GpuTrace, a: float, b: float) -> GpuTrace:
    """The samples bracketing [a, b]: power_integral then costs O(samples in the interval)."""
    lo = max(bisect_right(trace.t, a) - 1, 0)
    hi = min(bisect_left(trace.t, b) + 1, len(trace.t))
    return GpuTrace(trace.gpu, trace.t[lo:hi], trace.energy_j[lo:hi], trace.power_w[lo:hi])


def energy_per_interval(traces: dict[int, GpuTrace], edges: Sequence[float]) -> list[float | None]:
    """Energy (J, summed over GPUs) of each interval; None where a GPU's power does not cover it."""
    out: list[float | None] = []
    for a, b in zip(edges, edges[1:], strict=False):
        parts = [power_integral(_around(tr, a, b), a, b) for tr in traces.values()]
        out.append(None if not parts or any(p is None for p in parts) else float(sum(parts)))
    return out


def j_per_token_values(energies: Sequence[float | None], tokens: Sequence[float | None]) -> list[float] | str:
    """J/token of each interval, or why it cannot be formed (no energy, no tokens in an interval)."""
    if any(e is None for e in energies):
        return "the power samples do not cover every interval"
    if any(n is None for n in tokens):
        return "the token counter does not cover every interval"
    if any(n <= 0 for n in tokens):  # type: ignore[operator]
        return "an interval streamed no tokens"
    return [e / n for e, n in zip(energies, tokens, strict=True)]  # type: ignore[operator]


def window_uncertainty(
    traces: dict[int, GpuTrace],
    token_t: Sequence[float],
    token_n: Sequence[int],
    start: float,
    end: float,
    interval_s: float,
) -> BatchMeans:
    """Batch-means J/token estimate of the window [start, end] (token_t sorted ascending)."""
    edges = interval_edges(start, end, interval_s)
    values = j_per_token_values(
        energy_per_interval(traces, edges), tokens_per_interval(token_t, token_n, edges)
    )
    if isinstance(values, str):
        return BatchMeans(max(len(edges) - 1, 0), reason=values)
    return batch_means(values)
