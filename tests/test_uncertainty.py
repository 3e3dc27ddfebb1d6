"""Batch-means J/token uncertainty (analysis.uncertainty) on series whose answer is known."""

from __future__ import annotations

import math
import random

import pytest
from jouleflow.analysis.power_trace import gpu_traces_from_rows
from jouleflow.analysis.uncertainty import (
    batch_means,
    interval_edges,
    t_quantile_975,
    tokens_per_interval,
    window_uncertainty,
)


def test_t_quantiles_match_published_values():
    # Student-t 0.975 quantiles from the standard tables
    for df, q in [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)]:  # fmt: skip
        assert t_quantile_975(df) == pytest.approx(q, abs=1e-3)
    assert t_quantile_975(10**6) == pytest.approx(1.95996, abs=1e-4)
    qs = [t_quantile_975(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(qs, qs[1:], strict=False))  # decreasing, no jump at the table's end
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_half_width_of_an_exact_series_and_its_one_over_sqrt_k_shrinking():
    # k values alternating mean ± s: sample stdev = s * sqrt(k / (k - 1)), so the half-width is
    # t(k-1) * s / sqrt(k - 1) exactly.
    def series(k: int) -> list[float]:
        return [2.0 + (0.5 if i % 2 else -0.5) for i in range(k)]

    for k in (4, 16, 64, 256):
        bm = batch_means(series(k))
        assert bm.n_intervals == k and bm.mean == pytest.approx(2.0, abs=1e-12)
        assert bm.half_width == pytest.approx(t_quantile_975(k - 1) * 0.5 / math.sqrt(k - 1), rel=1e-12)
        assert bm.rel_half_width == pytest.approx(bm.half_width / 2.0, rel=1e-12)
    # 16x more intervals: the half-width shrinks ~4x (1/sqrt(k)), a bit more as t(k-1) falls too
    r16, r256 = batch_means(series(16)).half_width, batch_means(series(256)).half_width
    assert r16 / r256 == pytest.approx(t_quantile_975(15) / t_quantile_975(255) * math.sqrt(255 / 15))
    assert 4.0 < r16 / r256 < 4.6


def test_the_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = random.Random(7)
    trials, covered, means = 2000, 0, []
    for _ in range(trials):
        bm = batch_means([rng.gauss(3.0, 0.3) for _ in range(8)])
        covered += abs(bm.mean - 3.0) <= bm.half_width
        means.append(bm.mean)
    assert 0.93 <= covered / trials <= 0.97
    assert sum(means) / trials == pytest.approx(3.0, abs=0.01)


def test_too_few_intervals_give_no_estimate():
    assert batch_means([1.0]).rel_half_width is None and "at least 2" in batch_means([1.0]).reason
    assert batch_means([]).n_intervals == 0


def test_interval_edges_drop_the_remainder_and_tokens_count_half_open():
    assert interval_edges(10.0, 22.5, 5.0) == [10.0, 15.0, 20.0]
    assert interval_edges(10.0, 14.0, 5.0) == []
    # a chunk on an inner edge belongs to the later interval; one on the last edge to the last one
    t = [10.0, 12.0, 15.0, 19.9, 20.0, 20.1]
    n = [1, 2, 4, 8, 16, 32]
    assert tokens_per_interval(t, n, [10.0, 15.0, 20.0]) == [3, 28]


def _power_rows(watts: float, t_end: float, gpus=(0, 1), period=0.1) -> list[dict]:
    rows = []
    for g in gpus:
        for i in range(int(t_end / period) + 2):
            t = i * period
            rows.append({"t": t, "gpu": g, "power_w": watts, "energy_j": watts * t, "temp_c": 50.0})
    return rows


def test_window_uncertainty_recovers_a_known_j_per_token():
    traces = gpu_traces_from_rows(_power_rows(150.0, 50.0))  # 2 GPUs x 150 W = 300 W
    # 60 tokens/s for 5 s, then 40 tokens/s for 5 s, alternating: 1500 J / 300 or 200 tokens
    token_t, token_n = [], []
    for i in range(8):
        rate = 60 if i % 2 == 0 else 40
        for j in range(rate * 5):
            token_t.append(2.0 + 5 * i + (j + 0.5) / rate)
            token_n.append(1)
    bm = window_uncertainty(traces, token_t, token_n, 2.0, 43.0, 5.0)  # 41 s: 8 whole intervals
    values = [1500 / 300, 1500 / 200] * 4
    assert bm.n_intervals == 8
    assert bm.mean == pytest.approx(sum(values) / 8, rel=1e-9)
    expected_hw = t_quantile_975(7) * (1.25 * math.sqrt(8 / 7)) / math.sqrt(8)
    assert bm.half_width == pytest.approx(expected_hw, rel=1e-9)
    # a steady stream has no spread at all
    flat = window_uncertainty(traces, [2.0 + (i + 0.5) / 50 for i in range(2000)], [1] * 2000, 2.0, 37.0, 5.0)
    assert flat.mean == pytest.approx(300 * 5 / 250, rel=1e-9) and flat.half_width == pytest.approx(
        0, abs=1e-9
    )


def test_window_uncertainty_names_why_there_is_none():
    traces = gpu_traces_from_rows(_power_rows(100.0, 10.0))
    uncovered = window_uncertainty(traces, [1.0, 6.0, 11.0], [1, 1, 1], 0.0, 15.0, 5.0)
    assert uncovered.mean is None and "do not cover" in uncovered.reason
    empty = window_uncertainty(traces, [1.0, 2.0], [1, 1], 0.0, 10.0, 5.0)
    assert empty.mean is None and empty.reason == "an interval streamed no tokens"
