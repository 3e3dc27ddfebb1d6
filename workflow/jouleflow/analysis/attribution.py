"""Where the joules go: a run's steady-window energy split into static and dynamic, prefill and decode,
and per request, with a diagnosis of what limits the run (method: docs/attribution.md).

Offline, from a run directory's traces: power.parquet (energy), server.parquet (vLLM's counters and
scheduler state), requests.parquet and tokens.parquet (the client's view), and where the run has them
the idle baseline (run.json) and gpu_metrics.parquet. What a run lacks is named under `missing`;
the rest is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from jouleflow import traces
from jouleflow.analysis.accounting import RunData, load_run
from jouleflow.analysis.attribution_diagnosis import DiagnosisThresholds, diagnose
from jouleflow.analysis.attribution_fit import DEFAULT_FIT_THRESHOLDS, FitThresholds, choose_fit, fit_costs
from jouleflow.analysis.latency import percentile
from jouleflow.analysis.power_trace import GpuTrace, gpu_traces
from jouleflow.records import RunRecord, SummaryRecord

GPU_METRICS = "gpu_metrics.parquet"
RESIDENCE = ("first-token", "send")  # a request occupies the server from its first token / from its send


@dataclass(frozen=True)
class Options:
    interval_s: float = 1.0
    residence: str = "first-token"
    fit: FitThresholds = DEFAULT_FIT_THRESHOLDS
    diagnosis: DiagnosisThresholds = field(default_factory=DiagnosisThresholds)

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval must be > 0 s, got {self.interval_s}")
        if self.residence not in RESIDENCE:
            raise ValueError(f"residence must be one of {RESIDENCE}, got {self.residence!r}")


def steady_window(run_dir: Path, summary: Path | None = None) -> tuple[float, float, str]:
    """(start, end, source) from summary.json (given, or in the run directory), else computed now."""
    path = summary if summary is not None else run_dir / traces.SUMMARY_JSON
    if path.is_file():
        record, source = SummaryRecord.read(path), str(path)
    else:
        from jouleflow.analysis.energy import summarize_run  # energy imports much; only when needed

        record, source = summarize_run(run_dir), "computed (no summary.json)"
    if record.steady_start is None or record.steady_end is None:
        raise traces.TraceError(f"{run_dir}: no steady window ({source}: flags {record.flags})")
    return float(record.steady_start), float(record.steady_end), source


def idle_baseline(record: RunRecord) -> dict[str, Any] | None:
    """run.json's idle baseline (provenance.idle_baseline; runs before it have none)."""
    return record.idle_baseline


def interval_edges(start: float, end: float, step: float) -> np.ndarray:
    """start, start+step, ..., end; a last interval shorter than step is kept (dt enters the fit)."""
    n = int(np.floor((end - start) / step + 1e-9))
    edges = start + step * np.arange(n + 1)
    return edges if end - edges[-1] <= 1e-9 * step else np.append(edges, end)


def interval_energy(by_gpu: dict[int, GpuTrace], edges: np.ndarray) -> np.ndarray | None:
    """Energy per interval, summed over GPUs: power_trace.counter_energy's rule (the counter interpolated
    linearly, a backward step counted as 0), vectorized; None when a GPU's samples miss an edge."""
    total = np.zeros(len(edges) - 1)
    for trace in by_gpu.values():
        if not trace.covers(float(edges[0]), float(edges[-1])):
            return None
        t, e = np.asarray(trace.t), np.asarray(trace.energy_j)
        clean = np.concatenate([[0.0], np.cumsum(np.maximum(0.0, np.diff(e)))])
        total += np.diff(np.interp(edges, t, clean))
    return total


def counter_increments(server: pl.DataFrame | None, column: str, edges: np.ndarray) -> np.ndarray | None:
    """A cumulative server counter's increase per interval (interpolated at the edges); None when the
    trace lacks the column, does not cover the window, or the counter never grows in it."""
    if server is None or column not in server.columns:
        return None
    rows = server.filter(pl.col(column).is_not_null()).sort("t")
    if rows.height < 2 or rows["t"][0] > edges[0] or rows["t"][-1] < edges[-1]:
        return None
    values = np.interp(edges, rows["t"].to_numpy(), rows[column].to_numpy().astype(float))
    steps = np.maximum(0.0, np.diff(values))
    return steps if steps.sum() > 0 else None


def bin_index(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Interval of each time, -1 outside [edges[0], edges[-1]] (closed: a chunk at the end counts)."""
    idx = np.searchsorted(edges, times, side="right") - 1
    idx[times == edges[-1]] = len(edges) - 2
    idx[(times < edges[0]) | (times > edges[-1]) | np.isnan(times)] = -1
    return idx


@dataclass
class Series:
    """The per-interval quantities and the per-request token matrices behind them."""

    edges: np.ndarray
    energy_j: np.ndarray | None
    prefill: np.ndarray  # P_i
    decode: np.ndarray  # D_i
    sources: dict[str, str]
    request_ids: np.ndarray
    req_decode: np.ndarray  # [request, interval] streamed tokens
    req_prefill: np.ndarray  # [request, interval] input tokens at the first-token interval


def build_series(run: RunData, edges: np.ndarray) -> Series:
    n = len(edges) - 1
    req = run.requests if run.requests is not None else pl.from_arrow(traces.REQUESTS.empty_table())
    ids = req["request_id"].to_numpy()
    row_of = {int(r): i for i, r in enumerate(ids)}
    req_decode, req_prefill = np.zeros((len(ids), n)), np.zeros((len(ids), n))
    tok = run.tokens.filter(pl.col("n_tokens") > 0) if run.tokens is not None else None
    if tok is not None and tok.height:
        k = bin_index(tok["t"].to_numpy().astype(float), edges)
        rows = np.array([row_of.get(int(r), -1) for r in tok["request_id"].to_list()])
        keep = (k >= 0) & (rows >= 0)
        np.add.at(req_decode, (rows[keep], k[keep]), tok["n_tokens"].to_numpy()[keep].astype(float))
    first = req["t_first_token"].fill_null(float("nan")).to_numpy().astype(float)
    k = bin_index(first, edges)
    inputs = req["input_tokens"].fill_null(0).to_numpy().astype(float)
    inside = k >= 0
    req_prefill[np.flatnonzero(inside), k[inside]] = inputs[inside]
    energy = (
        interval_energy(gpu_traces(run.power), edges) if run.power is not None and run.power.height else None
    )
    sources = {}
    prefill = counter_increments(run.server, "prompt_tokens", edges)
    if prefill is not None:
        sources["prefill_tokens"] = "server prompt_tokens counter, interpolated at the interval edges"
    else:
        prefill = req_prefill.sum(axis=0)
        sources["prefill_tokens"] = (
            "requests' input_tokens at the interval of their first token (no prompt_tokens counter)"
        )
    decode = counter_increments(run.server, "generation_tokens", edges)
    if decode is not None:
        sources["decode_tokens"] = "server generation_tokens counter, interpolated at the interval edges"
    else:
        decode = req_decode.sum(axis=0)
        sources["decode_tokens"] = "streamed chunk tokens (no growing generation_tokens counter)"
    return Series(edges, energy, prefill, decode, sources, ids, req_decode, req_prefill)


def static_dynamic(
    baseline: dict[str, Any] | None, gpus: list[int], energy_j: float, duration: float
) -> dict[str, Any]:
    """static = sum over the job's GPUs of the idle-baseline power x the window; dynamic = the rest."""
    out: dict[str, Any] = {"static_j": None, "dynamic_j": None, "static_share": None, "dynamic_share": None}
    if baseline is None:
        return {**out, "reason": "run.json has no idle_baseline (measured before it was recorded)"}
    per_gpu = {str(k): float(v) for k, v in (baseline.get("mean_power_w") or {}).items() if v is not None}
    missing = [g for g in gpus if str(g) not in per_gpu]
    if missing or not per_gpu:
        return {**out, "reason": f"the idle baseline lacks GPU(s) {missing or 'all'}"}
    watts = sum(per_gpu[str(g)] for g in gpus)
    static = watts * duration
    return {
        "static_j": static,
        "dynamic_j": energy_j - static,
        "static_share": static / energy_j if energy_j else None,
        "dynamic_share": (energy_j - static) / energy_j if energy_j else None,
        "static_w": watts,
        "baseline_w": {str(g): per_gpu[str(g)] for g in gpus},
        "baseline": {k: baseline.get(k) for k in ("start", "end", "duration_s")},
        "reason": None,
    }


def _share(weights: np.ndarray, amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each interval's amount split over the requests in proportion to their weight; (shares, left over)."""
    totals = weights.sum(axis=0)
    has = totals > 0
    factor = np.divide(amounts, totals, out=np.zeros_like(amounts), where=has)
    return weights * factor, np.where(has, 0.0, amounts)


def residence(run: RunData, edges: np.ndarray, frm: str) -> np.ndarray:
    """[request, interval] seconds each request was resident (frm: first-token or send, to its end)."""
    req = run.requests
    begin = req["t_first_token" if frm == "first-token" else "t_send"].fill_null(float("nan")).to_numpy()
    end = req["t_end"].fill_null(float("nan")).to_numpy()
    lo = np.maximum(begin[:, None].astype(float), edges[None, :-1])
    hi = np.minimum(end[:, None].astype(float), edges[None, 1:])
    return np.nan_to_num(np.maximum(0.0, hi - lo))


def per_request(
    run: RunData, s: Series, static_i: np.ndarray, ratio: float, frm: str
) -> tuple[pl.DataFrame, float]:
    """Per request: its share of each interval's dynamic energy by the tokens it processed there
    (prefill tokens weighted by `ratio` = a/b), and of the static energy by residence. An interval
    with no tokens gives its dynamic energy to the resident requests; one without any request leaves
    its energy unattributed (returned)."""
    dynamic_i = s.energy_j - static_i
    res = residence(run, s.edges, frm)
    weights = s.req_decode + ratio * s.req_prefill
    dyn, left = _share(weights, dynamic_i)
    dyn_fallback, dyn_left = _share(res, left)
    stat, stat_left = _share(res, static_i)
    pre_frac = np.divide(ratio * s.req_prefill, weights, out=np.zeros_like(weights), where=weights > 0)
    req = run.requests
    t_begin = req["t_first_token" if frm == "first-token" else "t_send"].to_numpy()
    frame = pl.DataFrame(
        {
            "request_id": s.request_ids,
            "energy_j": (dyn + dyn_fallback + stat).sum(axis=1),
            "dynamic_j": (dyn + dyn_fallback).sum(axis=1),
            "static_j": stat.sum(axis=1),
            "prefill_j": (dyn * pre_frac).sum(axis=1),
            # an interval without tokens: its dynamic energy went to the residents, counted as decode
            "decode_j": (dyn * (1 - pre_frac) + dyn_fallback).sum(axis=1),
            "decode_tokens_in_window": s.req_decode.sum(axis=1),
            "prefill_tokens_in_window": s.req_prefill.sum(axis=1),
            "residence_s": res.sum(axis=1),
            "whole_in_window": (t_begin >= s.edges[0]) & (req["t_end"].to_numpy() <= s.edges[-1]),
        }
    )
    return frame, float(dyn_left.sum() + stat_left.sum())


def _stats(values: pl.Series) -> dict[str, Any]:
    return {"n": values.len(), **{f"p{q}": percentile(values, q) for q in (10, 50, 90)}}


def attribute(
    run_dir: str | Path, options: Options = Options(), summary: Path | None = None
) -> tuple[dict[str, Any], pl.DataFrame | None]:
    """The attribution document (attribution.json) and the per-request frame (None when not computable)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if run.batches is not None or run.requests is None:
        raise traces.TraceError(f"{run_dir}: attribution needs an LLM run with requests.parquet")
    start, end, window_source = steady_window(run_dir, summary)
    edges = interval_edges(start, end, options.interval_s)
    dt = np.diff(edges)
    s = build_series(run, edges)
    metrics_path = run_dir / GPU_METRICS
    metrics = pl.from_arrow(traces.read_table(metrics_path)) if metrics_path.is_file() else None
    missing: dict[str, str] = {}
    if not s.sources["prefill_tokens"].startswith("server"):
        missing["prefill_tokens_counter"] = (
            "server.parquet has no prompt_tokens: prefill tokens from requests.parquet"
        )
    if metrics is None:
        missing["gpu_metrics"] = f"no {GPU_METRICS}: GPU utilization checks unknown"
    from jouleflow.analysis.energy import full_batch_of

    full_batch = full_batch_of(run.record, str(run_dir / traces.RUN_JSON))
    doc: dict[str, Any] = {
        "run_dir": str(run_dir),
        "window": {"start": start, "end": end, "duration_s": end - start, "source": window_source},
        "interval_s": options.interval_s,
        "n_intervals": len(dt),
        "residence_from": options.residence,
        "token_sources": s.sources,
        "thresholds": {"fit": options.fit.to_dict(), "diagnosis": options.diagnosis.to_dict()},
        "diagnosis": diagnose(run.server, metrics, full_batch, start, end, options.diagnosis, run.requests),
    }
    baseline = idle_baseline(run.record)
    if baseline is None:
        missing["idle_baseline"] = "run.json has no idle_baseline: no static/dynamic split, no fixed-s fit"
    if s.energy_j is None:
        missing["energy"] = "no power samples covering the window: no energy, fit or per-request energy"
        doc.update(energy_j=None, static_dynamic=None, fit=None, requests=None, missing=missing)
        return doc, None
    energy = float(s.energy_j.sum())
    gpus = sorted(gpu_traces(run.power))
    split = static_dynamic(baseline, gpus, energy, end - start)
    fit = {"free": fit_costs(s.energy_j, dt, s.prefill, s.decode, None, options.fit)}
    if split.get("static_w") is not None:
        fit["fixed_static"] = fit_costs(s.energy_j, dt, s.prefill, s.decode, split["static_w"], options.fit)
    else:
        fit["fixed_static"] = {"identifiable": False, "reason": split["reason"]}
    variant, unresolved = choose_fit(fit)  # the same rule as the prediction check's
    if variant is not None:
        a, b = fit[variant]["a_j_per_prefill_token"], fit[variant]["b_j_per_decode_token"]
        ratio, weighting = a / b, f"prefill tokens weighted by the fitted a/b = {a / b:.4g} ({variant} fit)"
    else:  # each request's dynamic joules still need a key; its prefill/decode split is not reported
        ratio = 1.0
        weighting = f"tokens counted 1:1, prefill/decode split not reported (no resolved fit: {unresolved})"
    if split.get("static_w") is not None:
        static_w, static_source = split["static_w"], "idle baseline"
    elif variant == "free":  # s means static power only when b is resolved beside it (they trade off)
        static_w, static_source = fit["free"]["s_w"], "fitted s (no idle baseline)"
    else:
        static_w = 0.0
        static_source = "none: all energy treated as dynamic (no idle baseline, and no free fit resolving s beside a and b)"
    frame, unattributed = per_request(run, s, static_w * dt, ratio, options.residence)
    if variant is None:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("prefill_j", "decode_j"))
    whole = frame.filter(pl.col("whole_in_window"))
    doc.update(
        energy_j=energy,
        static_dynamic=split,
        fit=fit,
        requests={
            "weighting": weighting,
            "fit_used": variant,
            "prefill_to_decode_ratio": ratio,
            "static_power_w": static_w,
            "static_source": static_source,
            "attributed_j": float(frame["energy_j"].sum()),
            # the attributed joules by part: static + dynamic = attributed_j, dynamic = prefill + decode
            # (both null when no fit resolved the costs)
            **{
                f"{k}_j": None if frame[f"{k}_j"].null_count() else float(frame[f"{k}_j"].sum())
                for k in ("static", "prefill", "decode")
            },  # fmt: skip
            "dynamic_j": float(frame["dynamic_j"].sum()),
            "unattributed_j": unattributed,
            "n_requests_with_energy": int((frame["energy_j"] != 0).sum()),
            # static power above an interval's energy: that interval's dynamic share is negative
            "intervals_with_negative_dynamic": int((s.energy_j < static_w * dt).sum()),
            "whole_in_window": {k: _stats(whole[k]) for k in ("energy_j", "dynamic_j", "static_j")},
        },
        missing=missing,
    )
    return doc, frame
