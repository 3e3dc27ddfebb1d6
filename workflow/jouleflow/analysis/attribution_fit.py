"""The prefill/decode energy fit of `analysis.attribution`: E_i = s*dt_i + a*P_i + b*D_i by least squares.

The fit is refused ("not identifiable", never numbers) when the intervals cannot separate the three
terms: too few intervals, a rank-deficient or badly conditioned design matrix (condition number of the
matrix with each column scaled to unit length, so the units of the columns do not matter), or prompt
tokens that are constant or nearly collinear with the decode tokens. An identifiable fit still says,
per fitted coefficient, whether it is resolved: positive with its 95 % interval (± 1.96 standard
errors) above zero. A coefficient that is not is reported with its standard error and the reason,
and nothing is derived from it (`choose_fit`: the fit a share or a prediction may use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FitThresholds:
    min_intervals: int = 10
    max_condition: float = 1000.0  # of the column-scaled design matrix
    max_pd_correlation: float = 0.99  # |corr(P_i, D_i)| above this: prefill and decode are not separable

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_intervals": self.min_intervals,
            "max_condition": self.max_condition,
            "max_pd_correlation": self.max_pd_correlation,
        }


DEFAULT_FIT_THRESHOLDS = FitThresholds()
Z95 = 1.96  # two-sided 95 % normal quantile: a coefficient is resolved when value - Z95 * se > 0
FIT_PREFERENCE = ("fixed_static", "free")  # s fixed to the idle baseline first: fewer collinear terms
COEFFICIENTS = {
    "a": ("a_j_per_prefill_token", "a_se"),
    "b": ("b_j_per_decode_token", "b_se"),
    "s": ("s_w", "s_se"),
}


def resolution(fit: dict[str, Any]) -> dict[str, str]:
    """Per fitted coefficient of an identifiable fit that is not resolved, why (empty: all resolved).
    A fixed s is not fitted, so it is not judged."""
    out = {}
    for name, (key, se_key) in COEFFICIENTS.items():
        value, se = fit.get(key), fit.get(se_key)
        if se is None:  # s fixed to the idle baseline
            continue
        low, high = value - Z95 * se, value + Z95 * se
        if value <= 0:
            out[name] = f"{name} = {value:.3g} ± {se:.2g} is not positive"
        elif low <= 0:
            out[name] = (
                f"{name} = {value:.3g} ± {se:.2g}: its 95 % interval [{low:.3g}, {high:.3g}] includes 0"
            )
    return out


def choose_fit(fits: dict[str, dict[str, Any]]) -> tuple[str | None, str | None]:
    """(variant, None) for the first fit in FIT_PREFERENCE that is identifiable with every fitted
    coefficient resolved; (None, why) naming each variant's problem when none is."""
    for variant in FIT_PREFERENCE:
        if (fits.get(variant) or {}).get("resolved"):
            return variant, None
    return None, "; ".join(f"{v}: {why_unresolved(fits.get(v) or {})}" for v in FIT_PREFERENCE)


def why_unresolved(fit: dict[str, Any]) -> str:
    if not fit.get("identifiable"):
        return fit.get("reason") or "no fit"
    return "; ".join(f"{k} not resolved ({why})" for k, why in (fit.get("not_resolved") or {}).items())


def _refused(reason: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"identifiable": False, "reason": f"not identifiable: {reason}", "n_intervals": n, **extra}


def _condition(x: np.ndarray) -> float:
    norms = np.linalg.norm(x, axis=0)
    if np.any(norms == 0):
        return float("inf")
    return float(np.linalg.cond(x / norms))


def fit_costs(
    energy_j: np.ndarray,
    dt_s: np.ndarray,
    prefill_tokens: np.ndarray,
    decode_tokens: np.ndarray,
    static_w: float | None = None,
    thresholds: FitThresholds = DEFAULT_FIT_THRESHOLDS,
) -> dict[str, Any]:
    """Least squares of E_i on (dt_i, P_i, D_i); with `static_w`, s is fixed and only a, b are fitted.

    Returns a (J per prefill token), b (J per decode token), s (W), their standard errors, R^2 (of E,
    centred), the condition number and `resolved` / `not_resolved` (`resolution`), or
    identifiable=False with the reason.
    """
    e, dt = np.asarray(energy_j, float), np.asarray(dt_s, float)
    p, d = np.asarray(prefill_tokens, float), np.asarray(decode_tokens, float)
    n = len(e)
    if n < thresholds.min_intervals:
        return _refused(f"{n} intervals < {thresholds.min_intervals}", n)
    if np.ptp(p) == 0:
        return _refused("prefill tokens are constant over the intervals", n)
    if np.ptp(d) == 0:
        return _refused("decode tokens are constant over the intervals", n)
    corr = float(np.corrcoef(p, d)[0, 1])
    if abs(corr) > thresholds.max_pd_correlation:
        return _refused(
            f"prefill and decode tokens are collinear (|corr| {abs(corr):.4f} > {thresholds.max_pd_correlation:g})",
            n,
            pd_correlation=corr,
        )
    if static_w is None:
        x, y, names = np.column_stack([dt, p, d]), e, ("s", "a", "b")
    else:
        x, y, names = np.column_stack([p, d]), e - static_w * dt, ("a", "b")
    k = x.shape[1]
    if n <= k:
        return _refused(f"{n} intervals for {k} parameters", n)
    if np.linalg.matrix_rank(x) < k:
        return _refused("the design matrix is rank-deficient", n)
    cond = _condition(x)
    if not cond <= thresholds.max_condition:
        return _refused(
            f"the design matrix is badly conditioned (condition number {cond:.3g} > {thresholds.max_condition:g})",
            n,
            condition_number=cond,
        )
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    rss = float(resid @ resid)
    sigma2 = rss / (n - k)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    tss = float(((e - e.mean()) ** 2).sum())
    values = dict(zip(names, coef.tolist(), strict=True))
    errors = dict(zip(names, se.tolist(), strict=True))
    out = {
        "identifiable": True,
        "reason": None,
        "a_j_per_prefill_token": values["a"],
        "b_j_per_decode_token": values["b"],
        "s_w": values.get("s", static_w),
        "a_se": errors["a"],
        "b_se": errors["b"],
        "s_se": errors.get("s"),  # None: s was fixed to the idle baseline
        "s_fixed": static_w is not None,
        "r2": 1.0 - rss / tss if tss > 0 else None,
        "n_intervals": n,
        "condition_number": cond,
        "pd_correlation": corr,
    }
    not_resolved = resolution(out)
    return {**out, "resolved": not not_resolved, "not_resolved": not_resolved}
