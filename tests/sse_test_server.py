"""TEST-ONLY OpenAI-style streaming server (aiohttp), for the load client and session tests.

Never used by the product. It streams `max_tokens` tokens per request in chunks of
`tokens_per_chunk` (each chunk's text is that many words, so chunk counts differ from usage when
tokens_per_chunk > 1), then a usage chunk (stream_options.include_usage) and `[DONE]`.
It exposes /health and a vLLM-named /metrics. Per-request behaviour is keyed by the prompt
(or last message) text: "http500" -> HTTP 500; "stall" -> one chunk, then silence;
"die" -> one chunk, then the connection is cut (an incomplete chunked body); "cut" -> EARLY
tokens, then the response ends cleanly and the connection closes, with no finish_reason, usage
or [DONE] (what a proxy closing mid-stream looks like); "length" / "stop" / "abort" -> EARLY
tokens, then that finish_reason, usage and [DONE] (an engine ending the answer early);
"bare-done" -> no finish_reason, and a last `data: [DONE]` without its line ending.

Run as a script it mimics `vllm serve MODEL --host H --port P [--max-num-seqs B] ...` (unknown flags
ignored): at most B requests stream at once, the others wait (and show in /metrics), and with
JOULEFLOW_BATCH_LIMIT_FILE set it also obeys the batch-limit file the way jouleflow's scheduler does
inside vLLM (through the product's reader); with VLLM_SERVER_DEV_MODE=1 it answers
POST /reset_prefix_cache. With
TEST_SERVER_MODE: "ok" (default), "oom" (prints a CUDA OOM and exits 1 before serving), "oom-above:N"
(the same when started with --max-num-seqs > N, as a server too large for the GPU),
"crash" (exits 1 before serving), "die-after:N" (the process exits once N requests arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from aiohttp import web


class ServerState:
    def __init__(
        self,
        token_delay_s: float = 0.002,
        tokens_per_chunk: int = 1,
        die_after: int | None = None,
        stall_s: float = 4.0,
    ) -> None:
        self.token_delay_s = token_delay_s
        self.stall_s = stall_s  # bounded so that the test server's shutdown does not wait long
        self.tokens_per_chunk = tokens_per_chunk
        self.die_after = die_after
        self.running = 0
        self.waiting = 0
        self.max_num_seqs: int | None = None  # --max-num-seqs: requests beyond it wait, as in vLLM
        self.batch_limit: object | None = None  # the product's BatchLimitFile, as vLLM's scheduler reads it
        self.received = 0
        self.generated = 0
        self.prompt_tokens = 0  # words of the prompts admitted to the batch (vLLM counts at prefill)
        # Media content parts received (OpenAI image_url / video_url parts), and their data URLs' sizes.
        self.image_parts = 0
        self.video_parts = 0
        self.media_url_chars = 0
        self.max_running = 0
        # Seconds a request spends in the front end before it queues and after it leaves the batch
        # (tokenizing, detokenizing): in flight for the client, neither running nor waiting.
        self.frontend_s = 0.0

    def limit(self) -> float:
        cap = float(self.max_num_seqs) if self.max_num_seqs else float("inf")
        file_limit = self.batch_limit.limit() if self.batch_limit is not None else None  # type: ignore[attr-defined]
        return min(cap, float(file_limit)) if file_limit is not None else cap


STATE = web.AppKey("state", ServerState)
EARLY = 3  # tokens streamed before "cut" and the early finish reasons
EARLY_FINISH = ("length", "stop", "abort")


def _text_of(body: dict) -> str:
    if "messages" in body:
        content = body["messages"][-1].get("content", "")
        if isinstance(content, list):  # content parts: the text ones
            return "".join(p.get("text", "") for p in content if p.get("type") == "text")
        return str(content)
    return str(body.get("prompt", ""))


def _count_media(body: dict, state: ServerState) -> None:
    for m in body.get("messages") or []:
        for part in m.get("content") if isinstance(m.get("content"), list) else []:
            kind = part.get("type")
            if kind in ("image_url", "video_url"):
                state.image_parts += kind == "image_url"
                state.video_parts += kind == "video_url"
                state.media_url_chars += len(part[kind]["url"])


async def _completion(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE]
    body = await request.json()
    chat = request.path.endswith("/chat/completions")
    text = _text_of(body)
    _count_media(body, state)
    state.received += 1
    if state.die_after is not None and state.received >= state.die_after:
        asyncio.get_running_loop().call_later(0.2, os._exit, 3)
    if text == "http500":
        return web.json_response({"error": {"message": "test failure"}}, status=500)
    n = int(body.get("max_tokens") or 16)
    if text == "cut" or text in EARLY_FINISH:
        n = min(n, EARLY)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if state.frontend_s:
        await asyncio.sleep(state.frontend_s)
    state.waiting += 1
    try:
        while state.running >= state.limit():
            await asyncio.sleep(0.001)
    finally:
        state.waiting -= 1
    state.running += 1
    released = False
    state.prompt_tokens += len(text.split())
    state.max_running = max(state.max_running, state.running)

    async def send(obj: dict | str) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        await resp.write(f"data: {payload}\n\n".encode())

    try:
        if chat:
            await send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        sent = 0
        while sent < n:
            k = min(state.tokens_per_chunk, n - sent)
            words = " ".join(["tok"] * k) + " "
            choice = {"index": 0, "delta": {"content": words}} if chat else {"index": 0, "text": words}
            await send({"choices": [choice]})
            sent += k
            state.generated += k
            if text == "stall":
                await asyncio.sleep(state.stall_s)
                return resp
            if text == "die":
                request.transport.close()
                return resp
            await asyncio.sleep(state.token_delay_s * k)
        if state.frontend_s:
            state.running -= 1
            released = True
            await asyncio.sleep(state.frontend_s)
        if text == "cut":  # a clean end of the HTTP body, then close: no finish_reason, no [DONE]
            resp.force_close()
            await resp.write_eof()
            return resp
        if text == "bare-done":
            await resp.write(b"data: [DONE]")
            return resp
        reason = text if text in EARLY_FINISH else "length"
        await send(
            {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
            if chat
            else {"choices": [{"index": 0, "text": "", "finish_reason": reason}]}
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            pt = len(text.split())
            await send(
                {
                    "choices": [],
                    "usage": {"prompt_tokens": pt, "completion_tokens": n, "total_tokens": pt + n},
                }
            )
        await send("[DONE]")
    except ConnectionResetError:  # the client went away (a stopped load cancels its streams)
        pass
    finally:
        if not released:
            state.running -= 1
    return resp


async def _reset_prefix_cache(request: web.Request) -> web.Response:
    print("test server: prefix cache reset", flush=True)
    return web.Response(text="")


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="")


async def _metrics(request: web.Request) -> web.Response:
    s: ServerState = request.app[STATE]
    text = (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{engine="0",model_name="m"}} {float(s.running)}\n'
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {float(s.waiting)}\n'
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        f'vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {min(1.0, s.running / 100):.4f}\n'
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
        "# TYPE vllm:generation_tokens_total counter\n"
        f'vllm:generation_tokens_total{{engine="0",model_name="m"}} {float(s.generated)}\n'
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        f'vllm:prompt_tokens_total{{engine="0",model_name="m"}} {float(s.prompt_tokens)}\n'
    )
    return web.Response(text=text, content_type="text/plain")


def make_app(state: ServerState | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = state or ServerState()
    app.router.add_post("/v1/chat/completions", _completion)
    app.router.add_post("/v1/completions", _completion)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    if os.environ.get("VLLM_SERVER_DEV_MODE") == "1":  # vLLM serves its dev endpoints only then
        app.router.add_post("/reset_prefix_cache", _reset_prefix_cache)
    return app


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-num-seqs", type=int)
    args, _unknown = parser.parse_known_args([a for a in argv if a != "serve"])
    mode = os.environ.get("TEST_SERVER_MODE", "ok")
    print(f"test server: mode {mode}, model {args.model}", flush=True)
    time.sleep(float(os.environ.get("TEST_SERVER_STARTUP_S", "0.3")))
    oom_above = int(mode.split(":")[1]) if mode.startswith("oom-above:") else None
    if mode == "oom" or (oom_above is not None and (args.max_num_seqs or 0) > oom_above):
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
        sys.exit(1)
    if mode == "crash":
        print("RuntimeError: something unrelated broke", flush=True)
        sys.exit(1)
    die_after = int(mode.split(":")[1]) if mode.startswith("die-after:") else None
    state = ServerState(
        float(os.environ.get("TEST_SERVER_TOKEN_DELAY_S", "0.002")),
        int(os.environ.get("TEST_SERVER_TOKENS_PER_CHUNK", "1")),
        die_after,
    )
    state.max_num_seqs = args.max_num_seqs
    if os.environ.get("JOULEFLOW_BATCH_LIMIT_FILE"):
        from jouleflow.measure.engines.batch_limit import BatchLimitFile

        state.batch_limit = BatchLimitFile.from_env()
    web.run_app(make_app(state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
