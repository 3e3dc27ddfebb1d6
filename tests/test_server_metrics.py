"""Parsing vLLM's Prometheus /metrics (old and new names) and scraping it."""

from __future__ import annotations

import asyncio
import threading
import time

from aiohttp import web
from jouleflow.measure.server_metrics import MetricsScraper, parse_metrics

# Written by hand after vLLM's V1 exposition (0.10+ names; two data-parallel engines), with the
# histograms and process metrics a real /metrics also carries, which the parser must skip.
VLLM_NEW = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 64.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 60.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 400.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 396.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.3
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
vllm:num_preemptions_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 150000.0
vllm:generation_tokens_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140000.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 20000.0
vllm:prompt_tokens_total{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 18000.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 1024.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 1024.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 812.5
"""

# Older vLLM (V0 names): gpu_cache_usage_perc, num_preemptions as a counter family.
VLLM_OLD = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 8.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="m"} 3.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 777.0
"""


def test_new_names_sum_over_engines_and_average_kv():
    row = parse_metrics(VLLM_NEW)
    assert row == {
        "running": 124.0,
        "waiting": 796.0,
        "kv_cache_usage": 0.4,  # mean of 0.5 and 0.3: a fraction, not a count
        "preemptions": 3.0,
        "generation_tokens": 290000.0,
        "prompt_tokens": 38000.0,
    }


def test_old_names():
    assert parse_metrics(VLLM_OLD) == {
        "running": 8.0,
        "waiting": 0.0,
        "kv_cache_usage": 0.25,
        "preemptions": 3.0,
        "generation_tokens": 777.0,
        "prompt_tokens": None,  # this exposition has no prompt-token counter
    }


def test_new_name_preferred_when_both_exposed():
    both = VLLM_OLD.replace(
        'gpu_cache_usage_perc{model_name="m"} 0.25', 'gpu_cache_usage_perc{model_name="m"} 0.9'
    )
    both += (
        "# HELP vllm:kv_cache_usage_perc KV-cache usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        'vllm:kv_cache_usage_perc{model_name="m"} 0.1\n'
    )
    assert parse_metrics(both)["kv_cache_usage"] == 0.1


def test_absent_metrics_are_none():
    assert parse_metrics("# HELP x y\n# TYPE x gauge\nx 1.0\n") == {
        "running": None,
        "waiting": None,
        "kv_cache_usage": None,
        "preemptions": None,
        "generation_tokens": None,
        "prompt_tokens": None,
    }


def test_scraper_polls_a_live_endpoint():
    hits = {"n": 0}

    async def metrics(request: web.Request) -> web.Response:
        hits["n"] += 1
        return web.Response(text=VLLM_OLD.replace("8.0", f"{hits['n']}.0", 1), content_type="text/plain")

    ready = threading.Event()
    state: dict = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = site._server.sockets[0].getsockname()[1]
        state["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    ready.wait(5)
    scraper = MetricsScraper(f"http://127.0.0.1:{state['port']}/metrics", period_s=0.1)
    t0 = time.time()
    scraper.start()
    time.sleep(0.75)
    rows = scraper.stop()
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    assert 3 <= len(rows) <= 10  # ~7 at 10 Hz; slack for a loaded CI machine
    assert [r["running"] for r in rows] == [float(i + 1) for i in range(len(rows))]
    assert all(t0 <= r["t"] <= time.time() for r in rows)
    assert rows == sorted(rows, key=lambda r: r["t"])


def test_scraper_survives_a_dead_endpoint():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scraper = MetricsScraper(f"http://127.0.0.1:{port}/metrics", period_s=0.05, timeout_s=0.5)
    scraper.start()
    time.sleep(0.3)
    assert scraper.stop() == []
    assert scraper.errors >= 2 and "URLError" in scraper.last_error
