"""Steady-state windows on hand-made traces (answers worked out by hand in the comments)."""

from __future__ import annotations

import pytest
from handmade_runs import BATCH, SCHEDULE
from hypothesis import given
from hypothesis import strategies as st
from jouleflow.analysis import steady

FIRST = [float(f) for f, _ in SCHEDULE]
END = [float(e) for _, e in SCHEDULE]


def test_mlenergy_client_window_is_bth_first_token_to_n_minus_b_minus_1th_completion():
    # first tokens sorted 1010, 1011, ... -> 2nd = 1011; ends sorted 1030, 1040, 1041 -> 3rd (6-2-1) = 1041
    w = steady.client_window_mlenergy(FIRST, END, BATCH)
    assert (w.start, w.end, w.duration_s) == (1011.0, 1041.0, 30.0)
    assert w.source == steady.CLIENT_MLENERGY and w.found


def test_mlenergy_client_window_ignores_input_order():
    w = steady.client_window_mlenergy(FIRST[::-1], END[::-1], BATCH)
    assert (w.start, w.end) == (1011.0, 1041.0)


@pytest.mark.parametrize("batch", [5, 6, 9])
def test_no_steady_state_when_n_at_most_b_plus_1(batch):
    w = steady.client_window_mlenergy(FIRST, END, batch)
    assert not w.found and w.start is None and "no steady state" in w.reason


def test_ragged_start_fewer_first_tokens_than_b():
    # B = 4 but only 3 requests ever produced a token (the others failed before streaming).
    first = [1010.0, 1011.0, 1012.0, None, None, None, None, None, None, None]
    end = [1020.0, 1021.0, 1022.0, 1001.0, 1001.0, 1001.0, 1001.0, 1001.0, 1001.0, 1001.0]
    w = steady.client_window_mlenergy(first, end, 4)
    assert not w.found and "fewer than B=4" in w.reason


def test_ramp_down_before_ramp_up_is_no_window():
    # B=2, N=4: window = 2nd first token (1020) .. 1st completion (1015) -> empty.
    w = steady.client_window_mlenergy([1010.0, 1020.0, 1030.0, 1040.0], [1015.0, 1035.0, 1045.0, 1050.0], 2)
    assert not w.found and w.start == 1020.0 and w.end == 1015.0


def test_active_window_first_reach_to_last_drop():
    # Active count is 2 from 1011 (r1's first token) until r4 ends at 1044.
    w = steady.client_window_active(FIRST, END, BATCH)
    assert (w.start, w.end) == (1011.0, 1044.0)


def test_active_window_tolerance():
    # B=3 is never reached (at most 2 active); with tolerance 1/3 the threshold is 2.
    assert not steady.client_window_active(FIRST, END, 3).found
    w = steady.client_window_active(FIRST, END, 3, tolerance=1 / 3)
    assert (w.start, w.end) == (1011.0, 1044.0)


def test_server_window_first_to_last_full_sample():
    t = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    running = [10, 40, 64, 63, 64, 62, 64, 30]
    # tolerance 5%: threshold 60.8 -> full at 1.0 .. 3.0 (62 and 63 count; the dip does not split it)
    w = steady.server_window(t, running, 64)
    assert (w.start, w.end) == (1.0, 3.0)
    # exact: threshold 64 -> same first/last samples here
    assert (
        steady.server_window(t, running, 64, tolerance=0.0).start,
        steady.server_window(t, running, 64, 0.0).end,
    ) == (
        1.0,
        3.0,
    )
    # B = 65 never reached even with tolerance 0: 64 < 65
    assert not steady.server_window(t, running, 65, tolerance=0.0).found


def test_server_window_ignores_missing_samples_and_order():
    t = [3.0, 1.0, 2.0, 4.0, 0.0]
    running = [8.0, 8.0, None, float("nan"), 2.0]
    w = steady.server_window(t, running, 8)
    assert (w.start, w.end) == (1.0, 3.0)


def test_server_window_without_samples():
    w = steady.server_window([], [], 8)
    assert not w.found and "no server metrics" in w.reason


def test_server_window_single_full_sample_is_not_a_window():
    w = steady.server_window([0.0, 1.0, 2.0], [1.0, 8.0, 1.0], 8)
    assert not w.found


def test_counting_function_applies_simultaneous_events_together():
    # [0, 2), [1, 2), [2, 3): at 2 two end and one starts -> 1 (never a spurious 3 or 0)
    f = steady.counting_function([0.0, 1.0, 2.0], [2.0, 2.0, 3.0])
    assert f.t == (0.0, 1.0, 2.0, 3.0)
    assert f.value == (1.0, 2.0, 1.0, 0.0)
    assert f.at(-1.0) == 0.0 and f.at(1.5) == 2.0 and f.at(2.0) == 1.0


def test_in_flight_counts_from_send_to_end():
    f = steady.in_flight_counts([0.0, 0.0, 0.0], [5.0, 6.0, None])
    assert f.at(0.0) == 3.0 and f.at(5.5) == 2.0 and f.at(100.0) == 1.0


def test_step_mean_is_time_weighted():
    f = steady.StepFunction((0.0, 1.0, 3.0), (2.0, 4.0, 0.0))
    # over [0.5, 4]: 2*0.5 + 4*2 + 0*1 = 9 over 3.5 s
    assert f.mean(0.5, 4.0) == pytest.approx(9 / 3.5)
    # window inside one step
    assert f.mean(1.2, 2.8) == pytest.approx(4.0)
    assert f.mean(2.0, 2.0) is None


def test_window_overlap_intersection_over_union():
    a = steady.Window("a", 0.0, 10.0)
    b = steady.Window("b", 5.0, 20.0)
    assert steady.window_overlap(a, b) == pytest.approx(5 / 20)
    assert steady.window_overlap(a, steady.Window("c")) is None


def test_choose_window_prefers_server():
    server, client = steady.Window(steady.SERVER, 1.0, 9.0), steady.Window(steady.CLIENT_MLENERGY, 2.0, 8.0)
    assert steady.choose_window(server, client) is server
    assert steady.choose_window(steady.Window(steady.SERVER, reason="none"), client) is client


@st.composite
def schedules(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    rows = []
    for _ in range(n):
        first = draw(st.floats(min_value=0, max_value=100, allow_nan=False))
        length = draw(st.floats(min_value=0.01, max_value=100, allow_nan=False))
        rows.append((first, first + length))
    return rows, draw(st.integers(min_value=1, max_value=n))


@given(schedules())
def test_active_window_edges_are_where_the_count_crosses_the_threshold(case):
    rows, batch = case
    first, end = [r[0] for r in rows], [r[1] for r in rows]
    w = steady.client_window_active(first, end, batch, tolerance=0.0)
    counts = steady.active_counts(first, end)
    if w.found:
        assert counts.at(w.start) >= batch  # full from its start ...
        assert counts.at(w.end) < batch  # ... and below the threshold at its end
        # never full before the start
        assert all(v < batch for t, v in zip(counts.t, counts.value, strict=True) if t < w.start)
    else:
        assert w.start is None or max(counts.value) < batch or w.end is None or w.end <= w.start


@given(schedules())
def test_mlenergy_window_contains_enough_first_tokens(case):
    rows, batch = case
    first, end = [r[0] for r in rows], [r[1] for r in rows]
    w = steady.client_window_mlenergy(first, end, batch)
    if w.found:
        assert sum(1 for f in first if f <= w.start) >= batch
        assert sum(1 for e in end if e <= w.end) >= len(rows) - batch - 1
