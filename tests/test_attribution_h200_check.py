"""The prefill/decode check on the real H200 runs (resources/verification/h200-protocols/
attribution-check/: 200- vs 2,000-word prompts, the same output lengths, one server, B = 8 and 256),
and on simulated runs whose true costs are known.

The bounds come from the docs' stated tolerance (±5 % for a prediction), from what the quantities
are (a share of an energy lies in [0, 1]; costs are positive) and from physics: a prefill token costs
less than a decode token (one pass over the weights serves a whole prompt chunk), batching amortises
decode (one weight read per step serves B sequences: at B = 256 well under half the J per decode
token of B = 8), and a 10× longer prompt raises the prefill share of the dynamic energy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jouleflow.analysis.attribution import attribute
from jouleflow.analysis.attribution_predict import fit_both, joint_fit, load_intervals, prediction_check
from jouleflow.attribution_record import AttributionRecord
from test_attribution import B_DECODE, STATIC_W, A, simulate, write_sim

BUNDLE = Path(__file__).resolve().parents[1] / "resources/verification/h200-protocols/attribution-check"
TOLERANCE = 0.05  # docs/attribution.md: a prediction within ±5 %


@pytest.fixture(scope="module")
def checks() -> dict[int, dict[str, Any]]:
    return {
        b: prediction_check([load_intervals(BUNDLE / f"{b}-p{n}", name=f"p{n}") for n in (200, 2000)])
        for b in (8, 256)
    }


def shares(doc: Any, where: str = "") -> list[tuple[str, float]]:
    """Every non-null value under a key naming a share, anywhere in the document."""
    if isinstance(doc, dict):
        found = [(f"{where}.{k}", v) for k, v in doc.items() if "share" in k and isinstance(v, float)]
        return found + [s for k, v in doc.items() for s in shares(v, f"{where}.{k}")]
    if isinstance(doc, list):
        return [s for i, v in enumerate(doc) for s in shares(v, f"{where}[{i}]")]
    return []


def test_the_joint_fixed_static_fit_resolves_the_costs_at_both_batch_sizes(checks):
    b_per_batch = {}
    for batch, doc in checks.items():
        joint = doc["joint"]
        fit = joint["fits"]["fixed_static"]
        assert joint["variant"] == "fixed_static" and fit["resolved"] and not fit["not_resolved"]
        a, b = fit["a_j_per_prefill_token"], fit["b_j_per_decode_token"]
        assert 0 < a < b
        for coef, se in ((a, fit["a_se"]), (b, fit["b_se"])):
            assert coef - 1.96 * se > 0
        assert fit["condition_number"] > 0 and fit["r2"] is not None
        b_per_batch[batch] = b
        per_run = {r["name"]: r["fixed_static"] for r in joint["runs"]}
        # ten times the prompt, the same outputs: prefill takes a larger share of the dynamic energy
        assert per_run["p2000"]["prefill_share_of_dynamic"] > per_run["p200"]["prefill_share_of_dynamic"]
        for row in per_run.values():  # the joint fit describes each run's window within the tolerance
            assert abs(row["in_sample"]["relative_error"]) < TOLERANCE
    assert b_per_batch[256] < b_per_batch[8] / 2  # decode amortised by batching


def test_no_reported_share_lies_outside_0_and_1(checks):
    for batch, doc in checks.items():
        found = shares(doc)
        assert any(k.endswith("prefill_share_of_dynamic") for k, _ in found), batch
        for key, value in found:
            assert 0.0 <= value <= 1.0, (batch, key, value)


def test_a_decode_cost_that_is_not_resolved_is_said_and_not_used(checks):
    run = {r["name"]: r for r in checks[8]["runs"]}["p2000"]
    free = run["fits"]["free"]
    assert free["identifiable"] and not free["resolved"] and "b" in free["not_resolved"]
    assert "b =" in free["not_resolved"]["b"]
    # the share comes from a resolved fit (s fixed to the baseline), never from the free one
    assert run["variant"] == "fixed_static" and run["fits"]["fixed_static"]["resolved"]
    assert 0 < run["prefill_share_of_dynamic"] < 1
    # a run without any resolved fit gets no share, with the reason
    short256 = {r["name"]: r for r in checks[256]["runs"]}["p200"]
    assert short256["variant"] is None and short256["prefill_share_of_dynamic"] is None
    assert "not resolved" in short256["share_note"]


def test_the_predictions_at_b256_land_within_the_tolerance(checks):
    pairs = checks[256]["pairs"]
    assert {(p["from"], p["to"]) for p in pairs} == {("p200", "p2000"), ("p2000", "p200")}
    for pair in pairs:
        assert abs(pair["relative_error"]) < TOLERANCE, pair["from"]
    by_from = {p["from"]: p for p in pairs}
    # p200's own fits resolve only s at a saturated steady state: the prediction says so
    assert by_from["p200"]["basis"].startswith("only s resolved")
    assert by_from["p2000"]["variant"] == "fixed_static" and by_from["p2000"]["basis"] == "resolved fit"


def test_the_predictions_at_b8_land_within_the_stated_error(checks):
    # docs/attribution.md states ±12 % at B = 8 (not ±5 %): with s fixed at the idle baseline b is
    # 0.223 J on the short prompts and 0.259 J on the long ones, so each run's own costs miss the other.
    for pair in checks[8]["pairs"]:
        assert pair["basis"] == "resolved fit"
        assert abs(pair["relative_error"]) < 0.12, pair["from"]


def test_jouleflow_attribute_uses_only_a_resolved_fit():
    doc, _ = attribute(BUNDLE / "256-p200")
    assert doc["requests"]["fit_used"] is None and "1:1" in doc["requests"]["weighting"]
    assert "not resolved" in doc["requests"]["weighting"]
    costs = AttributionRecord.from_dict(doc).costs()
    assert costs.fit is None and costs.j_per_prefill_token is None and "a not resolved" in costs.note
    doc, _ = attribute(BUNDLE / "8-p2000")
    assert doc["requests"]["fit_used"] == "fixed_static" and "fitted a/b" in doc["requests"]["weighting"]
    assert AttributionRecord.from_dict(doc).costs().fit == "fixed_static"


def test_two_runs_each_collinear_alone_recover_the_true_costs_jointly(tmp_path):
    """At a full batch and a constant engine speed the decode tokens per second hardly vary, so one
    run cannot tell the static power from the decode cost; two runs at different speeds and prompt
    lengths (as a longer prompt slows decode on a GPU) can."""
    runs = [
        load_intervals(
            write_sim(
                tmp_path / name,
                simulate(seed=5, prompt_tokens=prompts, speeds=speeds, noise=0.05),
                baseline_w=STATIC_W,
            ),
            name=name,
        )  # fmt: skip
        for name, prompts, speeds in (("short", (150, 250), (2, 3)), ("long", (1800, 2200), (4, 5)))
    ]
    for iv in runs:
        assert iv.decode.std() < 0.02 * iv.decode.mean()  # nearly constant: collinear with Δt
        free = fit_both(iv)["free"]
        assert not free["identifiable"] or not free["resolved"]
    joint = joint_fit(runs)["fits"]["free"]
    assert joint["resolved"]
    for key, se, true, rel in (
        ("a_j_per_prefill_token", "a_se", A, 0.05),
        ("b_j_per_decode_token", "b_se", B_DECODE, 0.08),
        ("s_w", "s_se", STATIC_W, 0.03),
    ):
        assert joint[key] == pytest.approx(true, rel=rel)
        assert abs(joint[key] - true) < 4 * joint[se]
