"""Build tests/data/reference-fixture: a small hand-made campaign in the bundled-reference layout.

    python3 tests/make_reference_fixture.py [OUT_DIR]

Same points as the real bundled campaign (Llama-3.1-8B architecture, lm-arena-chat, H100 × 1, tp1,
batch 64/128/256) but simulated, not measured: a continuous-batching server admits up to B
requests, each decode step gives every running request one token (streamed 8 per chunk), and
power follows the running count. Energy is the exact integral of that power (piecewise constant
between samples), so accounting on it is checkable by hand. N = 3 B requests keeps files small.
run.json says energy_source "simulated-test-fixture": nothing here is a measurement.
Deterministic: the same script writes the same traces.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from jouleflow.traces import RunDirWriter

T0 = 1_763_000_000.0  # server load starts here (run.json timing.t0)
LOAD_S = 60.0  # server start-up before the first request
CHUNK = 8  # tokens per streamed chunk
POWER_PERIOD = 0.1
SERVER_PERIOD = 0.5
IDLE_W, DYNAMIC_W, SATURATION = 110.0, 500.0, 60.0  # power saturates as the batch fills the GPU
KEY = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1"


def step_time(running: int) -> float:
    return 0.012 + 0.00004 * running


def power_at(running: int) -> float:
    return IDLE_W + DYNAMIC_W * (1.0 - math.exp(-running / SATURATION)) if running else IDLE_W


def simulate(batch: int, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    n = 4 * batch
    t_send = T0 + LOAD_S
    lengths = [rng.randint(200, 800) for _ in range(n)]
    waiting = list(range(n))
    running: dict[int, int] = {}  # request -> tokens so far
    first: dict[int, float] = {}
    end: dict[int, float] = {}
    tokens: list[dict] = []
    steps: list[tuple[float, float, int]] = []  # (start, end, running)
    pending: dict[int, int] = {}
    t = t_send + 0.05
    while waiting or running:
        while waiting and len(running) < batch:
            running[waiting.pop(0)] = 0
        dt = step_time(len(running))
        steps.append((t, t + dt, len(running)))
        t += dt
        for rid in list(running):
            running[rid] += 1
            pending[rid] = pending.get(rid, 0) + 1
            first.setdefault(rid, t)
            done = running[rid] >= lengths[rid]
            if pending[rid] >= CHUNK or done or running[rid] == 1:
                tokens.append({"request_id": rid, "t": t, "n_tokens": pending.pop(rid)})
            if done:
                end[rid] = t
                del running[rid]
    t_last = t
    requests = [
        {
            "request_id": rid,
            "t_send": t_send,
            "t_first_token": first[rid],
            "t_end": end[rid],
            "input_tokens": 200,
            "output_tokens": lengths[rid],
            "ok": True,
            "error": None,
        }
        for rid in range(n)
    ]
    return {"requests": requests, "tokens": tokens, **_sampled(steps, t_send, t_last, lengths, first, end)}


def _running_at(steps: list[tuple[float, float, int]], t: float, index: list[int]) -> int:
    while index[0] < len(steps) and steps[index[0]][1] <= t:
        index[0] += 1
    if index[0] < len(steps) and steps[index[0]][0] <= t:
        return steps[index[0]][2]
    return 0


def _sampled(steps, t_send, t_last, lengths, first, end) -> dict[str, list[dict]]:
    power, server = [], []
    energy, t, prev_w = 0.0, t_send - 5.0, IDLE_W
    index = [0]
    while t <= t_last + 5.0:
        watts = power_at(_running_at(steps, t, index))
        energy += prev_w * POWER_PERIOD if power else 0.0  # exact integral of the sampled signal
        power.append({"t": t, "gpu": 0, "power_w": watts, "energy_j": energy, "temp_c": 40.0 + watts / 20})
        prev_w, t = watts, t + POWER_PERIOD
    t = t_send - 2.0
    while t <= t_last + 3.0:
        running = sum(1 for r in first if first[r] - 1e-9 <= t < end[r]) if t >= t_send else 0
        started = sum(1 for r in first if first[r] <= t)
        generated = sum(
            min(lengths[r], max(0, round((min(t, end[r]) - first[r]) / 0.02))) for r in first if first[r] <= t
        )
        server.append(
            {
                "t": t,
                "running": float(running),
                "waiting": float(max(0, len(lengths) - started)) if t >= t_send else 0.0,
                "kv_cache_usage": min(1.0, running * 700 / 200_000),
                "preemptions": 0.0,
                "generation_tokens": float(generated),
            }
        )
        t += SERVER_PERIOD
    return {"power": power, "server": server}


def run_json(batch: int, sim: dict[str, list[dict]]) -> dict:
    t_send = T0 + LOAD_S
    t_last = max(r["t_end"] for r in sim["requests"])
    return {
        "status": "ok",
        "reason": None,
        "config": {
            "task": "lm-arena-chat",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "model_path": None,
            "gpu": "H100",
            "num_gpus": 1,
            "batch_size": batch,
            "parallelism": "tp1",
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "data_parallel": 1,
            "expert_parallel": False,
            "precision": "bf16",
            "load_format": "dummy",
            "num_requests": 4 * batch,
            "engine": "vllm",
            "endpoint": "chat",
            "sampling": {"temperature": 0.8, "top_p": 0.95},
            "server_args": [],
            "env": {},
        },
        "config_hash": "test-fixture",
        "provenance": {
            "host": "test-fixture",
            "gpus": [
                {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-fixture", "power_limit_w": 700.0}
            ],
            "engine": "vllm",
            "engine_version": "simulated",
            "jouleflow_version": "test-fixture",
            "start_time": T0,
            "end_time": t_last + 5.0,
            "phases": {"load": [T0, t_send], "serve": [t_send, t_last]},
            "load_format": "dummy",
            "energy_source": "simulated-test-fixture",
        },
        "timing": {"t0": T0, "t_last_end": t_last},
    }


def build(out_dir: Path) -> list[Path]:
    written = []
    for seed, batch in enumerate((64, 128, 256)):
        sim = simulate(batch, seed)
        writer = RunDirWriter(out_dir / "runs" / KEY / str(batch))
        for name in ("power", "requests", "tokens", "server"):
            writer.write_trace(f"{name}.parquet", sim[name])
        writer.path("server.log").write_text("simulated server: no log\n")
        writer.path("session.log").write_text("simulated session: no log\n")
        written.append(writer.commit(run_json(batch, sim)))
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data" / "reference-fixture"
    for path in build(target):
        print(path)
