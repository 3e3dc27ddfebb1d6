"""Time `jouleflow energy` on a synthetic run of realistic size (prints figures; not a test).

A simulated continuous-batching server: N requests sent at once, B slots, each request streaming
one token per decode step after its prefill; power sampled at 10 Hz, metrics at 2 Hz.

    python benchmarks/energy_accounting.py [--requests 1024] [--batch 256] [--mean-output 600]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from jouleflow.analysis.energy import analyze_run
from jouleflow.traces import RunDirWriter


def simulate(n: int, batch: int, mean_output: int, step_s: float, seed: int = 0) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    t0 = 1_000_000.0
    lengths = [max(2, int(rng.expovariate(1 / mean_output))) for _ in range(n)]
    queue, slots, produced = list(range(n)), {}, {}
    first, end, tokens = {}, {}, []
    t = t0
    while queue or slots:
        while queue and len(slots) < batch:
            rid = queue.pop(0)
            slots[rid], produced[rid] = lengths[rid], 0
        t += step_s
        for rid in list(slots):
            produced[rid] += 1
            first.setdefault(rid, t)
            tokens.append({"request_id": rid, "t": t, "n_tokens": 1})
            if produced[rid] == slots[rid]:
                end[rid] = t
                del slots[rid]
    requests = [
        {
            "request_id": r,
            "t_send": t0,
            "t_first_token": first[r],
            "t_end": end[r],
            "input_tokens": 100,
            "output_tokens": lengths[r],
            "ok": True,
            "error": None,
        }
        for r in range(n)
    ]
    power, k = [], 0
    while t0 + k * 0.1 <= t + 1:
        ts = t0 + k * 0.1
        power.append({"t": ts, "gpu": 0, "power_w": 600.0, "energy_j": 600.0 * k * 0.1, "temp_c": 60.0})
        k += 1
    server = []
    for i in range(int((t - t0) / 0.5) + 2):
        ts = t0 + i * 0.5
        running = sum(1 for r in range(n) if first[r] - step_s <= ts < end[r])
        server.append(
            {
                "t": ts,
                "running": float(running),
                "waiting": 0.0,
                "kv_cache_usage": 0.5,
                "preemptions": 0.0,
                "generation_tokens": 0.0,
            }
        )
    return {"requests": requests, "tokens": tokens, "power": power, "server": server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--mean-output", type=int, default=600)
    parser.add_argument("--step", type=float, default=0.02, help="decode step, seconds")
    args = parser.parse_args()
    traces = simulate(args.requests, args.batch, args.mean_output, args.step)
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunDirWriter(Path(tmp) / "run")
        for name in ("requests", "tokens", "power", "server"):
            writer.write_trace(f"{name}.parquet", traces[name])
        run = writer.commit(
            {
                "status": "ok",
                "config": {"batch_size": args.batch},
                "provenance": {"energy_source": "synthetic", "gpus": [{"index": 0, "power_limit_w": 700.0}]},
            }
        )
        began = time.perf_counter()
        summary = analyze_run(run)
        elapsed = time.perf_counter() - began
    print(
        f"requests {args.requests}, B {args.batch}, chunks {len(traces['tokens'])}, power rows {len(traces['power'])}"
    )
    print(f"analyze_run: {elapsed:.2f} s")
    print(
        f"window {summary['window_source']} {summary['steady_duration_s']:.1f} s "
        f"(client {summary['window_client']['duration_s']:.1f} s, overlap {summary['window_overlap']:.3f}); "
        f"J/token {summary['energy_per_token_j']:.4f}; mean running {summary['mean_running']:.1f}; flags {summary['flags']}"
    )


if __name__ == "__main__":
    main()
