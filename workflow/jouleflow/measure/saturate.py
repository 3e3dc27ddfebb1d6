"""arrival=saturate: keep `in_flight` (B + headroom) requests in flight until told to stop.

The engine always has a few requests waiting, so it runs a full batch from the ramp-up on; each
finished request is replaced at once by the next one of the request set (the pool). The load
stops when `stop_check` gives a reason (converged, time limit), or when a finished request finds
the pool empty ("request pool exhausted"): no ramp-down tail is ever measured. Requests still in
flight are then cancelled and recorded as stopped (error "stopped: <reason>", `stopped` true),
those never sent as "not sent: <reason>"; neither counts as failed. The abort check (engine gone,
power sampler broken) ends the load as in the other modes. `in_flight_check` (measure.topup), polled
with the checks, may raise the in-flight count while the engine runs short of B with nothing waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import aiohttp

from jouleflow.measure.client_monitor import ClientMonitor
from jouleflow.measure.load import (
    LoadRequest,
    LoadResult,
    LoadSettings,
    LoadStats,
    RequestResult,
    _run_request,
    mark_unfinished,
    prepare,
    raise_fd_limit,
)

POOL_EXHAUSTED = "request pool exhausted"


async def run_saturate(
    requests: Sequence[LoadRequest],
    s: LoadSettings,
    stats: LoadStats,
    abort_check: Callable[[], str | None] | None,
    stop_check: Callable[[Sequence[RequestResult]], str | None] | None,
    poll_s: float,
    in_flight_check: Callable[[int], int] | None = None,
) -> LoadResult:
    if not (isinstance(s.in_flight, int) and s.in_flight > 0):
        raise ValueError(f"arrival=saturate needs in_flight > 0, got {s.in_flight!r}")
    stats.total = len(requests)
    chat, url, bodies, results, timeout = prepare(requests, s)
    raise_fd_limit(max(s.in_flight, getattr(in_flight_check, "cap", 0)))
    aborted = stopped = None
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.time()
        monitor = ClientMonitor().start()
        sent = 0

        def refill() -> None:
            nonlocal sent
            while len(pending) < s.in_flight and sent < len(requests):
                req, body, res = requests[sent], bodies[sent], results[sent]
                pending.add(
                    asyncio.create_task(
                        _run_request(session, url, body, res, chat, timeout, stats, None, req.max_tokens)
                    )
                )
                sent += 1

        refill()
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + poll_s
        try:
            while stopped is None and aborted is None:
                if not pending:
                    stopped = POOL_EXHAUSTED
                    break
                done, _ = await asyncio.wait(
                    pending, timeout=max(next_poll - loop.time(), 0), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    pending.discard(task)
                    task.result()  # _run_request records request errors; anything raised is a bug
                if done and sent >= len(requests):
                    stopped = POOL_EXHAUSTED  # a finished request cannot be replaced: the batch would drain
                    break
                refill()
                if loop.time() >= next_poll:
                    next_poll = loop.time() + poll_s
                    aborted = abort_check() if abort_check is not None else None
                    if aborted is None and stop_check is not None:
                        stopped = stop_check(results)
                    if stopped is None and aborted is None and in_flight_check is not None:
                        s.in_flight = in_flight_check(s.in_flight)
                        refill()
        finally:
            t_stop = time.time()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            client = await monitor.stop()
    if aborted:
        mark_unfinished(results, f"aborted: {aborted}", f"not sent: {aborted}")
    else:
        mark_unfinished(results, f"stopped: {stopped}", f"not sent: {stopped}", stopped=True)
    ends = [r.t_end for r in results if r.t_end is not None and r.t_send is not None]
    return LoadResult(
        results=results,
        t0=t0,
        t_last_end=max(ends) if ends else None,
        aborted=aborted,
        stopped=None if aborted else stopped,
        t_stop=t_stop,
        client=client,
    )
