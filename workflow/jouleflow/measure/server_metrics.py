"""Scrape the engine's Prometheus /metrics (~2 Hz) into rows of traces.SERVER.

vLLM's names changed across versions; both spellings are accepted:
running `vllm:num_requests_running`, waiting `vllm:num_requests_waiting`, KV-cache usage
`vllm:kv_cache_usage_perc` (new) / `vllm:gpu_cache_usage_perc` (old), preemptions
`vllm:num_preemptions_total` / `vllm:num_preemptions`, generation tokens
`vllm:generation_tokens_total` / `vllm:generation_tokens`, prompt tokens `vllm:prompt_tokens_total` /
`vllm:prompt_tokens`.
Samples of one metric are summed over their labels (engines, models), except the KV-cache
usage, a fraction, which is averaged (data-parallel engines each report their own cache).
With `cpu_s` given, each row also carries `engine_cpu_s`, read when the response arrived.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

# column -> accepted sample names, preferred first
SAMPLE_NAMES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "preemptions": ("vllm:num_preemptions_total", "vllm:num_preemptions"),
    "generation_tokens": ("vllm:generation_tokens_total", "vllm:generation_tokens"),
    "prompt_tokens": ("vllm:prompt_tokens_total", "vllm:prompt_tokens"),
}
_AVERAGED = {"kv_cache_usage"}
_LOOKUP = {name: (col, rank) for col, names in SAMPLE_NAMES.items() for rank, name in enumerate(names)}


def parse_metrics(text: str) -> dict[str, float | None]:
    """One SERVER row (without `t`) from a Prometheus exposition text; None where a metric is absent."""
    found: dict[str, dict[int, list[float]]] = {col: {} for col in SAMPLE_NAMES}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            hit = _LOOKUP.get(sample.name)
            if hit is None:
                continue
            col, rank = hit
            found[col].setdefault(rank, []).append(float(sample.value))
    row: dict[str, float | None] = {}
    for col, by_rank in found.items():
        if not by_rank:
            row[col] = None
            continue
        values = by_rank[min(by_rank)]  # the preferred (newest) name when both are exposed
        row[col] = sum(values) / len(values) if col in _AVERAGED else sum(values)
    return row


class MetricsScraper:
    """Background thread polling `url` every `period_s`; rows carry unix time `t` of the response."""

    def __init__(
        self,
        url: str,
        period_s: float = 0.5,
        timeout_s: float = 2.0,
        cpu_s: Callable[[], float | None] | None = None,
    ) -> None:
        self.url = url
        self.cpu_s = cpu_s  # the engine's cumulative CPU seconds (latents.tree_cpu_s)
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.rows: list[dict[str, Any]] = []
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scrape_once(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                text = resp.read().decode("utf-8", "replace")
            t = time.time()
            row = parse_metrics(text)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None
        row["t"] = t
        if self.cpu_s is not None:
            row["engine_cpu_s"] = self.cpu_s()
        self.rows.append(row)
        return row

    def latest(self) -> dict[str, Any] | None:
        return self.rows[-1] if self.rows else None

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.scrape_once()
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (slow server): do not burst to catch up
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + self.period_s + 1)
        if self.errors:
            log.info("metrics scraper: %d failed scrapes (last: %s)", self.errors, self.last_error)
        return self.rows
