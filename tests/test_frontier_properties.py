"""Properties of frontiers and recommendations over random candidate sets (hypothesis)."""

from __future__ import annotations

from itertools import pairwise

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis.frontier import TargetUnreachableError, frontier_flags, pareto_front, recommend

# Small integer grids make ties and duplicates common, which is where frontier code goes wrong.
coords = st.one_of(st.integers(1, 8).map(float), st.floats(0.001, 1e4, allow_nan=False, allow_infinity=False))
points = st.lists(st.tuples(coords, coords, st.booleans()), min_size=1, max_size=30)


def candidates(pts: list[tuple[float, float, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task": ["t"] * len(pts),
            "model": ["m"] * len(pts),
            "modality": ["diffusion"] * len(pts),
            "precision": ["bf16"] * len(pts),
            "gpu": ["H100"] * len(pts),
            "num_gpus": [1] * len(pts),
            "batch_size": list(range(1, len(pts) + 1)),
            "parallelism": ["uly1-ring1"] * len(pts),
            "load_format": ["real"] * len(pts),
            "source": ["test"] * len(pts),
            "run_dir": [f"run{i:03d}" for i in range(len(pts))],
            "status": ["ok"] * len(pts),
            "valid": [v for _, _, v in pts],
            "batch_latency_s": [lat for lat, _, _ in pts],
            "energy_per_response_j": [e for _, e, _ in pts],
        }
    )


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


@settings(max_examples=300, deadline=None)
@given(points)
def test_frontier_is_exactly_the_non_dominated_set(pts: list[tuple[float, float, bool]]) -> None:
    df = candidates(pts)
    flags = frontier_flags(df, "batch_latency_s", "energy_per_response_j").to_list()
    xy = [(lat, e) for lat, e, _ in pts]
    for i, p in enumerate(xy):
        non_dominated = not any(dominates(q, p) for q in xy)
        assert flags[i] == non_dominated, (p, xy)


@settings(max_examples=200, deadline=None)
@given(points)
def test_frontier_points_are_never_dominated(pts: list[tuple[float, float, bool]]) -> None:
    df = candidates(pts)
    front = pareto_front(df, "batch_latency_s", "energy_per_response_j")
    xy = list(zip(df["batch_latency_s"], df["energy_per_response_j"], strict=True))
    assert front.height >= 1
    for p in zip(front["batch_latency_s"], front["energy_per_response_j"], strict=True):
        assert not any(dominates(q, p) for q in xy)
    # Fastest first and, along the frontier, energy strictly falls between distinct points.
    lats, energies = front["batch_latency_s"].to_list(), front["energy_per_response_j"].to_list()
    assert lats == sorted(lats)
    for (l0, e0), (l1, e1) in pairwise(zip(lats, energies, strict=True)):
        assert (l0, e0) == (l1, e1) or e1 < e0


@settings(max_examples=300, deadline=None)
@given(points, coords)
def test_recommendation_meets_deadline_and_minimizes_energy(
    pts: list[tuple[float, float, bool]], target: float
) -> None:
    df = candidates(pts)
    usable = [(lat, e) for lat, e, valid in pts if valid]
    feasible = [(lat, e) for lat, e in usable if lat <= target]
    if not usable:
        return  # nothing valid: recommend raises a FrontierError (covered in test_frontier)
    try:
        rec = recommend(df, "t", "m", target)
    except TargetUnreachableError as exc:
        assert not feasible
        assert exc.best_latency_s == min(lat for lat, _ in usable) > target
        return
    assert feasible
    assert rec.config.latency <= target  # never violates its deadline
    assert all(rec.config.energy <= e for _, e in feasible)  # no feasible config uses less energy
    assert rec.baseline.latency == min(lat for lat, _ in usable)
    # The baseline is itself feasible (nothing is faster), so the recommendation never costs more.
    assert 0.0 <= rec.savings_fraction < 1.0
    # The recommendation itself is on the frontier (ties broken towards lower latency).
    assert not any(dominates(q, (rec.config.latency, rec.config.energy)) for q in usable)
