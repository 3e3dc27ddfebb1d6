"""Predicting a run's energy from another run's fitted costs (analysis.attribution_predict and
benchmarks/attribution_predict.py), on simulated runs with known costs that differ in prompt length
(the simulation and its writer: test_attribution)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from jouleflow.analysis.attribution import attribute
from jouleflow.analysis.attribution_fit import FitThresholds
from jouleflow.analysis.attribution_predict import (
    fit_both,
    load_intervals,
    predict_energy,
    prediction_check,
)
from test_attribution import B_DECODE, STATIC_W, A, simulate, write_sim

SHORT, LONG = (150, 250), (1800, 2200)  # prompt tokens: ~200 vs ~2,000, the same output lengths
TRUE = {"identifiable": True, "s_w": STATIC_W, "a_j_per_prefill_token": A, "b_j_per_decode_token": B_DECODE}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    return {
        "short": write_sim(root / "short", simulate(seed=3, prompt_tokens=SHORT), baseline_w=STATIC_W),
        "long": write_sim(root / "long", simulate(seed=3, prompt_tokens=LONG), baseline_w=STATIC_W),
        "mixed": write_sim(root / "mixed", simulate(seed=4), baseline_w=STATIC_W),
        "old": write_sim(root / "old", simulate(seed=3, prompt_tokens=LONG, counters=False)),
    }


@pytest.mark.parametrize("name", ["short", "long", "old"])
def test_the_costs_are_the_ones_jouleflow_attribute_reports(runs, name):
    doc, _ = attribute(runs[name])
    fits = fit_both(load_intervals(runs[name]))
    assert fits["free"] == doc["fit"]["free"]
    if doc["fit"]["fixed_static"]["identifiable"]:
        assert fits["fixed_static"] == doc["fit"]["fixed_static"]
    else:
        assert (
            not fits["fixed_static"]["identifiable"] and "no idle baseline" in fits["fixed_static"]["reason"]
        )


def test_the_true_costs_predict_the_measured_energy(runs):
    for name in ("short", "long"):
        iv = load_intervals(runs[name])
        per_interval = predict_energy(TRUE, iv)
        assert per_interval.shape == iv.energy_j.shape
        # 1 % noise per 0.1 s tick, and tokens counted at the counter's scrape: close per window
        assert per_interval.sum() == pytest.approx(iv.energy_j.sum(), rel=0.01)
        assert np.corrcoef(per_interval, iv.energy_j)[0, 1] > 0.95
    with pytest.raises(ValueError, match="not identifiable"):
        predict_energy({"identifiable": False, "reason": "too few"}, iv)


def test_short_prompts_predict_long_prompts_and_the_prefill_share_moves(runs):
    short, long = load_intervals(runs["short"], name="short"), load_intervals(runs["long"], name="long")
    doc = prediction_check([short, long])
    assert [(p["from"], p["to"], p["variant"]) for p in doc["pairs"]] == [
        ("short", "long", "fixed_static"),  # s fixed to the baseline first, when it resolves a and b
        ("long", "short", "fixed_static"),
    ]
    for pair in doc["pairs"]:
        assert abs(pair["relative_error"]) < 0.03
        assert pair["measured_j"] == pytest.approx(
            float((long if pair["to"] == "long" else short).energy_j.sum())
        )
    assert doc["leave_one_run_out"] is None  # every pair was predicted from a single run's fit
    fig = {r["name"]: r for r in doc["runs"]}
    # ten times the prompt: the prefill share of the dynamic energy grows several-fold
    assert fig["long"]["prefill_share_of_dynamic"] > 3 * fig["short"]["prefill_share_of_dynamic"]
    assert fig["long"]["fits"]["free"]["a_j_per_prefill_token"] == pytest.approx(A, rel=0.1)
    for r in fig.values():
        assert r["static_share"] == pytest.approx(STATIC_W * r["duration_s"] / r["energy_j"])
        assert r["fits"]["fixed_static"]["s_fixed"]


def test_a_fit_fixed_to_the_baseline_when_the_free_one_is_refused(runs):
    short, long = load_intervals(runs["short"], name="short"), load_intervals(runs["long"], name="long")
    fits = fit_both(short)
    free_cond, fixed_cond = fits["free"]["condition_number"], fits["fixed_static"]["condition_number"]
    assert fixed_cond < free_cond  # one column fewer
    between = FitThresholds(max_condition=(free_cond + fixed_cond) / 2)
    pair = prediction_check([short, long], between)["pairs"][0]
    assert pair["variant"] == "fixed_static" and pair["fit"]["s_w"] == STATIC_W
    assert abs(pair["relative_error"]) < 0.03


def test_not_identifiable_on_one_run_falls_back_to_joint_fits(runs):
    short, long = load_intervals(runs["short"], name="short"), load_intervals(runs["long"], name="long")
    mixed, old = load_intervals(runs["mixed"], name="mixed"), load_intervals(runs["old"], name="old")
    # more intervals than any one run has, fewer than two runs together
    n = max(len(r.dt) for r in (short, long, mixed)) + 1
    assert n < len(short.dt) + len(long.dt)
    strict = FitThresholds(min_intervals=n)
    doc = prediction_check([short, long], strict)
    for pair in doc["pairs"]:
        assert pair["variant"] is None and "predicted_j" not in pair
        assert f"intervals < {n}" in pair["not_identifiable"] and "free" in pair["not_identifiable"]
        assert (
            pair["joint_variant"] == "fixed_static" and abs(pair["joint_in_sample"]["relative_error"]) < 0.03
        )
    # with two runs, leaving one out leaves a single run: not identifiable either, and said so
    loro = doc["leave_one_run_out"]
    assert [r["to"] for r in loro] == ["short", "long"] and all(r["variant"] is None for r in loro)
    three = prediction_check([short, long, mixed], strict)["leave_one_run_out"]
    assert [r["from"] for r in three] == [["long", "mixed"], ["short", "mixed"], ["short", "long"]]
    assert all(r["variant"] == "fixed_static" and abs(r["relative_error"]) < 0.03 for r in three)
    # a run without a baseline: the joint fit has no fixed-s variant
    joint = prediction_check([old, long], strict)["pairs"][0]["joint_fits"]["fixed_static"]
    assert not joint["identifiable"] and "no idle baseline" in joint["reason"]
    with pytest.raises(ValueError, match="two runs"):
        prediction_check([short])


def test_the_script_prints_the_tables(runs, capsys, tmp_path):
    path = Path(__file__).parents[1] / "benchmarks/attribution_predict.py"
    spec = importlib.util.spec_from_file_location("attribution_predict_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "check.json"
    assert script.main([str(runs["short"]), str(runs["old"]), "--markdown", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| run | fit | J/prefill tok | J/decode tok | static W |" in text  # per run and fit
    assert "| short + old (joint) | free |" in text  # the joint fit
    assert "| run | window s | energy J | static share | own fit |" in text
    # short's fit with s fixed to its baseline; old has no baseline, so its free fit
    assert "| short | old | fixed_static | resolved fit |" in text and "| old | short | free |" in text
    assert "n/a (no idle baseline)" in text  # the old run's static share
    assert "old fixed_static fit: old: no idle baseline" in text
    assert out.is_file()
    assert script.main([str(runs["short"]), str(runs["long"]), "--min-intervals", "100000"]) == 0
    assert "not identifiable" in capsys.readouterr().out
