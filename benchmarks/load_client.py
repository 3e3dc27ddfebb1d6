"""How many streamed tokens/s the load client records on one core (prints figures; not a test).

A separate process serves OpenAI-style SSE streams (one token per chunk, with a usage chunk at the
end, like vLLM) for `--streams` concurrent requests of `--tokens` tokens each, paced so that the
aggregate rate is `--rate` tokens/s (0 = as fast as it can). The client is jouleflow.measure.load, exactly
as a session runs it. Reported: tokens recorded, wall time, the client's CPU time, its CPU
utilisation at the paced rate, and tokens per client CPU-second (what one core sustains).

    python benchmarks/load_client.py --streams 256 --tokens 400 --rate 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from jouleflow.measure.load import LoadRequest, LoadSettings, LoadStats, run_load  # noqa: E402

SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    from aiohttp import web
    port, streams, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = streams / rate if rate > 0 else 0.0  # per-stream gap giving the aggregate rate

    async def chat(request):
        body = await request.json()
        n = int(body["max_tokens"])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        head = b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\\n\\n'
        loop = asyncio.get_running_loop()
        t = loop.time()
        for i in range(n):
            await resp.write(head)
            if delay:
                t += delay
                await asyncio.sleep(max(0.0, t - loop.time()))
            elif i % 16 == 0:
                await asyncio.sleep(0)
        usage = {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": n + 8}}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\\n\\ndata: [DONE]\\n\\n")
        return resp

    async def health(request):
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None)
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument(
        "--rate", type=float, default=20000.0, help="aggregate tokens/s the server paces to (0: max)"
    )
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.streams), str(args.rate)])
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        reqs = [
            LoadRequest(request_id=i, messages=[{"role": "user", "content": "hi"}], max_tokens=args.tokens)
            for i in range(args.streams)
        ]
        settings = LoadSettings(base_url=f"http://127.0.0.1:{port}", model="m")
        stats = LoadStats()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = asyncio.run(run_load(reqs, settings, stats))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        server.terminate()
        server.wait()
    ok = sum(r.ok for r in result.results)
    tokens = sum(r.output_tokens for r in result.results)
    chunks = sum(len(r.chunk_t) for r in result.results)
    print(f"streams {args.streams} x {args.tokens} tokens, server pacing {args.rate:,.0f} tok/s (0 = max)")
    print(f"ok requests        {ok}/{args.streams}")
    print(f"tokens recorded    {tokens:,} in {chunks:,} chunks")
    print(f"wall time          {wall:.2f} s  -> {tokens / wall:,.0f} tok/s recorded")
    print(f"client CPU time    {cpu:.2f} s  -> {cpu / wall:.0%} of one core")
    print(f"client capacity    {tokens / cpu:,.0f} tok per CPU-second (one core)")
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}")


if __name__ == "__main__":
    main()
