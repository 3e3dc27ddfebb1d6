"""The load client against a test-only streaming server (tests/sse_test_server.py)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web
from jouleflow.measure.load import (
    LoadRequest,
    LoadSettings,
    LoadStats,
    build_body,
    reconcile_counts,
    run_load,
)
from sse_test_server import ServerState, make_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _with_server(state: ServerState, fn):
    runner = web.AppRunner(make_app(state), shutdown_timeout=0.5)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        return await fn(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _chat(i: int, text: str = "hello world", max_tokens: int = 10) -> LoadRequest:
    return LoadRequest(
        request_id=i, messages=[{"role": "user", "content": text}], max_tokens=max_tokens, ignore_eos=True
    )


def run(state: ServerState, requests, **settings_kw):
    stats = LoadStats()

    async def go(url):
        s = LoadSettings(base_url=url, model="m", **settings_kw)
        return await run_load(requests, s, stats)

    return asyncio.run(_with_server(state, go)), stats


def test_reconcile_counts_by_hand():
    assert reconcile_counts([1, 1, 1, 1], 4) == [1, 1, 1, 1]
    # 2 missing tokens over 4 chunks: evenly spaced chunks int((k + 0.5) * 4 / 2) = 1 and 3
    assert reconcile_counts([1, 1, 1, 1], 6) == [1, 2, 1, 2]
    # 9 missing over 4 chunks: +2 each, then one more at int(0.5 * 4 / 1) = 2
    assert reconcile_counts([1, 1, 1, 1], 13) == [3, 3, 4, 3]
    # surplus: taken from the last chunks, the first kept
    assert reconcile_counts([1, 1, 1, 1], 2) == [1, 1, 0, 0]
    assert reconcile_counts([2, 1], 1) == [1, 0]
    assert reconcile_counts([], 5) == []


def test_body_carries_sampling_extra_and_ignore_eos():
    req = _chat(0, max_tokens=7)
    s = LoadSettings(
        base_url="x", model="m", sampling={"temperature": 0.8, "top_p": 0.95}, extra_body={"min_tokens": 7}
    )
    body = json.loads(build_body(req, s))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 7 and body["ignore_eos"] is True and body["min_tokens"] == 7
    assert body["temperature"] == 0.8 and body["model"] == "m"
    s.send_ignore_eos = False
    assert "ignore_eos" not in json.loads(build_body(req, s))
    with pytest.raises(ValueError, match="request 3"):
        build_body(LoadRequest(request_id=3, prompt="p"), s)  # chat needs messages


def test_burst_records_every_chunk_and_usage():
    state = ServerState(token_delay_s=0.001)
    reqs = [_chat(i, max_tokens=5 + i) for i in range(20)]
    result, stats = run(state, reqs)
    assert state.max_running == 20  # all submitted at t0
    assert [r.request_id for r in result.results] == list(range(20))
    for r in result.results:
        assert r.ok and r.error is None and r.usage_reported
        n = 5 + r.request_id
        assert r.output_tokens == n and r.chunk_n == [1] * n and len(r.chunk_t) == n
        assert r.input_tokens == 2  # prompt_tokens from usage ("hello world")
        assert r.t_send <= r.t_first_token == r.chunk_t[0] <= r.chunk_t[-1] <= r.t_end
        assert r.chunk_t == sorted(r.chunk_t)
    assert stats.done == 20 and stats.failed == 0 and stats.tokens == sum(5 + i for i in range(20))
    assert result.t_last_end == max(r.t_end for r in result.results)


def test_multi_token_chunks_reconciled_to_usage():
    # 3 tokens per chunk: the client counts 1 per chunk, usage says 10 -> counts spread evenly
    state = ServerState(token_delay_s=0.001, tokens_per_chunk=3)
    result, _ = run(state, [_chat(0, max_tokens=10)])
    r = result.results[0]
    assert len(r.chunk_n) == 4  # 3+3+3+1 tokens in 4 chunks
    assert sum(r.chunk_n) == 10 == r.output_tokens
    # 6 missing over 4 chunks: +1 each, then one more at int((k + 0.5) * 4 / 2) = 1 and 3
    assert r.chunk_n == [2, 3, 2, 3]


def test_completions_endpoint():
    state = ServerState(token_delay_s=0.001)
    reqs = [LoadRequest(request_id=i, prompt="a b c", max_tokens=4) for i in range(3)]
    result, _ = run(state, reqs, endpoint="completions")
    assert all(r.ok and r.output_tokens == 4 and r.input_tokens == 3 for r in result.results)


def test_errors_are_recorded_per_request_and_nothing_hangs():
    state = ServerState(token_delay_s=0.001, stall_s=10.0)
    reqs = [_chat(0), _chat(1, "http500"), _chat(2, "die"), _chat(3, "stall")]
    result, stats = run(state, reqs, chunk_timeout_s=1.0, request_timeout_s=5.0)
    assert result.t_last_end - result.t0 < 3.0  # the stall ended by the 1 s chunk timeout
    ok, http500, died, stalled = result.results
    assert ok.ok and ok.output_tokens == 10
    assert not http500.ok and http500.error.startswith("HTTP 500") and http500.t_first_token is None
    assert not died.ok and died.error and died.output_tokens == 1 and died.t_first_token is not None
    assert not stalled.ok and "timeout" in stalled.error and stalled.output_tokens == 1
    assert stats.failed == 3


def test_stream_cut_without_finish_reason_or_done_is_failed():
    # "cut": 3 tokens, then a clean end of the body and a closed connection, nothing else
    state = ServerState(token_delay_s=0.001)
    reqs = [_chat(0, "cut", max_tokens=32), _chat(1, max_tokens=32)]
    result, stats = run(state, reqs)
    cut, whole = result.results
    assert not cut.ok and cut.error == "stream ended without finish_reason/[DONE] after 3 of 32 tokens"
    assert cut.output_tokens == 3 and cut.chunk_n == [1, 1, 1] and not cut.usage_reported
    assert cut.t_first_token == cut.chunk_t[0] and cut.finish_reason is None
    assert whole.ok and whole.output_tokens == 32 and whole.finish_reason == "length"
    assert stats.failed == 1 and stats.done == 2


def test_stream_cut_on_completions_endpoint_without_max_tokens():
    state = ServerState(token_delay_s=0.001)
    result, _ = run(state, [LoadRequest(request_id=0, prompt="cut")], endpoint="completions")
    r = result.results[0]
    assert not r.ok and r.error == "stream ended without finish_reason/[DONE] after 3 tokens"


@pytest.mark.parametrize("reason", ["length", "stop"])
def test_early_finish_reason_below_max_tokens_is_ok(reason):
    # The engine ended the answer after 3 of 32 tokens and said so: a complete stream.
    state = ServerState(token_delay_s=0.001)
    result, stats = run(state, [_chat(0, reason, max_tokens=32)])
    r = result.results[0]
    assert r.ok and r.error is None and r.finish_reason == reason
    assert r.output_tokens == 3 and r.usage_reported and stats.failed == 0


def test_done_sentinel_alone_completes_the_stream_even_without_its_line_ending():
    state = ServerState(token_delay_s=0.001)
    result, _ = run(state, [_chat(0, "bare-done", max_tokens=5)])
    r = result.results[0]
    assert r.ok and r.error is None and r.finish_reason is None and r.output_tokens == 5


def test_abort_finish_reason_is_failed():
    state = ServerState(token_delay_s=0.001)
    result, _ = run(state, [_chat(0, "abort", max_tokens=32)])
    r = result.results[0]
    assert not r.ok and r.error == "stream finished with finish_reason 'abort' after 3 of 32 tokens"
    assert r.output_tokens == 3


def test_concurrency_mode_limits_in_flight():
    state = ServerState(token_delay_s=0.002)
    result, _ = run(state, [_chat(i) for i in range(12)], arrival="concurrency", max_concurrency=3)
    assert all(r.ok for r in result.results)
    assert state.max_running == 3


def test_poisson_arrivals_are_spread_and_seeded():
    state = ServerState(token_delay_s=0.001)
    reqs = [_chat(i, max_tokens=2) for i in range(8)]
    r1, _ = run(state, reqs, arrival="poisson", rate=50.0, seed=1)
    sends = [r.t_send for r in r1.results]
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    assert all(g > 0 for g in gaps)
    assert 0.05 < sends[-1] - sends[0] < 2.0  # 7 gaps at mean 20 ms


def test_unreachable_server_fails_fast():
    port = _free_port()  # nothing listens there
    s = LoadSettings(base_url=f"http://127.0.0.1:{port}", model="m", connect_timeout_s=2)
    result = asyncio.run(run_load([_chat(0)], s))
    r = result.results[0]
    assert not r.ok and "Connect" in r.error


def test_abort_check_stops_the_load():
    state = ServerState(token_delay_s=0.001)
    calls = {"n": 0}

    def abort() -> str | None:
        calls["n"] += 1
        return "server exited with code 9" if calls["n"] >= 2 else None

    async def go(url):
        s = LoadSettings(base_url=url, model="m")
        return await run_load([_chat(0, "stall"), _chat(1, "stall")], s, abort_check=abort, poll_s=0.1)

    result = asyncio.run(_with_server(state, go))
    assert result.t_last_end - result.t0 < 2.0
    assert result.aborted == "server exited with code 9"
    assert all(not r.ok and r.error == "aborted: server exited with code 9" for r in result.results)
    assert all(r.output_tokens == 1 for r in result.results)
