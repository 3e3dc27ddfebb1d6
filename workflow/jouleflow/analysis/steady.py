"""Steady-state window of an LLM serving run: the span where the engine runs a full batch of B.

Three independent estimates, all reported (docs/method.md has the exact definitions):

- server: from the engine's own `running` gauge (server.parquet, scraped at ~2 Hz): from the first
  sample with running >= (1 - tolerance) * B to the last such sample.
- client-mlenergy: ML.ENERGY's definition from the client's own timestamps: from the B-th first
  token to the (N - B - 1)-th completion (ordinals 1-based; failed requests count as completed
  at their end time, as in ML.ENERGY's request tracker).
- client-active: from the client's count of *active* requests (first token received, not yet
  ended), which mirrors the server's `running`: first time it reaches the threshold to the moment
  it last drops below it.

The accounting window is the server one when server metrics give one, else client-mlenergy.
A saturate run (the load stopped itself at `t_stop`, requests still in flight) has no ramp-down:
every window ends at the stop at the latest (`until_stop`), and the client window runs from the
B-th first token to the stop (`client_window_saturate`), as there is no (N - B - 1)-th completion.
A saturate run that recorded a warm-up (run.json `convergence.warmup_end`) starts every window
there at the earliest (`after_warmup`): before it the batch's contexts are all young.
Only stdlib here: inputs are plain sequences so that the rules are easy to check by hand.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# A sample counts as "full batch" when running >= (1 - tolerance) * B. 5% absorbs a gauge caught
# mid-step (a finished request not yet replaced) at large B and is exact for B <= 19.
DEFAULT_FULL_TOLERANCE = 0.05

SERVER = "server"
CLIENT_MLENERGY = "client-mlenergy"
CLIENT_ACTIVE = "client-active"


@dataclass(frozen=True)
class Window:
    """A time window in unix seconds; start/end are None when there is none, with the reason."""

    source: str
    start: float | None = None
    end: float | None = None
    reason: str | None = None

    @property
    def found(self) -> bool:
        return self.start is not None and self.end is not None and self.end > self.start

    @property
    def duration_s(self) -> float | None:
        return (self.end - self.start) if self.found else None

    def to_dict(self) -> dict:
        return {**asdict(self), "duration_s": self.duration_s}


def full_threshold(batch_size: int, tolerance: float = DEFAULT_FULL_TOLERANCE) -> float:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"full-batch tolerance must be in [0, 1), got {tolerance}")
    return batch_size * (1.0 - tolerance)


def server_window(
    t: Sequence[float],
    running: Sequence[float | None],
    batch_size: int,
    tolerance: float = DEFAULT_FULL_TOLERANCE,
) -> Window:
    """First to last server sample with running >= (1 - tolerance) * B."""
    samples = sorted((ti, r) for ti, r in zip(t, running, strict=True) if r is not None and not math.isnan(r))
    if not samples:
        return Window(SERVER, reason="no server metrics (no `running` samples)")
    threshold = full_threshold(batch_size, tolerance)
    full = [ti for ti, r in samples if r >= threshold - 1e-9]
    if not full:
        peak = max(r for _, r in samples)
        return Window(SERVER, reason=f"server never ran a full batch (max running {peak:g} < {threshold:g})")
    if full[-1] <= full[0]:
        return Window(SERVER, full[0], full[-1], reason="full batch seen in a single server sample only")
    return Window(SERVER, full[0], full[-1])


def client_window_mlenergy(
    t_first_token: Sequence[float | None],
    t_end: Sequence[float | None],
    batch_size: int,
) -> Window:
    """ML.ENERGY: from the B-th first token to the (N - B - 1)-th completion (1-based ordinals)."""
    n = len(t_end)
    firsts = sorted(x for x in t_first_token if x is not None)
    ends = sorted(x for x in t_end if x is not None)
    k_end = n - batch_size - 1
    if k_end < 1:
        return Window(CLIENT_MLENERGY, reason=f"N={n} requests <= B+1={batch_size + 1}: no steady state")
    if len(firsts) < batch_size:
        return Window(
            CLIENT_MLENERGY,
            reason=f"only {len(firsts)} requests got a first token, fewer than B={batch_size}",
        )
    if len(ends) < k_end:
        return Window(CLIENT_MLENERGY, reason=f"only {len(ends)} requests ended, fewer than N-B-1={k_end}")
    start, end = firsts[batch_size - 1], ends[k_end - 1]
    if end <= start:
        return Window(CLIENT_MLENERGY, start, end, reason="ramp-down began before ramp-up ended")
    return Window(CLIENT_MLENERGY, start, end)


@dataclass(frozen=True)
class StepFunction:
    """A right-continuous step function: value[i] holds on [t[i], t[i+1]); value before t[0] is `initial`."""

    t: tuple[float, ...]
    value: tuple[float, ...]
    initial: float = 0.0

    def at(self, x: float) -> float:
        i = bisect_right(self.t, x) - 1
        return self.initial if i < 0 else self.value[i]

    def mean(self, start: float, end: float) -> float | None:
        """Time-weighted mean over [start, end]."""
        if not end > start:
            return None
        area, cursor, level = 0.0, start, self.at(start)
        for ti, vi in zip(self.t, self.value, strict=True):
            if ti <= start:
                continue
            if ti >= end:
                break
            area += level * (ti - cursor)
            cursor, level = ti, vi
        area += level * (end - cursor)
        return area / (end - start)


def counting_function(starts: Sequence[float | None], ends: Sequence[float | None]) -> StepFunction:
    """How many intervals [start, end) are open at each time (events at one instant applied together).

    An interval with a start but no end stays open; one without a start is ignored.
    """
    delta: dict[float, int] = {}
    for s, e in zip(starts, ends, strict=True):
        if s is None:
            continue
        delta[s] = delta.get(s, 0) + 1
        if e is not None:
            delta[e] = delta.get(e, 0) - 1
    times = sorted(delta)
    level, values = 0, []
    for ti in times:
        level += delta[ti]
        values.append(float(level))
    return StepFunction(tuple(times), tuple(values))


def active_counts(t_first_token: Sequence[float | None], t_end: Sequence[float | None]) -> StepFunction:
    """Client-side count of requests generating: first token received and not yet ended."""
    return counting_function(t_first_token, t_end)


def in_flight_counts(t_send: Sequence[float | None], t_end: Sequence[float | None]) -> StepFunction:
    """Client-side count of requests sent and not yet ended (queued at the server or generating)."""
    return counting_function(t_send, t_end)


def starved_share(
    server_t: Sequence[float],
    running: Sequence[float],
    waiting: Sequence[float],
    in_flight: StepFunction,
    full_batch: int,
    start: float,
    end: float,
    batch_fraction: float,
    idle_waiting: float = 0.5,
) -> float | None:
    """Share of [start, end] in which the engine ran fewer than batch_fraction x B with none waiting
    (fewer than `idle_waiting`) while the client held more requests in flight than the engine ran:
    they sat in the server's front end. Each server sample (sorted by time) holds until the next."""
    if not (end > start and full_batch and len(server_t)):
        return None
    starved = 0.0
    for i, ti in enumerate(server_t):
        lo, hi = max(ti, start), min(server_t[i + 1] if i + 1 < len(server_t) else end, end)
        if hi <= lo:
            continue
        short = running[i] < batch_fraction * full_batch and waiting[i] < idle_waiting
        if short and in_flight.at(ti) > running[i] + 1:
            starved += hi - lo
    return starved / (end - start)


def client_window_active(
    t_first_token: Sequence[float | None],
    t_end: Sequence[float | None],
    batch_size: int,
    tolerance: float = DEFAULT_FULL_TOLERANCE,
) -> Window:
    """From the first time the active count reaches (1 - tolerance) * B to the last time it drops below."""
    counts = active_counts(t_first_token, t_end)
    threshold = full_threshold(batch_size, tolerance)
    start = end = None
    full = counts.initial >= threshold
    for ti, vi in zip(counts.t, counts.value, strict=True):
        now_full = vi >= threshold - 1e-9
        if now_full and not full and start is None:
            start = ti
        if full and not now_full:
            end = ti
        full = now_full
    if start is None:
        peak = max(counts.value, default=0.0)
        return Window(
            CLIENT_ACTIVE, reason=f"client never saw a full batch active (max {peak:g} < {threshold:g})"
        )
    if end is None or end <= start:
        return Window(CLIENT_ACTIVE, start, end, reason="the active count never dropped below the threshold")
    return Window(CLIENT_ACTIVE, start, end)


def until_stop(w: Window, t_stop: float) -> Window:
    """The window cut at the load's stop (a gauge sampled just after it still shows a full batch)."""
    if w.start is None or w.end is None or w.end <= t_stop:
        return w
    if w.start >= t_stop:
        return Window(w.source, reason=f"full batch only after the load stopped ({w.reason or 'ok'})")
    return Window(w.source, w.start, t_stop, w.reason)


def after_warmup(w: Window, warmup_end: float) -> Window:
    """The window started no earlier than a saturate load's warm-up end (its context mix settled)."""
    if w.start is None or warmup_end <= w.start:
        return w
    if w.end is not None and warmup_end >= w.end:
        return Window(w.source, reason=f"the warm-up ended only at the window's end ({w.reason or 'ok'})")
    return Window(w.source, warmup_end, w.end, w.reason)


def client_window_saturate(t_first_token: Sequence[float | None], batch_size: int, t_stop: float) -> Window:
    """A saturate run's client window: from the B-th first token to the load's stop."""
    firsts = sorted(x for x in t_first_token if x is not None)
    if len(firsts) < batch_size:
        return Window(
            CLIENT_MLENERGY,
            reason=f"only {len(firsts)} requests got a first token, fewer than B={batch_size}",
        )
    if firsts[batch_size - 1] >= t_stop:
        return Window(CLIENT_MLENERGY, reason="the load stopped before B requests got a first token")
    return Window(CLIENT_MLENERGY, firsts[batch_size - 1], t_stop)


def window_overlap(a: Window, b: Window) -> float | None:
    """Intersection over union of two windows (1 = identical, 0 = disjoint); None if either is missing."""
    if not (a.found and b.found):
        return None
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union


def choose_window(server: Window, client: Window) -> Window:
    """The server window when the engine's metrics give one, else ML.ENERGY's client window."""
    return server if server.found else client
