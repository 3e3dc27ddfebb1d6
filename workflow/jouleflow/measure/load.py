"""Request replay client: streams OpenAI-compatible chat/completions requests and records every chunk.

Arrival modes: "burst" (all N requests at t0, as ML.ENERGY does), "concurrency" (at most K in
flight), "poisson" (exponential gaps at `rate` requests/s, seeded), "saturate" (`in_flight`
requests kept in flight until a stop check says so: measure/saturate.py).

Token counts per chunk: when a content chunk carries `usage` (vLLM's continuous usage stats) the
chunk's count is the growth of `completion_tokens`; otherwise each chunk with non-empty content
counts 1. After the stream, the per-chunk counts are reconciled with the final usage's
`completion_tokens` (`reconcile_counts`): missing tokens (several tokens merged into one chunk,
tokens that decoded to empty text) are spread evenly over the chunks; surplus is taken from the
last chunks (never the first, which fixes the time to first token). Without any usage the chunk
count is the output count and `usage_reported` is false.

A request is ok only when its stream completed: the server sent a `finish_reason` or the
`data: [DONE]` sentinel. A stream that just stops (a proxy or the server closing the connection
cleanly mid-generation) would otherwise look like a short answer; it is failed instead, its tokens
kept (they cost energy). An early `finish_reason` ("stop", or "length" below max_tokens at the
context limit) is what the engine decided and stays ok; "abort" and "error" are failures.

The hot path (one call per SSE event) does one json.loads (orjson when installed), a few dict
lookups and two list appends: it sustains tens of thousands of streamed tokens/s on one core.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from jouleflow.measure.client_monitor import ClientMonitor

try:  # optional, ~3x faster than json for small objects
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the host
    _loads = json.loads


@dataclass
class LoadRequest:
    request_id: int
    prompt: str | None = None  # completions
    messages: list[dict[str, Any]] | None = None  # chat
    max_tokens: int | None = None
    ignore_eos: bool = False
    input_tokens: int | None = None  # as known from the request set
    media: dict[str, int | None] | None = None  # media.totals of a multimodal request


@dataclass
class RequestResult:
    request_id: int
    t_send: float | None = None
    t_first_token: float | None = None
    t_end: float | None = None
    input_tokens: int | None = None
    output_tokens: int = 0
    ok: bool = False
    error: str | None = None
    usage_reported: bool = False
    media: dict[str, int | None] | None = None  # the request's media sizes, as sent
    finish_reason: str | None = None  # not written to requests.parquet
    stopped: bool = False  # the load stopped it on purpose (saturate): neither ok nor failed
    max_tokens: int | None = None  # the request's target, as the request set gave it
    ignore_eos: bool | None = None
    chunk_t: list[float] = field(default_factory=list)
    chunk_n: list[int] = field(default_factory=list)


@dataclass
class LoadSettings:
    base_url: str
    model: str
    endpoint: str = "chat"  # chat | completions
    sampling: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    send_ignore_eos: bool = True  # some engines reject the field
    arrival: str = "burst"
    max_concurrency: int | None = None
    rate: float | None = None
    in_flight: int | None = None  # saturate: requests kept in flight (B + headroom)
    seed: int = 0
    request_timeout_s: float = 1800.0
    chunk_timeout_s: float = 300.0
    connect_timeout_s: float = 60.0


@dataclass
class LoadStats:
    """Live counters for the progress display (read from the same event loop)."""

    total: int = 0
    sent: int = 0
    done: int = 0
    failed: int = 0
    tokens: int = 0


@dataclass
class LoadResult:
    results: list[RequestResult]
    t0: float
    t_last_end: float | None
    aborted: str | None = None  # reason when the abort check stopped the load
    stopped: str | None = None  # saturate: why the load stopped (converged, time limit, pool exhausted)
    t_stop: float | None = None  # saturate: when it stopped (the steady window ends there)
    client: dict[str, Any] | None = None  # measure.client_monitor: the client's CPU and loop lag


def build_body(req: LoadRequest, s: LoadSettings) -> bytes:
    body: dict[str, Any] = {"model": s.model, "stream": True, "stream_options": {"include_usage": True}}
    if s.endpoint == "chat":
        if req.messages is None:
            raise ValueError(f"request {req.request_id}: chat endpoint needs messages")
        body["messages"] = req.messages
    else:
        if req.prompt is None:
            raise ValueError(f"request {req.request_id}: completions endpoint needs a prompt")
        body["prompt"] = req.prompt
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.ignore_eos and s.send_ignore_eos:
        body["ignore_eos"] = True
    body.update(s.sampling)
    body.update(s.extra_body)
    return json.dumps(body).encode()


def reconcile_counts(counts: list[int], total: int) -> list[int]:
    """Adjust per-chunk counts so they sum to `total` (see the module docstring)."""
    n = len(counts)
    diff = total - sum(counts)
    if n == 0 or diff == 0:
        return counts
    out = list(counts)
    if diff > 0:
        base, extra = divmod(diff, n)
        for i in range(n):
            out[i] += base
        for k in range(extra):  # evenly spaced chunks get one more
            out[int((k + 0.5) * n / extra)] += 1
        return out
    surplus = -diff
    for i in range(n - 1, 0, -1):
        take = min(surplus, out[i])
        out[i] -= take
        surplus -= take
        if surplus == 0:
            break
    if surplus:  # only the first chunk is left; keep it at >= 0
        out[0] = max(0, out[0] - surplus)
    return out


def raise_fd_limit(needed: int) -> None:
    """N concurrent streams need N sockets: lift the soft open-files limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


async def _stream_one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    res: RequestResult,
    chat: bool,
    timeout: aiohttp.ClientTimeout,
    stats: LoadStats,
    max_tokens: int | None = None,
) -> None:
    ts = res.chunk_t
    ns = res.chunk_n
    final_completion: int | None = None
    last_usage_ct = 0
    res.t_send = time.time()
    stats.sent += 1
    async with session.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout
    ) as resp:
        if resp.status != 200:
            text = (await resp.text())[:500]
            res.error = f"HTTP {resp.status}: {text}"
            return
        buf = b""
        done = False  # [DONE] seen, or a stream error ends the reading
        saw_done = False
        async for data in resp.content.iter_any():
            now = time.time()
            buf += data
            if b"\n" not in data:
                continue
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = saw_done = True
                    break
                obj = _loads(payload)
                n = 0
                choices = obj.get("choices")
                if choices:
                    c = choices[0]
                    if chat:
                        d = c.get("delta") or {}
                        text = d.get("content") or d.get("reasoning_content") or d.get("reasoning")
                    else:
                        text = c.get("text")
                    if text:
                        n = 1
                    fr = c.get("finish_reason")
                    if fr:
                        res.finish_reason = fr
                usage = obj.get("usage")
                if usage:
                    ct = usage.get("completion_tokens")
                    if ct is not None:
                        if choices:  # continuous usage: the chunk's own token count
                            n = max(ct - last_usage_ct, 0) if text else 0
                            last_usage_ct = ct
                        final_completion = ct
                        res.usage_reported = True
                    pt = usage.get("prompt_tokens")
                    if pt is not None:
                        res.input_tokens = pt
                elif "error" in obj:
                    err = obj["error"]
                    res.error = "stream error: " + (
                        err.get("message", str(err)) if isinstance(err, dict) else str(err)
                    )
                    done = True
                    break
                if n:
                    ts.append(now)
                    ns.append(n)
                    stats.tokens += n
            if done:
                break
        if not done and buf.startswith(b"data:") and buf[5:].strip() == b"[DONE]":
            saw_done = True  # a last event without its blank line still ends the stream
    res.t_end = time.time()
    if final_completion is not None:
        res.chunk_n = reconcile_counts(ns, final_completion)
        if final_completion and ns and res.chunk_n[0] == 0:  # defensive: keep the first-token chunk
            res.chunk_n[0] = 1
        res.output_tokens = sum(res.chunk_n)
    else:
        res.output_tokens = sum(ns)
    if res.error is None:
        res.error = _incomplete_stream(res, saw_done, max_tokens)
    if res.error is None:
        res.ok = True


def _incomplete_stream(res: RequestResult, saw_done: bool, max_tokens: int | None) -> str | None:
    """Why a stream that ended without an error still did not complete (None when it did)."""
    after = f"after {res.output_tokens}{'' if max_tokens is None else f' of {max_tokens}'} tokens"
    if res.finish_reason in ("abort", "error"):
        return f"stream finished with finish_reason {res.finish_reason!r} {after}"
    if res.finish_reason is None and not saw_done:
        return f"stream ended without finish_reason/[DONE] {after}"
    return None


async def _run_request(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    res: RequestResult,
    chat: bool,
    timeout: aiohttp.ClientTimeout,
    stats: LoadStats,
    sem: asyncio.Semaphore | None,
    max_tokens: int | None = None,
) -> None:
    try:
        if sem is None:
            await _stream_one(session, url, body, res, chat, timeout, stats, max_tokens)
        else:
            async with sem:
                await _stream_one(session, url, body, res, chat, timeout, stats, max_tokens)
    except asyncio.TimeoutError:
        res.error = "timeout: " + ("no data" if res.chunk_t else "no first token") + " within the limit"
    except aiohttp.ClientError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    except (ValueError, KeyError, TypeError) as exc:  # malformed SSE payload
        res.error = f"bad stream: {type(exc).__name__}: {exc}"
    finally:
        if res.t_end is None:
            res.t_end = time.time()
        if res.error is not None:
            res.ok = False
            stats.failed += 1
        if res.chunk_t:
            res.t_first_token = res.chunk_t[0]
        if res.output_tokens == 0 and res.chunk_n:
            res.output_tokens = sum(res.chunk_n)
        stats.done += 1


def prepare(requests: Sequence[LoadRequest], s: LoadSettings):
    """(chat, url, bodies, results, timeout) of a load; bodies serialized before t0."""
    chat = s.endpoint == "chat"
    url = s.base_url.rstrip("/") + ("/v1/chat/completions" if chat else "/v1/completions")
    bodies = [build_body(r, s) for r in requests]
    carried = ("input_tokens", "media", "max_tokens", "ignore_eos")  # the request's, into requests.parquet
    results = [RequestResult(r.request_id, **{k: getattr(r, k) for k in carried}) for r in requests]
    timeout = aiohttp.ClientTimeout(
        total=s.request_timeout_s, sock_connect=s.connect_timeout_s, sock_read=s.chunk_timeout_s
    )
    return chat, url, bodies, results, timeout


def mark_unfinished(
    results: Sequence[RequestResult], sent_error: str, unsent_error: str, stopped: bool = False
) -> None:
    """Give the requests a stopped load left unfinished their error (in flight / never sent)."""
    now = time.time()
    for res in results:
        if res.error is None and not res.ok:
            res.stopped = stopped
            res.error = sent_error if res.t_send is not None else unsent_error
            if res.t_send is not None or not stopped:  # (an aborted load stamps its unsent requests too)
                res.t_end = res.t_end or now
            res.t_first_token = res.chunk_t[0] if res.chunk_t else None
            res.output_tokens = sum(res.chunk_n)


async def run_load(
    requests: Sequence[LoadRequest],
    s: LoadSettings,
    stats: LoadStats | None = None,
    abort_check: Callable[[], str | None] | None = None,
    poll_s: float = 0.5,
    stop_check: Callable[[Sequence[RequestResult]], str | None] | None = None,
    in_flight_check: Callable[[int], int] | None = None,
) -> LoadResult:
    """Replay `requests`; returns one RequestResult per request, in request order.

    `stop_check` (saturate only) is polled every `poll_s` with the results so far; a reason stops it.
    `in_flight_check` (saturate only) is polled as often and returns the in-flight count to keep.
    """
    stats = stats if stats is not None else LoadStats()
    if s.arrival == "saturate":
        from jouleflow.measure.saturate import run_saturate  # it builds on this module

        return await run_saturate(requests, s, stats, abort_check, stop_check, poll_s, in_flight_check)
    stats.total = len(requests)
    chat, url, bodies, results, timeout = prepare(requests, s)
    sem = asyncio.Semaphore(s.max_concurrency) if s.arrival == "concurrency" and s.max_concurrency else None
    raise_fd_limit(len(requests) if sem is None else (s.max_concurrency or 0))
    aborted: str | None = None
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.time()
        monitor = ClientMonitor().start()
        tasks: list[asyncio.Task[None]] = []

        async def dispatch() -> None:
            rng = random.Random(s.seed)
            for req, body, res in zip(requests, bodies, results, strict=True):
                tasks.append(
                    asyncio.create_task(
                        _run_request(session, url, body, res, chat, timeout, stats, sem, req.max_tokens)
                    )
                )
                if s.arrival == "poisson" and s.rate:
                    await asyncio.sleep(rng.expovariate(s.rate))

        dispatcher = asyncio.create_task(dispatch())
        while True:
            await asyncio.sleep(poll_s if abort_check else 0.05)
            if dispatcher.done() and all(t.done() for t in tasks):
                break
            if abort_check is not None:
                aborted = abort_check()
                if aborted:
                    dispatcher.cancel()
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(dispatcher, *tasks, return_exceptions=True)
                    break
        client = await monitor.stop()
        if not aborted:
            dispatcher.result()  # surface a dispatcher bug instead of hiding it
    if aborted:
        mark_unfinished(results, f"aborted: {aborted}", f"not sent: {aborted}")
    ends = [r.t_end for r in results if r.t_end is not None and r.t_send is not None]
    return LoadResult(results, t0, max(ends) if ends else None, aborted, client=client)
