"""Predicting one run's steady-window energy from another run's fitted costs (docs/attribution.md,
"Checking the fit by prediction").

The costs come from `attribution_fit.fit_costs`, on the same per-interval series `jouleflow attribute`
fits (`attribution.build_series` over the steady window), so a run's coefficients here are the ones in
its attribution.json. A prediction is E = s·T + a·ΣP + b·ΣD over the target run's own intervals.

Only resolved coefficients are used (`attribution_fit.choose_fit`): a share or a prediction comes
from a fit whose fitted coefficients are all resolved; a run whose own fits resolve only s (a free
fit at a saturated steady state) predicts s·T and is labelled so. The main result is the joint fit
on all the runs' intervals together (`joint_fit`): runs that differ in their prefill/decode ratio
separate a from b where one run alone cannot.
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
from jouleflow.analysis.attribution_fit import (
    DEFAULT_FIT_THRESHOLDS,
    FitThresholds,
    choose_fit,
    fit_costs,
)
from jouleflow.analysis.power_trace import gpu_traces


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


def chosen_fit(fits: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The fit a share or a prediction may use: `attribution_fit.choose_fit` (resolved), else None."""
    variant, _ = choose_fit(fits)
    return None if variant is None else (variant, fits[variant])


def s_only(fits: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The free fit when it resolves s but not a or b (a saturated steady state), else None."""
    free = fits.get("free") or {}
    if free.get("identifiable") and not free["resolved"] and "s" not in free["not_resolved"]:
        return free
    return None


def dynamic_shares(fit: dict[str, Any], iv: Intervals) -> dict[str, Any]:
    """a·ΣP / (a·ΣP + b·ΣD) with a resolved fit's a and b (both > 0, so the share is in (0, 1))."""
    pre = fit["a_j_per_prefill_token"] * float(iv.prefill.sum())
    dec = fit["b_j_per_decode_token"] * float(iv.decode.sum())
    return {"prefill_share_of_dynamic": pre / (pre + dec), "prefill_j": pre, "decode_j": dec}


def predict_energy(fit: dict[str, Any], iv: Intervals) -> np.ndarray:
    """Predicted energy per interval, s·Δt + a·P + b·D, with an identifiable fit's coefficients."""
    if not fit.get("identifiable"):
        raise ValueError(f"cannot predict from a fit that is not identifiable ({fit.get('reason')})")
    return (
        fit["s_w"] * iv.dt
        + fit["a_j_per_prefill_token"] * iv.prefill
        + fit["b_j_per_decode_token"] * iv.decode
    )


def prediction(fit: dict[str, Any], iv: Intervals, s_only: bool = False) -> dict[str, Any]:
    """Measured vs predicted window energy; `s_only`: s·T alone (a and b not resolved, left out)."""
    measured = float(iv.energy_j.sum())
    predicted = fit["s_w"] * iv.duration_s if s_only else float(predict_energy(fit, iv).sum())
    return {"measured_j": measured, "predicted_j": predicted, "relative_error": predicted / measured - 1.0}


def run_figures(iv: Intervals, fits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run's window, its own costs (a, b, s with standard errors and which are resolved), the prefill
    share of the dynamic energy a·ΣP / (a·ΣP + b·ΣD) from its resolved fit (null with the reason when
    none is), and the static share (idle baseline × T / E) when it has a baseline."""
    energy = float(iv.energy_j.sum())
    variant, why = choose_fit(fits)
    out: dict[str, Any] = {
        "name": iv.name,
        "duration_s": iv.duration_s,
        "energy_j": energy,
        "prefill_tokens": float(iv.prefill.sum()),
        "decode_tokens": float(iv.decode.sum()),
        "baseline_w": iv.baseline_w,
        "static_share": None if iv.baseline_w is None else iv.baseline_w * iv.duration_s / energy,
        "fits": fits,
        "variant": variant,
        "prefill_share_of_dynamic": None,
        "share_note": why and f"no resolved fit: {why}",
    }
    if variant is not None:
        out["prefill_share_of_dynamic"] = dynamic_shares(fits[variant], iv)["prefill_share_of_dynamic"]
    return out


def joint_fit(runs: list[Intervals], thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS) -> dict[str, Any]:
    """Every run's intervals fitted together, both variants (s fixed to the runs' mean idle baseline,
    and free); per run and variant the in-sample error and, when that variant is resolved, the prefill
    share of the run's dynamic energy; `variant`: the one `choose_fit` takes."""
    fits = fit_both(concat(runs, " + ".join(r.name for r in runs)), thresholds)
    variant, why = choose_fit(fits)
    per_run = []
    for r in runs:
        row: dict[str, Any] = {"name": r.name}
        for v, fit in fits.items():
            if not fit["identifiable"]:
                row[v] = None
                continue
            share = dynamic_shares(fit, r) if fit["resolved"] else {"share_note": "not resolved"}
            row[v] = {"in_sample": prediction(fit, r), **share}
        per_run.append(row)
    return {"fits": fits, "variant": variant, "note": why, "runs": per_run}


def predict_pair(
    a: Intervals,
    b: Intervals,
    fits_a: dict[str, dict[str, Any]],
    thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS,
) -> dict[str, Any]:
    """B's energy predicted from A's resolved costs (s fixed to A's baseline, else free); when A's fits
    resolve only s, from s·T_B (`basis` says so); when neither, the joint fit on A ∪ B and its
    in-sample error on B instead (labelled as such)."""
    out: dict[str, Any] = {"from": a.name, "to": b.name}
    chosen = chosen_fit(fits_a)
    if chosen is not None:
        variant, fit = chosen
        return {**out, "variant": variant, "basis": "resolved fit", "fit": fit, **prediction(fit, b)}
    _, reasons = choose_fit(fits_a)
    free = s_only(fits_a)
    if free is not None:
        return {**out, "variant": "free", "basis": "only s resolved: s·T, the same mean power", "fit": free,
                "not_resolved": reasons, **prediction(free, b, s_only=True)}  # fmt: skip
    joint = concat([a, b], f"{a.name} + {b.name}")
    jfits = fit_both(joint, thresholds)
    jchosen = chosen_fit(jfits)
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
        chosen = chosen_fit(fits)
        row: dict[str, Any] = {"to": target.name, "from": [r.name for r in others]}
        if chosen is None:
            row.update(variant=None, not_identifiable=choose_fit(fits)[1])
        else:
            row.update(variant=chosen[0], fit=chosen[1], **prediction(chosen[1], target))
        out.append(row)
    return out


def prediction_check(
    runs: list[Intervals], thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS
) -> dict[str, Any]:
    """The joint fit on all runs (the main result); per run its own figures; per ordered pair (A, B)
    the prediction of B from A; and, when some pair's fit on A resolved nothing, the leave-one-run-out
    predictions from joint fits."""
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
        "joint": joint_fit(runs, thresholds),
        "runs": [run_figures(r, f) for r, f in zip(runs, fits, strict=True)],
        "pairs": pairs,
        "leave_one_run_out": None,
    }
    if any(p["variant"] is None for p in pairs):
        doc["leave_one_run_out"] = leave_one_run_out(runs, thresholds)
    return doc
