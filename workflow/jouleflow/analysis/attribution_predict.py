"""Predicting one run's steady-window energy from another run's fitted costs (docs/attribution.md,
"Checking the fit by prediction").

The costs come from `attribution_fit.fit_costs`, on the same per-interval series `jouleflow attribute`
fits (`attribution.build_series` over the steady window), so a run's coefficients here are the ones in
its attribution.json. A prediction is E = s·T + a·ΣP + b·ΣD over the target run's own intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jouleflow import traces
from jouleflow.analysis.accounting import load_run
from jouleflow.analysis.attribution import (
    Options,
    build_series,
    idle_baseline,
    interval_edges,
    static_dynamic,
    steady_window,
)
from jouleflow.analysis.attribution_fit import DEFAULT_FIT_THRESHOLDS, FitThresholds, fit_costs
from jouleflow.analysis.power_trace import gpu_traces

VARIANTS = ("free", "fixed_static")


@dataclass(frozen=True)
class Intervals:
    """A run's steady window cut into intervals: what the fit regresses and a prediction needs."""

    name: str
    dt: np.ndarray
    energy_j: np.ndarray
    prefill: np.ndarray
    decode: np.ndarray
    baseline_w: float | None  # the idle baseline summed over the job's GPUs; None without one
    sources: dict[str, str]

    @property
    def duration_s(self) -> float:
        return float(self.dt.sum())


def load_intervals(
    run_dir: str | Path, options: Options | None = None, summary: Path | None = None, name: str | None = None
) -> Intervals:
    """The series `attribution.attribute` fits, for one LLM run directory (TraceError without energy)."""
    run_dir, options = Path(run_dir), options or Options()
    run = load_run(run_dir)
    if run.batches is not None or run.requests is None:
        raise traces.TraceError(f"{run_dir}: attribution needs an LLM run with requests.parquet")
    start, end, _ = steady_window(run_dir, summary)
    edges = interval_edges(start, end, options.interval_s)
    s = build_series(run, edges)
    if s.energy_j is None:
        raise traces.TraceError(f"{run_dir}: no power samples covering the steady window")
    split = static_dynamic(
        idle_baseline(run.record), sorted(gpu_traces(run.power)), float(s.energy_j.sum()), end - start
    )
    return Intervals(
        name or str(run_dir),
        np.diff(edges),
        s.energy_j,
        s.prefill,
        s.decode,
        split.get("static_w"),
        s.sources,
    )


def concat(runs: list[Intervals], name: str) -> Intervals:
    """Several runs' intervals as one series; the baseline is their mean when every run has one."""
    baselines = [r.baseline_w for r in runs]
    return Intervals(
        name,
        *(np.concatenate([getattr(r, k) for r in runs]) for k in ("dt", "energy_j", "prefill", "decode")),
        None if None in baselines else float(np.mean(baselines)),  # type: ignore[arg-type]
        {},
    )


def fit_both(iv: Intervals, thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS) -> dict[str, dict[str, Any]]:
    """The free fit and the fit with s fixed to the idle baseline (refused without a baseline)."""
    out = {"free": fit_costs(iv.energy_j, iv.dt, iv.prefill, iv.decode, None, thresholds)}
    if iv.baseline_w is None:
        out["fixed_static"] = {"identifiable": False, "reason": f"{iv.name}: no idle baseline"}
    else:
        out["fixed_static"] = fit_costs(iv.energy_j, iv.dt, iv.prefill, iv.decode, iv.baseline_w, thresholds)
    return out


def first_identifiable(fits: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The free fit when identifiable, else the fixed-s one, else None."""
    return next(((v, fits[v]) for v in VARIANTS if fits[v]["identifiable"]), None)


def predict_energy(fit: dict[str, Any], iv: Intervals) -> np.ndarray:
    """Predicted energy per interval, s·Δt + a·P + b·D, with an identifiable fit's coefficients."""
    if not fit.get("identifiable"):
        raise ValueError(f"cannot predict from a fit that is not identifiable ({fit.get('reason')})")
    return (
        fit["s_w"] * iv.dt
        + fit["a_j_per_prefill_token"] * iv.prefill
        + fit["b_j_per_decode_token"] * iv.decode
    )


def prediction(fit: dict[str, Any], iv: Intervals) -> dict[str, float]:
    measured, predicted = float(iv.energy_j.sum()), float(predict_energy(fit, iv).sum())
    return {"measured_j": measured, "predicted_j": predicted, "relative_error": predicted / measured - 1.0}


def run_figures(iv: Intervals, fits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run's window, its own costs (a, b, s with standard errors), the fitted prefill share of the
    dynamic energy a·ΣP / (a·ΣP + b·ΣD), and the static share (idle baseline × T / E) when it has one."""
    energy = float(iv.energy_j.sum())
    out: dict[str, Any] = {
        "name": iv.name,
        "duration_s": iv.duration_s,
        "energy_j": energy,
        "prefill_tokens": float(iv.prefill.sum()),
        "decode_tokens": float(iv.decode.sum()),
        "baseline_w": iv.baseline_w,
        "static_share": None if iv.baseline_w is None else iv.baseline_w * iv.duration_s / energy,
        "fits": fits,
        "variant": None,
        "prefill_share_of_dynamic": None,
    }
    chosen = first_identifiable(fits)
    if chosen is not None:
        variant, fit = chosen
        pre = fit["a_j_per_prefill_token"] * out["prefill_tokens"]
        dyn = pre + fit["b_j_per_decode_token"] * out["decode_tokens"]
        out.update(variant=variant, prefill_share_of_dynamic=pre / dyn if dyn else None)
    return out


def predict_pair(
    a: Intervals,
    b: Intervals,
    fits_a: dict[str, dict[str, Any]],
    thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS,
) -> dict[str, Any]:
    """B's energy predicted from A's costs (free fit, else s fixed to A's baseline); when neither is
    identifiable, the joint fit on A ∪ B and its in-sample error on B instead (labelled as such)."""
    out: dict[str, Any] = {"from": a.name, "to": b.name}
    chosen = first_identifiable(fits_a)
    if chosen is not None:
        variant, fit = chosen
        return {**out, "variant": variant, "fit": fit, **prediction(fit, b)}
    reasons = "; ".join(f"{v}: {fits_a[v]['reason']}" for v in VARIANTS)
    joint = concat([a, b], f"{a.name} + {b.name}")
    jfits = fit_both(joint, thresholds)
    jchosen = first_identifiable(jfits)
    out.update(variant=None, not_identifiable=reasons, joint_fits=jfits)
    if jchosen is not None:
        out.update(joint_variant=jchosen[0], joint_in_sample=prediction(jchosen[1], b))
    return out


def leave_one_run_out(
    runs: list[Intervals], thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS
) -> list[dict[str, Any]]:
    """Each run's energy predicted from the joint fit on all the other runs (needs three runs or more
    for the others to be a joint fit; with two it is the single-run prediction)."""
    out = []
    for i, target in enumerate(runs):
        others = [r for j, r in enumerate(runs) if j != i]
        fits = fit_both(concat(others, " + ".join(r.name for r in others)), thresholds)
        chosen = first_identifiable(fits)
        row: dict[str, Any] = {"to": target.name, "from": [r.name for r in others]}
        if chosen is None:
            row.update(
                variant=None, not_identifiable="; ".join(f"{v}: {fits[v]['reason']}" for v in VARIANTS)
            )
        else:
            row.update(variant=chosen[0], fit=chosen[1], **prediction(chosen[1], target))
        out.append(row)
    return out


def prediction_check(
    runs: list[Intervals], thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS
) -> dict[str, Any]:
    """Per run its own figures; per ordered pair (A, B) the prediction of B from A; and, when some
    pair's fit on A was not identifiable, the leave-one-run-out predictions from joint fits."""
    if len(runs) < 2:
        raise ValueError(f"a prediction check needs two runs or more, got {len(runs)}")
    fits = [fit_both(r, thresholds) for r in runs]
    pairs = [
        predict_pair(a, b, fits[i], thresholds)
        for i, a in enumerate(runs)
        for j, b in enumerate(runs)
        if i != j
    ]
    doc: dict[str, Any] = {
        "thresholds": thresholds.to_dict(),
        "runs": [run_figures(r, f) for r, f in zip(runs, fits, strict=True)],
        "pairs": pairs,
        "leave_one_run_out": None,
    }
    if any(p["variant"] is None for p in pairs):
        doc["leave_one_run_out"] = leave_one_run_out(runs, thresholds)
    return doc
