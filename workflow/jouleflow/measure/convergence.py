"""The live stopping rule of arrival=saturate: stop once J/token is known precisely enough.

Full batch: the first moment the engine runs a full batch, as the offline window sees it: the
first server sample with running >= (1 - tolerance) x B (analysis.steady.server_window), or,
for engines without /metrics, the first time the client's count of generating requests reaches
that (analysis.steady.client_window_active). Steady start: `warmup_response_times` mean response
times later, once the batch's context mix has settled (measure.warmup; at the full batch when 0).
From there the window is cut into intervals of `interval_s`; each complete interval gets its
energy (sampled power, trapezoids) and its streamed tokens, and analysis.uncertainty turns them
into the batch-means J/token and its 95% confidence half-width: the same math the summary applies
to the recorded traces; nothing before the steady start counts.

Stop with "converged" once the window is at least `target_window_s` long, the estimate covers it
(its whole intervals span `target_window_s`: the power sampler's rows and the engine's counter arrive
a little behind the clock, and a loaded host once stopped a 6 s window on 5 of its 6 intervals), and
the relative half-width is at most `target_ci`; at `max_load_s` after the load began stop anyway with
"time limit: J/token ±X% after Y s" (the analysis flags such a run), or, still inside the
warm-up, "time limit: warm-up (...) not over after Y s". Without an energy sensor there is no
J/token: the load stops once the window reaches `target_window_s`.

Front end: a window in which the engine ran short of B with nothing waiting (the client keeps more
than B in flight, so the requests sat in the server's front end: vLLM's API server at ~10,000
tokens/s) for more than the validity threshold's share (`frontend-starved`, 10 %) of the longest
window the load could still reach is invalid whatever follows: the load stops then ("front end:
..."), instead of spending the rest of `max_load_s` on a run the analysis will flag.

Token counts are binned incrementally (a cursor per request), and power is read once per new
interval, so a check costs O(new chunks + requests), whatever the run's length. Counts of a
chunk are taken as streamed; the few a stream's final usage reconciles later are not revisited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from jouleflow.analysis import steady
from jouleflow.analysis.power_trace import gpu_traces_from_rows
from jouleflow.analysis.uncertainty import (
    BatchMeans,
    batch_means,
    counter_per_interval,
    energy_per_interval,
    j_per_token_values,
    whole_intervals,
)
from jouleflow.analysis.validity import DEFAULT_THRESHOLDS
from jouleflow.measure.jobconfig import LLMJobConfig, SaturateConfig
from jouleflow.measure.load import LoadSettings, RequestResult
from jouleflow.measure.warmup import Warmup, mean_output_length
from jouleflow.records import RunRecord

CONVERGED = "converged"
FRONT_END = "front end"
# a saturate load keeps B + headroom in flight: the client always holds more than the engine runs
MORE_THAN_ANY_BATCH = steady.StepFunction((), (), math.inf)
WINDOW_REACHED = "target window reached (no energy sensor)"


class Convergence:
    """A `stop_check` for load.run_load; `record()` is what run.json keeps of it."""

    def __init__(
        self,
        targets: SaturateConfig,
        batch: int,
        server_rows: Callable[[], Sequence[dict]] | None = None,
        power_rows: Callable[[], Sequence[dict]] | None = None,
        tolerance: float = steady.DEFAULT_FULL_TOLERANCE,
        clock: Callable[[], float] = time.time,
        warmup: Warmup | None = None,
    ) -> None:
        self.targets = targets
        self.batch = batch
        self.server_rows = server_rows
        self.power_rows = power_rows
        self.tolerance = tolerance
        self.clock = clock
        self.t0 = clock()  # max_load_s counts from here (built right before the load starts)
        self.full_at: float | None = None  # the batch first full
        self.start: float | None = None  # the window's start: the warm-up's end
        # Without the request set's lengths (a bare stopping rule) there is nothing to wait for.
        self.warmup = warmup or Warmup(targets.warmup_response_times, None, "no request set given", 0.0)
        self.start_source: str | None = None
        self.estimate: BatchMeans | None = None
        self.in_flight: int | None = None
        self.top_up: Any = None  # measure.topup.TopUp when the headroom adapts
        self.window_s: float | None = None
        self._tokens: list[int] = []  # per interval from the start, the current one included
        self._energies: list[float] = []  # per complete interval
        self._cursor: dict[int, int] = {}  # request index -> chunks already binned
        self.token_source: str | None = None  # where the intervals' token counts came from
        self.starved_s = 0.0  # window time with the batch short and nothing waiting in the engine
        self._starved_upto: float | None = None  # server rows before this time are counted

    # --- steady start --------------------------------------------------------------------------
    def _find_start(self, results: Sequence[RequestResult]) -> None:
        rows = [r for r in (self.server_rows() if self.server_rows else []) if r.get("running") is not None]
        if rows:
            w = steady.server_window(
                [r["t"] for r in rows], [r["running"] for r in rows], self.batch, self.tolerance
            )
            self.full_at, self.start_source = w.start, steady.SERVER
            return
        firsts = [r.chunk_t[0] if r.chunk_t else None for r in results]
        ends = [r.t_end if r.chunk_t else None for r in results]
        w = steady.client_window_active(firsts, ends, self.batch, self.tolerance)
        self.full_at, self.start_source = w.start, steady.CLIENT_ACTIVE

    # --- intervals -----------------------------------------------------------------------------
    def _bin_tokens(self, results: Sequence[RequestResult]) -> None:
        assert self.start is not None
        width = self.targets.interval_s
        for i, r in enumerate(results):
            done = self._cursor.get(i, 0)
            ts, ns = r.chunk_t, r.chunk_n
            upto = min(len(ts), len(ns))
            for j in range(done, upto):
                if ts[j] < self.start:
                    continue
                k = int((ts[j] - self.start) // width)
                if k >= len(self._tokens):
                    self._tokens.extend([0] * (k + 1 - len(self._tokens)))
                self._tokens[k] += ns[j]
            if upto > done:
                self._cursor[i] = upto

    def _add_energies(self, now: float) -> None:
        assert self.start is not None and self.power_rows is not None
        width = self.targets.interval_s
        if int((now - self.start) // width) <= len(self._energies):
            return  # no new complete interval: leave the sampler alone
        traces = gpu_traces_from_rows(self.power_rows())
        if not traces:
            return
        covered = min(tr.t[-1] for tr in traces.values())
        k = int((min(now, covered) - self.start) // width)
        edges = [self.start + i * width for i in range(len(self._energies), k + 1)]
        for e in energy_per_interval(traces, edges):
            if e is None:  # a gap: later intervals wait (the run's analysis flags gaps)
                break
            self._energies.append(e)

    def _update(self, results: Sequence[RequestResult], now: float) -> None:
        self._bin_tokens(results)
        if self.power_rows is None:
            return
        self._add_energies(now)
        k = len(self._energies)
        tokens = self._server_tokens(k)
        if tokens is None:
            self.token_source = "client chunks"
            tokens = (self._tokens + [0] * k)[:k]
        n = len(tokens)  # the counter may lag the power sampler by a scrape: those intervals wait
        values = j_per_token_values(self._energies[:n], tokens)
        self.estimate = BatchMeans(n, reason=values) if isinstance(values, str) else batch_means(values)

    def _server_tokens(self, k: int) -> list[float | None] | None:
        """Tokens per interval from the engine's generation counter (None without one).

        Preferred over the streamed chunks: an engine that falls behind (vLLM at batch 128 on an
        H200) merges several tokens into one chunk, which the client counts as one until the
        stream's final usage; the live J/token then read 30% high and its CI 3x too wide.
        """
        if k == 0 or self.server_rows is None:
            return None
        rows = [r for r in self.server_rows() if r.get("generation_tokens") is not None]
        if len(rows) < 2:
            return None
        assert self.start is not None
        edges = [self.start + i * self.targets.interval_s for i in range(k + 1)]
        tokens = counter_per_interval([r["t"] for r in rows], [r["generation_tokens"] for r in rows], edges)
        covered = next((i for i, n in enumerate(tokens) if n is None), len(tokens))
        self.token_source = "server counter"
        return tokens[:covered]

    # --- the front end -------------------------------------------------------------------------
    def _count_starved(self, now: float) -> None:
        """Add the window time since the last check in which the batch ran short with none waiting
        (analysis.steady.starved_share; the client holds more than B in flight throughout)."""
        assert self.start is not None
        rows = [
            r for r in (self.server_rows() if self.server_rows else [])
            if r.get("running") is not None and r.get("waiting") is not None
        ]  # fmt: skip
        upto = self._starved_upto if self._starved_upto is not None else self.start
        share = steady.starved_share(
            [r["t"] for r in rows], [r["running"] for r in rows], [r["waiting"] for r in rows],
            MORE_THAN_ANY_BATCH, self.batch, upto, now, DEFAULT_THRESHOLDS.min_batch_fraction,
        )  # fmt: skip
        if share is not None:
            self.starved_s += share * (now - upto)
            self._starved_upto = now

    def _front_end_verdict(self) -> str | None:
        assert self.start is not None
        longest = self.t0 + self.targets.max_load_s - self.start  # the longest window still reachable
        share = DEFAULT_THRESHOLDS.max_starved_share
        if longest > 0 and self.starved_s > share * longest:
            return (
                f"{FRONT_END}: the engine ran fewer than {DEFAULT_THRESHOLDS.min_batch_fraction:g} x"
                f" B={self.batch} with nothing waiting for {self.starved_s:.1f} s of the window, more than"
                f" {share:g} of the longest it could reach ({longest:.0f} s): the run cannot be valid"
                " (frontend-starved)"
            )
        return None

    # --- the check -----------------------------------------------------------------------------
    def __call__(self, results: Sequence[RequestResult]) -> str | None:
        now = self.clock()
        if self.full_at is None:
            self._find_start(results)
        if self.full_at is not None and self.start is None:
            rows = self.server_rows() if self.server_rows else []
            if self.warmup.over(self.full_at, now, rows, results):
                self.start = self.warmup.end
        if self.start is not None:
            self.window_s = max(now - self.start, 0.0)
            self._update(results, now)
            self._count_starved(now)
            verdict = self._front_end_verdict()
            if verdict is not None:
                return verdict
        if self.start is not None and self.window_s >= self.targets.target_window_s:
            if self.power_rows is None:
                return WINDOW_REACHED
            rel = self.estimate.rel_half_width if self.estimate else None
            if rel is not None and rel <= self.targets.target_ci and self._estimate_covers_window():
                return CONVERGED
        if now - self.t0 >= self.targets.max_load_s:
            if self.full_at is not None and self.start is None:
                return f"time limit: warm-up ({self.warmup.describe(self.full_at)}) not over after {now - self.t0:.0f} s"
            return f"time limit: J/token {self.ci_text()} after {now - self.t0:.0f} s"
        return None

    def _estimate_covers_window(self) -> bool:
        """The estimate's whole intervals span the target window (not a shorter prefix of it)."""
        needed = whole_intervals(self.targets.target_window_s, self.targets.interval_s)
        return self.estimate is not None and self.estimate.n_intervals >= needed

    def ci_text(self) -> str:
        rel = self.estimate.rel_half_width if self.estimate else None
        return "uncertainty unknown" if rel is None or math.isnan(rel) else f"±{100 * rel:.2g}%"

    def record(self, stop_reason: str | None, t_stop: float | None) -> dict[str, Any]:
        """run.json `convergence`: targets, why the load stopped, the window and CI it reached."""
        est = self.estimate
        end = t_stop if t_stop is not None else self.clock()
        return {
            "targets": {
                "target_window_s": self.targets.target_window_s,
                "target_ci": self.targets.target_ci,
                "max_load_s": self.targets.max_load_s,
                "interval_s": self.targets.interval_s,
                "warmup_response_times": self.targets.warmup_response_times,
            },
            "stop_reason": stop_reason,
            "converged": stop_reason == CONVERGED,
            "steady_start": self.start,
            "start_source": self.start_source,
            "window_s": end - self.start if self.start is not None else None,
            "ci_rel": est.rel_half_width if est else None,
            "n_intervals": est.n_intervals if est else 0,
            "j_per_token": est.mean if est else None,
            "token_source": self.token_source,
            "starved_s": self.starved_s if self.start is not None else None,
            **self.warmup.record(self.full_at, end),
        }

    def add_to_run(self, run: RunRecord, load_result: Any) -> RunRecord:
        """The saturate run's record: `convergence`, and the stop in `load`."""
        results = load_result.results
        load = {
            **(run.load or {}),
            "arrival": "saturate",
            "in_flight": self.in_flight,
            "stopped": load_result.stopped,
            "t_stop": load_result.t_stop,
            "stopped_requests": sum(r.stopped and r.t_send is not None for r in results),
            "not_sent": sum(r.t_send is None for r in results),
        }
        if self.top_up is not None and self.in_flight is not None:
            final = self.top_up.raises[-1][1] if self.top_up.raises else self.in_flight
            load.update(self.top_up.record(self.in_flight, final))
        return replace(run, convergence=self.record(load_result.stopped, load_result.t_stop), load=load)


def saturate_load(
    cfg: LLMJobConfig,
    settings: LoadSettings,
    caps_batch: bool,
    scraper: Any,
    sampler: Any,
    notes: list[str],
    specs: Sequence[Any] = (),
) -> Convergence:
    """Set up arrival=saturate for a session: the in-flight count and the stopping rule.

    `specs`: the request set (requestset.RequestSpec), whose lengths set the warm-up.
    """
    assert cfg.saturate is not None  # validated: arrival=saturate always has its section
    full = (
        cfg.batch_size * cfg.data_parallel
    )  # what the server runs when full (analysis.energy.full_batch_of)
    headroom = cfg.saturate_headroom()
    if not caps_batch:  # the engine would run every request sent: the client is the batch cap
        headroom = 0
        notes.append(f"{cfg.engine} has no max-num-seqs: saturate keeps exactly B={full} in flight")
    settings.in_flight = full + headroom
    adaptive = caps_batch and cfg.saturate.headroom is None and scraper is not None
    fixed = [bool(r.ignore_eos and settings.send_ignore_eos) for r in specs]
    mean_tokens, source = mean_output_length([r.max_tokens for r in specs], fixed)
    warmup = Warmup(cfg.saturate.warmup_response_times, mean_tokens, source, cfg.saturate.interval_s)
    if warmup.response_times > 0 and mean_tokens is None:
        notes.append(f"saturate: {source}")
    conv = Convergence(
        cfg.saturate,
        full,
        server_rows=(lambda: list(scraper.rows)) if scraper is not None else None,
        power_rows=sampler.rows if sampler is not None else None,
        warmup=warmup,
    )
    conv.in_flight = settings.in_flight
    if adaptive:  # the default headroom is a start: raised while the engine runs short (measure.topup)
        from jouleflow.measure.topup import TopUp

        conv.top_up = TopUp(
            full, max(4 * full, settings.in_flight), lambda: scraper.rows, conv.tolerance, floor=headroom
        )
    return conv
