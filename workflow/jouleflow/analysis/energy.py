"""Steady-state energy accounting of one run directory into summary.json (method: docs/method.md).

J/token = window energy / tokens streamed in the window; J/request = J/token x mean output tokens
of the run's requests (eq. 2 of the ML.ENERGY paper; analysis.output_tokens: the sent requests'
targets where their lengths were set, else the successful requests'). Energy numbers exist only
when the run had a real sensor: no power.parquet or a null `provenance.energy_source` gives nulls
and the flag "no-energy-sensor".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from jouleflow import traces
from jouleflow.analysis import steady, trace_checks, validity
from jouleflow.analysis.accounting import (
    RunData,
    add_status_flags,
    empty_summary,
    finish,
    has_energy_sensor,
    job_gpu_traces,
    load_run,
    power_limits_w,
)
from jouleflow.analysis.attribution_diagnosis import frontend_starved_share
from jouleflow.analysis.diffusion import analyze_diffusion
from jouleflow.analysis.latency import latency_summary, request_counts
from jouleflow.analysis.output_tokens import mean_output_tokens
from jouleflow.analysis.power_trace import GpuTrace, window_energy
from jouleflow.analysis.run_row import summary_row
from jouleflow.analysis.uncertainty import DEFAULT_INTERVAL_S, window_uncertainty
from jouleflow.analysis.validity import DEFAULT_THRESHOLDS, Flags, Thresholds
from jouleflow.gpus import gpu_short_name
from jouleflow.records import RunRecord, SummaryRecord

__all__ = ["analyze_run", "gpu_short_name", "load_run", "summarize_run", "summary_row", "write_summary"]


def full_batch_of(record: RunRecord, source: str) -> int:
    """Concurrent requests when the server is full: config.batch_size (max_num_seqs, per engine) x data_parallel.

    With data parallelism each engine replica runs up to max_num_seqs requests, and the scraped
    `running` is their sum, so the steady state is dp x B requests in flight.
    """
    config = record.config
    try:
        batch = int(config["batch_size"])
        replicas = int(config.get("data_parallel") or 1)
    except (KeyError, TypeError, ValueError) as exc:
        raise traces.TraceError(f"{source}: run.json needs an integer config.batch_size ({exc})") from exc
    if batch < 1 or replicas < 1:
        raise traces.TraceError(f"{source}: config.batch_size and config.data_parallel must be >= 1")
    return batch * replicas


def analyze_llm(run: RunData, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> SummaryRecord:
    """The summary of an LLM serving run (status ok or not: whatever can be computed is)."""
    record, flags = run.record, Flags()
    out = empty_summary(record, thresholds)
    add_status_flags(record, flags)
    if not has_energy_sensor(run):
        flags.raise_flag(validity.NO_ENERGY_SENSOR, "no power.parquet or provenance.energy_source is null")
    if run.requests is None or run.tokens is None or run.requests.height == 0:
        flags.raise_flag(validity.NO_STEADY_STATE, "no requests were recorded")
        return finish(out, flags)

    batch = full_batch_of(record, str(run.run_dir / traces.RUN_JSON))
    out.full_batch = batch
    req, tok = run.requests, run.tokens.filter(pl.col("n_tokens") > 0)
    out.update(**request_counts(req))  # stopped requests (saturate) are neither ok nor failed
    settled = out.num_ok + out.num_failed
    if out.num_failed > thresholds.max_failed_fraction * settled:
        failed = ~pl.col("ok").fill_null(False) & ~pl.col("stopped").fill_null(False)
        errors = req.filter(failed)["error"].drop_nulls().unique().head(3).to_list()
        flags.raise_flag(validity.FAILED_REQUESTS, f"{out.num_failed} of {settled} requests failed {errors}")
    lengths = mean_output_tokens(req, record, run.run_dir)
    out.update(mean_output_tokens=lengths.mean, output_tokens_from=lengths.source)
    if lengths.bias:
        flags.raise_flag(validity.OUTPUT_LENGTH_BIASED, lengths.bias)
    out.update(**latency_summary(req, run.tokens))

    # Windows: server (engine metrics), client per ML.ENERGY, client active count.
    first, end = req["t_first_token"].to_list(), req["t_end"].to_list()
    tol = thresholds.full_batch_tolerance
    srv = run.server.filter(pl.col("running").is_not_null()).sort("t") if run.server is not None else None
    w_server = (
        steady.server_window(srv["t"].to_list(), srv["running"].to_list(), batch, tol)
        if srv is not None
        else steady.Window(steady.SERVER, reason="no server.parquet")
    )
    w_client = steady.client_window_mlenergy(first, end, batch)
    w_active = steady.client_window_active(first, end, batch, tol)
    t_stop = saturate_stop(record)
    if t_stop is not None:  # no ramp-down: the windows end where the load stopped
        w_server, w_active = steady.until_stop(w_server, t_stop), steady.until_stop(w_active, t_stop)
        w_client = steady.client_window_saturate(first, batch, t_stop)
    warmup_end = (record.convergence or {}).get("warmup_end") if t_stop is not None else None
    if warmup_end is not None:  # the batch's context mix settled only then (docs/method.md)
        w_server, w_client, w_active = (
            steady.after_warmup(w, warmup_end) for w in (w_server, w_client, w_active)
        )
    window = steady.choose_window(w_server, w_client)
    out.update(
        window_server=w_server.to_dict(),
        window_client=w_client.to_dict(),
        window_client_active=w_active.to_dict(),
        window_overlap=steady.window_overlap(w_server, w_client),
    )
    if not w_server.found and w_client.found:
        flags.raise_flag(validity.SERVER_WINDOW_MISSING, f"{w_server.reason}; used the client window")
    if not window.found:
        flags.raise_flag(validity.NO_STEADY_STATE, f"server: {w_server.reason}; client: {w_client.reason}")
        if warmup_end is not None:  # a load stopped inside its warm-up did not converge either
            validity.check_convergence(flags, record.convergence, None, 0, thresholds)
        return finish(out, flags)
    overlap = out.window_overlap
    if overlap is not None and overlap < thresholds.min_window_overlap:
        flags.raise_flag(
            validity.WINDOW_DISAGREEMENT,
            f"server and client windows overlap {overlap:.2f} (intersection/union) < {thresholds.min_window_overlap:g}",
        )

    start, stop = window.start, window.end
    duration = stop - start
    out.update(steady_start=start, steady_end=stop, steady_duration_s=duration, window_source=window.source)
    if duration < thresholds.min_window_s:
        flags.raise_flag(
            validity.SHORT_WINDOW, f"steady window {duration:.1f} s < {thresholds.min_window_s:g} s"
        )

    active = steady.active_counts(first, end)
    out.mean_active_client = active.mean(start, stop)
    if srv is not None and srv.height:
        running = steady.StepFunction(
            tuple(srv["t"].to_list()), tuple(srv["running"].to_list()), srv["running"][0]
        )
        out.update(mean_running=running.mean(start, stop), mean_running_source="server")
    else:
        out.update(mean_running=out.mean_active_client, mean_running_source="client-active")
    out.batch_fraction = out.mean_running / batch
    if out.batch_fraction < thresholds.min_batch_fraction:
        flags.raise_flag(
            validity.LOW_BATCH,
            f"mean running {out.mean_running:.1f} / B={batch} = {out.batch_fraction:.2f} < {thresholds.min_batch_fraction:g}",
        )
    starved = frontend_starved_share(srv, run.requests, batch, start, stop, thresholds.min_batch_fraction)
    if starved is not None and starved > thresholds.max_starved_share:
        flags.raise_flag(
            validity.FRONTEND_STARVED,
            f"for {starved:.0%} of the window (> {thresholds.max_starved_share:g}) the engine ran fewer than"
            f" {thresholds.min_batch_fraction:g} x B={batch} with none waiting while the client had more in"
            " flight: requests queued in the server's front end",
        )

    # Closed interval: a chunk stamped exactly at an edge counts (chunks counted whole at their time).
    tokens = int(tok.filter((pl.col("t") >= start) & (pl.col("t") <= stop))["n_tokens"].sum())
    out.update(steady_tokens=tokens, tokens_per_s=tokens / duration)
    if tokens == 0:
        flags.raise_flag(validity.NO_TOKENS, "no tokens were streamed in the steady window")
    if validity.NO_ENERGY_SENSOR not in flags.details:
        _account_energy(run, out, flags, thresholds, start, stop)
    out.update(**host_and_media(run, start, stop))
    out.load_stop_reason = (record.load or {}).get("stopped")
    ci_n = out.energy_per_token_ci_intervals or 0
    validity.check_convergence(flags, record.convergence, out.energy_per_token_ci_rel, ci_n, thresholds)
    return finish(out, flags)


def host_and_media(run: RunData, start: float, stop: float) -> dict[str, float | None]:
    """Engine CPU cores busy over [start, stop] (server.parquet's engine_cpu_s growth / time; null
    without two samples), and the mean images / video frames per request (null for text runs)."""
    out: dict[str, float | None] = {}
    srv = run.server
    if srv is not None and "engine_cpu_s" in srv.columns:
        cpu = srv.filter(pl.col("engine_cpu_s").is_not_null() & pl.col("t").is_between(start, stop)).sort("t")
        if cpu.height >= 2 and cpu["t"][-1] > cpu["t"][0]:
            used = cpu["engine_cpu_s"][-1] - cpu["engine_cpu_s"][0]
            out["engine_cpu_cores"] = float(used / (cpu["t"][-1] - cpu["t"][0]))
    req = run.requests
    for col, key in (
        ("num_images", "mean_images_per_request"),
        ("video_frames", "mean_video_frames_per_request"),
    ):
        if req is not None and col in req.columns and req[col].null_count() < req.height:
            out[key] = float(req[col].fill_null(0).mean())
    return out


def saturate_stop(record: RunRecord) -> float | None:
    """When a saturate run's load stopped itself (None for the other arrivals and older runs)."""
    load = record.load or {}
    return load.get("t_stop") if load.get("arrival") == "saturate" else None


def _add_uncertainty(
    run: RunData, out: SummaryRecord, traces_by_gpu: dict[int, GpuTrace], start: float, stop: float
) -> None:
    """The batch-means 95% CI of J/token over the window (analysis.uncertainty)."""
    targets = (run.record.convergence or {}).get("targets") or {}
    interval = float(targets.get("interval_s") or DEFAULT_INTERVAL_S)
    tok = run.tokens.filter(pl.col("n_tokens") > 0).sort("t") if run.tokens is not None else None
    if tok is None:
        return
    bm = window_uncertainty(
        traces_by_gpu, tok["t"].to_list(), tok["n_tokens"].to_list(), start, stop, interval
    )
    out.update(
        energy_per_token_ci_rel=bm.rel_half_width,
        energy_per_token_ci_intervals=bm.n_intervals,
        energy_per_token_ci_interval_s=interval,
        energy_per_token_ci_reason=bm.reason,
    )


def _account_energy(
    run: RunData, out: SummaryRecord, flags: Flags, thresholds: Thresholds, start: float, stop: float
) -> None:
    duration = stop - start
    traces_by_gpu = job_gpu_traces(run, flags)
    if traces_by_gpu is None:
        return
    energy = window_energy(traces_by_gpu, start, stop)
    if energy.uncovered_gpus:
        flags.raise_flag(
            validity.POWER_TRACE_GAP,
            f"power samples do not cover the window on GPU(s) {list(energy.uncovered_gpus)}",
        )
    if any(energy.resets_in_window.values()):
        flags.raise_flag(
            validity.ENERGY_COUNTER_RESET, f"counter went backwards in the window: {energy.resets_in_window}"
        )
    if any(energy.resets_outside_window.values()):
        flags.raise_flag(
            validity.ENERGY_COUNTER_RESET_OUTSIDE,
            f"counter went backwards outside the window: {energy.resets_outside_window}",
        )
    total = energy.total_j
    out.energy_per_gpu_j = {str(g): e for g, e in energy.per_gpu_j.items()}
    if total is None:
        return
    _add_uncertainty(run, out, traces_by_gpu, start, stop)
    per_gpu_power = {g: e / duration for g, e in energy.per_gpu_j.items()}
    validity.check_power_bounds(flags, per_gpu_power, power_limits_w(run.record), thresholds)
    tokens = out.steady_tokens
    out.update(
        steady_energy_j=total,
        mean_power_w=total / duration,
        mean_power_per_gpu_w={str(g): p for g, p in per_gpu_power.items()},
        energy_per_token_j=total / tokens if tokens else None,
        power_integral_j=energy.total_power_integral_j,
    )
    if out.energy_per_token_j is not None and out.mean_output_tokens is not None:
        out.energy_per_request_j = out.energy_per_token_j * out.mean_output_tokens
    if out.mean_power_w > 0:
        out.tokens_per_s_per_w = out.tokens_per_s / out.mean_power_w
    if out.power_integral_j:
        mismatch = total / out.power_integral_j - 1.0
        out.energy_power_mismatch = mismatch
        if abs(mismatch) > thresholds.max_energy_power_mismatch:
            flags.raise_flag(
                validity.ENERGY_POWER_MISMATCH, f"counter energy / integrated power - 1 = {mismatch:+.3f}"
            )


def _foreign_flags(record: RunRecord, out: SummaryRecord) -> None:
    procs = validity.foreign_process_list(record)
    if procs:
        flags = Flags(dict(out.flag_details))
        flags.raise_flag(
            validity.FOREIGN_PROCESSES, f"{len(procs)} foreign process(es) on the GPUs: {procs[:3]}"
        )
        finish(out, flags)


def summarize_run(run_dir: str | Path, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> SummaryRecord:
    """summary.json's record for a run directory (LLM or diffusion, any status)."""
    checked = trace_checks.check_run(load_run(run_dir))  # before any accounting
    run = checked.run
    if run.batches is not None:
        out = analyze_diffusion(run, thresholds)
        edges = run.batches["t_start"].to_list() + run.batches["t_end"].to_list()
    else:
        out = analyze_llm(run, thresholds)
        edges = [out.steady_start, out.steady_end] if out.steady_start is not None else []
    trace_checks.check_edges(checked, edges)
    if checked.flags.details:  # first in the list: a broken trace explains the flags that follow
        for name, detail in out.flag_details.items():
            checked.flags.raise_flag(name, detail)
        finish(out, checked.flags)
    _foreign_flags(run.record, out)
    return out


def analyze_run(run_dir: str | Path, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """summary.json's content (summarize_run's record as the file holds it)."""
    return summarize_run(run_dir, thresholds).to_dict()


def write_summary(
    run_dir: str | Path, output: str | Path | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Path:
    """Analyze a run and write summary.json atomically (into the run directory by default)."""
    summary = summarize_run(run_dir, thresholds)
    path = Path(output) if output is not None else Path(run_dir) / traces.SUMMARY_JSON
    summary.write(path)
    return path
