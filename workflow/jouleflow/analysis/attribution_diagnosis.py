"""Why a run spends its joules the way it does, from the recorded latents (part of `analysis.attribution`).

Labels, each with the evidence behind it (a run can carry several; `primary` is the first in this
order): memory-bound (KV cache nearly full, preemptions grew, or a batch short of B while requests
wait), frontend-bound (a batch short of B with nothing waiting in the engine while the client holds
more requests in flight than the engine runs: they queue in the server's front end, e.g. multimodal
preprocessing or an API server streaming ~10,000 tokens/s; on average over the window, or for at least
`frontend_starved_share` of it, since a backlog that builds up mid-window hides in the means), host-bound (GPU mostly idle while requests wait), underutilized (GPU mostly idle at a
full batch), saturated (full batch, GPU busy); unclassified when none applies. A check that needs a trace
the run lacks is named under `unknown` instead of being guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.steady import StepFunction, in_flight_counts, starved_share

ORDER = ("memory-bound", "frontend-bound", "host-bound", "underutilized", "saturated")


@dataclass(frozen=True)
class DiagnosisThresholds:
    kv_full: float = 0.9  # kv_cache_usage at or above: the cache is full
    batch_fraction: float = 0.85  # mean running >= this x B: a full batch
    util_low_pct: float = 70.0  # mean GPU utilization below: the GPU waits
    util_busy_pct: float = 90.0  # at or above: saturated
    # frontend-bound: the engine waits for nothing (mean waiting below this) ...
    engine_idle_waiting: float = 0.5
    # ... or for at least this share of the window (the batch short, the engine's queue empty)
    frontend_starved_share: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {
            "kv_full": self.kv_full,
            "batch_fraction": self.batch_fraction,
            "util_low_pct": self.util_low_pct,
            "util_busy_pct": self.util_busy_pct,
            "engine_idle_waiting": self.engine_idle_waiting,
            "frontend_starved_share": self.frontend_starved_share,
        }


def _step_mean(frame: pl.DataFrame, column: str, start: float, end: float) -> float | None:
    rows = frame.filter(pl.col(column).is_not_null()).sort("t")
    if rows.height == 0:
        return None
    return StepFunction(tuple(rows["t"].to_list()), tuple(rows[column].to_list()), rows[column][0]).mean(
        start, end
    )


def _in_window(frame: pl.DataFrame, column: str, start: float, end: float) -> pl.Series:
    return frame.filter((pl.col("t") >= start) & (pl.col("t") <= end))[column].drop_nulls()


def server_evidence(server: pl.DataFrame | None, start: float, end: float) -> dict[str, Any] | None:
    if server is None or server.height == 0:
        return None
    kv = _in_window(server, "kv_cache_usage", start, end)
    pre = _in_window(server, "preemptions", start, end)
    return {
        "mean_running": _step_mean(server, "running", start, end),
        "mean_waiting": _step_mean(server, "waiting", start, end),
        "max_kv_cache_usage": float(kv.max()) if kv.len() else None,
        "preemptions_grew_by": float(pre.max() - pre.min()) if pre.len() else None,
    }


def gpu_evidence(metrics: pl.DataFrame | None, start: float, end: float) -> dict[str, Any] | None:
    if metrics is None or "util_gpu_pct" not in metrics.columns:
        return None
    util = _in_window(metrics, "util_gpu_pct", start, end)
    if util.len() == 0:
        return None
    out: dict[str, Any] = {"mean_util_gpu_pct": float(util.mean())}
    if "util_mem_pct" in metrics.columns:
        mem = _in_window(metrics, "util_mem_pct", start, end)
        out["mean_util_mem_pct"] = float(mem.mean()) if mem.len() else None
    return out


def client_in_flight(requests: pl.DataFrame | None, start: float, end: float) -> float | None:
    """Mean number of requests the client had sent and not yet seen end over [start, end]."""
    if requests is None or requests.height == 0 or "t_send" not in requests.columns:
        return None
    return in_flight_counts(requests["t_send"].to_list(), requests["t_end"].to_list()).mean(start, end)


def frontend_starved_share(
    server: pl.DataFrame | None,
    requests: pl.DataFrame | None,
    full_batch: int | None,
    start: float,
    end: float,
    batch_fraction: float,
    idle_waiting: float = 0.5,
) -> float | None:
    """steady.starved_share from the traces (None without the gauges or the client's requests);
    the evidence of the diagnosis and of the `frontend-starved` validity flag."""
    if server is None or requests is None or not full_batch or requests.height == 0:
        return None
    if "waiting" not in server.columns or "t_send" not in requests.columns:
        return None
    rows = server.filter(pl.col("running").is_not_null() & pl.col("waiting").is_not_null()).sort("t")
    if rows.height == 0:
        return None
    return starved_share(
        rows["t"].to_list(),
        rows["running"].to_list(),
        rows["waiting"].to_list(),
        in_flight_counts(requests["t_send"].to_list(), requests["t_end"].to_list()),
        full_batch,
        start,
        end,
        batch_fraction,
        idle_waiting,
    )


def diagnose(
    server: pl.DataFrame | None,
    gpu_metrics: pl.DataFrame | None,
    full_batch: int | None,
    start: float,
    end: float,
    thresholds: DiagnosisThresholds = DiagnosisThresholds(),
    requests: pl.DataFrame | None = None,
) -> dict[str, Any]:
    srv = server_evidence(server, start, end)
    gpu = gpu_evidence(gpu_metrics, start, end)
    in_flight = client_in_flight(requests, start, end)
    starved = frontend_starved_share(
        server, requests, full_batch, start, end, thresholds.batch_fraction, thresholds.engine_idle_waiting
    )
    evidence: dict[str, Any] = {
        "full_batch": full_batch,
        **(srv or {}),
        **(gpu or {}),
        **({"mean_client_in_flight": in_flight} if in_flight is not None else {}),
        **({"frontend_starved_share": starved} if starved is not None else {}),
    }
    labels: dict[str, str] = {}
    unknown: dict[str, str] = {}
    no_server, no_gpu = "no server.parquet", "no gpu_metrics.parquet (GPU utilization)"
    running = srv["mean_running"] if srv else None
    waiting = (srv["mean_waiting"] or 0.0) if srv else None
    short_batch = running is not None and full_batch and running < thresholds.batch_fraction * full_batch
    full = running is not None and full_batch and running >= thresholds.batch_fraction * full_batch
    util = gpu["mean_util_gpu_pct"] if gpu else None

    if srv is None:
        unknown["memory-bound"] = unknown["frontend-bound"] = no_server
    else:
        why = []
        kv, grew = srv["max_kv_cache_usage"], srv["preemptions_grew_by"]
        if kv is not None and kv >= thresholds.kv_full:
            why.append(f"kv_cache_usage reached {kv:.3f} >= {thresholds.kv_full:g}")
        if grew:
            why.append(f"preemptions grew by {grew:g}")
        if short_batch and waiting > 0:
            why.append(
                f"mean running {running:.1f} < {thresholds.batch_fraction:g} x B={full_batch} while {waiting:.1f} wait"
            )
        if why:
            labels["memory-bound"] = "; ".join(why)
        if in_flight is None:
            unknown["frontend-bound"] = "no requests.parquet (the client's in-flight count)"
        elif short_batch and waiting < thresholds.engine_idle_waiting and in_flight > running + 1:
            labels["frontend-bound"] = (
                f"mean running {running:.1f} < {thresholds.batch_fraction:g} x B={full_batch} with"
                f" {waiting:.1f} waiting in the engine while the client had {in_flight:.1f} in flight"
            )
        elif starved is not None and starved >= thresholds.frontend_starved_share:
            labels["frontend-bound"] = (
                f"for {starved:.0%} of the window the engine ran fewer than {thresholds.batch_fraction:g} x"
                f" B={full_batch} with none waiting while the client had more in flight"
            )
    if util is None or srv is None:
        missing = ", ".join(m for m, gone in ((no_gpu, util is None), (no_server, srv is None)) if gone)
        for name in ("host-bound", "underutilized", "saturated"):
            unknown[name] = missing
    else:
        if util < thresholds.util_low_pct and waiting > 0:
            labels["host-bound"] = (
                f"GPU utilization {util:.1f}% < {thresholds.util_low_pct:g}% while {waiting:.1f} wait"
            )
        if full and util < thresholds.util_low_pct:
            labels["underutilized"] = (
                f"GPU utilization {util:.1f}% < {thresholds.util_low_pct:g}% at a full batch"
            )
        if full and util >= thresholds.util_busy_pct:
            labels["saturated"] = f"full batch (mean running {running:.1f}), GPU utilization {util:.1f}%"
    ordered = [name for name in ORDER if name in labels]
    return {
        "primary": ordered[0] if ordered else "unclassified",
        "labels": {name: labels[name] for name in ordered},
        "evidence": evidence,
        "unknown": unknown,
        "thresholds": thresholds.to_dict(),
    }
