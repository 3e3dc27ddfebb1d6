"""arrival=saturate: when the batch's context mix is steady enough for the window to begin.

When the batch first fills, every request in it has just started: the contexts (and the KV cache,
and the attention cost per token) grow together until the first requests finish and the batch
holds requests of every age. J/token drifts upwards over that span. On an H200 (Qwen3-8B, gpqa
lengths, mean ~7,700 tokens, B = 64) a 34 s window that began at the full batch saw KV-cache use
go 0.05 -> 0.24 and J/token per 5 s go 0.095 -> 0.152, and reported 0.110 ±21%: a drift, not
noise. For chat (~630 tokens, ~5 s per response) the mix settles within seconds.

So the window begins `warmup_response_times` x the mean response time after the batch first
filled. Mean response time = mean output length x the per-request token interval:

- the output length: the mean of the request set's targets where every request has its length
  set (ignore_eos with max_tokens, sent as such); else the mean of the max_tokens set (an upper
  estimate: a request may stop at EOS first); without any max_tokens there is no estimate and no
  warm-up (recorded);
- the token interval: mean running / generation-token rate from the engine's own counter over the
  last `span_s` (or since the full batch, if shorter); for engines without the counter, the median
  over requests of their streamed inter-token interval over that span. It is read live, so the
  rate measured just before the end (the mix closest to steady) decides.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

TARGETS = "request targets (ignore_eos)"
UPPER = "max_tokens (upper estimate: requests may stop at EOS first)"


def mean_output_length(max_tokens: Sequence[int | None], fixed: Sequence[bool]) -> tuple[float | None, str]:
    """The request set's mean output length and how it was estimated (module docstring)."""
    known = [n for n in max_tokens if n is not None]
    if not known:
        return None, "no max_tokens in the request set: no output length, no warm-up"
    if len(known) == len(max_tokens) and all(fixed):
        return sum(known) / len(known), TARGETS
    return sum(known) / len(known), UPPER


class Warmup:
    """Says when the warm-up after the full batch ends; `record()` goes into run.json's convergence."""

    def __init__(
        self, response_times: float, mean_tokens: float | None, length_source: str, span_s: float
    ) -> None:
        self.response_times = response_times
        self.mean_tokens = mean_tokens
        self.length_source = length_source
        self.span_s = span_s
        self.token_interval_s: float | None = None  # seconds per token of one request, last estimate
        self.interval_source: str | None = None
        self.end: float | None = None  # when the window may begin (set once the warm-up is over)

    @property
    def active(self) -> bool:
        return self.response_times > 0 and self.mean_tokens is not None

    @property
    def mean_response_s(self) -> float | None:
        if self.mean_tokens is None or self.token_interval_s is None:
            return None
        return self.mean_tokens * self.token_interval_s

    def projected_end(self, full_at: float) -> float | None:
        rt = self.mean_response_s
        return None if rt is None else full_at + self.response_times * rt

    def over(self, full_at: float, now: float, server_rows: Sequence[dict], results: Sequence[Any]) -> bool:
        """Whether the warm-up is over at `now` (sets `end`); the estimate is refreshed until it is."""
        if self.end is not None:
            return True
        if not self.active:
            self.end = full_at
            return True
        since = max(full_at, now - self.span_s)
        counter = any(r.get("generation_tokens") is not None for r in server_rows)
        found = _server_interval(server_rows, since) if counter else _client_interval(results, since)
        if found is not None:
            self.token_interval_s, self.interval_source = found
        end = self.projected_end(full_at)
        if end is not None and now >= end:
            self.end = end
        return self.end is not None

    def describe(self, full_at: float | None) -> str:
        """What the warm-up waits for, for a stop reason."""
        end = self.projected_end(full_at) if full_at is not None else None
        if full_at is None or end is None:
            return f"{self.response_times:g} x mean response time, not yet estimated"
        return f"{self.response_times:g} x {self.mean_response_s:.1f} s mean response time, ~{end - full_at:.0f} s"

    def record(self, full_at: float | None, t_stop: float | None) -> dict[str, Any]:
        """The warm-up's keys of run.json's `convergence`.

        `warmup_end` is where the window may begin: null when the warm-up is off (0, or no output
        lengths) or the batch never filled; when the load stopped inside the warm-up, its projected
        end (or the stop, before any estimate), so that no window is taken from the warm-up.
        """
        end = self.end
        if end is None and full_at is not None and self.active:
            end = self.projected_end(full_at) or t_stop
        return {
            "warmup_response_times": self.response_times,
            "batch_full": full_at,
            "mean_output_tokens": self.mean_tokens,
            "mean_output_tokens_from": self.length_source,
            "token_interval_s": self.token_interval_s,
            "token_interval_from": self.interval_source,
            "mean_response_s": self.mean_response_s,
            "warmup_end": end if self.active else None,
        }


def _server_interval(rows: Sequence[dict], since: float) -> tuple[float, str] | None:
    """Mean running / generation-token rate over the scrapes since `since` (None before two)."""
    span = [
        r
        for r in rows
        if r.get("generation_tokens") is not None and r.get("running") is not None and r["t"] >= since
    ]
    if len(span) < 2 or span[-1]["t"] <= span[0]["t"]:
        return None
    rate = (span[-1]["generation_tokens"] - span[0]["generation_tokens"]) / (span[-1]["t"] - span[0]["t"])
    running = statistics.fmean(r["running"] for r in span)
    if not (rate > 0 and running > 0):
        return None
    return running / rate, "server counter: mean running / generation tokens per s"


def _client_interval(results: Sequence[Any], since: float) -> tuple[float, str] | None:
    """The median over requests of their streamed inter-token interval since `since`."""
    intervals = []
    for r in results:
        ts, ns = r.chunk_t, r.chunk_n
        n = j = min(len(ts), len(ns))
        while j > 0 and ts[j - 1] >= since:  # walk back over the span's chunks only
            j -= 1
        if n - j < 2 or ts[n - 1] <= ts[j]:
            continue
        tokens = sum(ns[k] for k in range(j + 1, n))  # those streamed after the span's first chunk
        if tokens > 0:
            intervals.append((ts[n - 1] - ts[j]) / tokens)
    if not intervals:
        return None
    return statistics.median(intervals), "client: median inter-token interval of the streams"
