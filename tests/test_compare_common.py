"""Shared comparison helpers: metric names, parsing, statistics, summary loading."""

from __future__ import annotations

import pytest
from compare_helpers import frame, row
from jouleflow.analysis.compare import common
from jouleflow.analysis.compare.common import CompareError


def test_metric_names_map_to_summary_columns():
    assert common.metric_column("median_itl") == "median_itl_s"
    assert common.metric_column("energy_per_token") == "energy_per_token_j"
    assert common.metric_column("batch_latency", "latency") == "batch_latency_s"
    assert common.metric_column("median_itl_s") == "median_itl_s"  # full column names work too


def test_unknown_metric_is_named_with_the_choices():
    with pytest.raises(CompareError, match=r"'median_itl_ms'.*median_itl"):
        common.metric_column("median_itl_ms")
    with pytest.raises(CompareError, match="energy metric 'median_itl'"):
        common.metric_column("median_itl", "energy")


def test_deadlines_carry_units_and_are_sorted():
    assert common.parse_deadlines("250ms,50ms,100ms") == pytest.approx([0.05, 0.1, 0.25])
    assert common.parse_deadlines("10s, 1.5min") == pytest.approx([10.0, 90.0])
    assert common.parse_deadlines(["60s", "60s"]) == [60.0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("50ms,fast,250ms", "'fast' is not a duration"),
        ("50ms,,250ms", "empty item"),
        ("50ms,-3s", "'-3s' is not"),
    ],
)
def test_bad_deadline_item_is_named(text, message):
    with pytest.raises(CompareError, match=message):
        common.parse_deadlines(text)


def test_bare_number_deadline_is_refused():
    with pytest.raises(CompareError, match="'50' has no unit"):
        common.parse_deadlines("50")


def test_change_stats_odd_count_median_is_the_middle_value():
    stats = common.change_stats([0.3, -0.2, -0.1])
    assert (stats.wins, stats.total) == (2, 3)
    assert stats.median == pytest.approx(-0.1)
    assert (stats.min, stats.max) == (pytest.approx(-0.2), pytest.approx(0.3))


def test_change_stats_even_count_median_is_the_mean_of_the_middle_two():
    stats = common.change_stats([0.4, -0.3, 0.1, -0.1])
    assert stats.median == pytest.approx((-0.1 + 0.1) / 2)
    assert stats.wins == 2


def test_a_tie_is_not_a_win():
    stats = common.change_stats([0.0, 0.0, -0.5])
    assert stats.wins == 1
    assert stats.median == 0.0


def test_empty_changes_have_no_statistics():
    assert common.change_stats([]) == common.ChangeStats(0, 0, None, None, None)


def test_bf16_sibling_strips_the_fp8_suffix_only():
    assert (
        common.bf16_sibling("meta-llama/Llama-3.1-405B-Instruct-FP8") == "meta-llama/Llama-3.1-405B-Instruct"
    )
    assert common.bf16_sibling("org/Model-fp8") == "org/Model"
    assert common.bf16_sibling("org/FP8-Model") is None


def test_load_summary_keeps_ok_and_valid_rows(tmp_path):
    path = tmp_path / "summary.parquet"
    frame(
        row(batch_size=8),
        row(batch_size=16, valid=None),  # imported data: validity unknown counts as valid
        row(batch_size=32, valid=False),
        row(batch_size=64, status="infeasible", energy_per_response_j=None),
    ).write_parquet(path)
    assert common.load_summary(path)["batch_size"].to_list() == [8, 16]
    assert common.load_summary(path, include_invalid=True)["batch_size"].to_list() == [8, 16, 32]


def test_load_summary_names_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(CompareError, match="nope.parquet: summary table is missing"):
        common.load_summary(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(CompareError, match="bad.parquet: not a readable Parquet"):
        common.load_summary(bad)


def test_collapse_repeats_averages_one_configuration():
    df = frame(
        row(energy_per_token_j=0.1), row(energy_per_token_j=0.3), row(batch_size=8, energy_per_token_j=0.5)
    )
    out = common.collapse_repeats(df, ["batch_size"], ["energy_per_token_j"]).to_dicts()
    assert [(r["batch_size"], r["energy_per_token_j"], r["runs"]) for r in out] == [
        (8, pytest.approx(0.5), 1),
        (64, pytest.approx(0.2), 2),
    ]


def test_the_config_schema_accepts_exactly_the_metric_names_compare_knows():
    """config/schema/config.schema.yaml lists the metric names so that a misspelt one fails at planning,
    naming its key; the names themselves live in analysis.compare.common."""
    from pathlib import Path

    import yaml

    defs = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "config/schema/config.schema.yaml").read_text()
    )["$defs"]
    latency = set(common.LATENCY_METRICS) | set(common.LATENCY_METRICS.values())
    energy = set(common.ENERGY_METRICS) | set(common.ENERGY_METRICS.values())
    assert set(defs["latency_metric"]["enum"]) == latency
    assert set(defs["energy_metric"]["enum"]) == energy
    assert set(defs["compare_metric"]["enum"]) == latency | energy
