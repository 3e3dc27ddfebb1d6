"""Pareto frontier and recommendations on small hand-made summaries (answers worked out by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from jouleflow import traces
from jouleflow.analysis.frontier import (
    Exclusions,
    FrontierError,
    TargetUnreachableError,
    default_latency_metric,
    pareto_front,
    published_rows,
    recommend,
    resolve_latency_metric,
    usable_rows,
)
from jouleflow.analysis.recommendations import (
    frontier_table,
    load_targets,
    recommendation_table,
    targets_from_cli,
)
from jouleflow.importers.mlenergy import import_mlenergy

REPO = Path(__file__).resolve().parents[1]


def summary(rows: list[dict]) -> pl.DataFrame:
    """A traces.SUMMARY table; each row gives name (→ run_dir), lat (→ batch_latency_s) and e (energy)."""
    full = []
    for r in rows:
        full.append(
            {
                "source": "test",
                "task": r.get("task", "text-to-image"),
                "model": r.get("model", "m"),
                "modality": r.get("modality", "diffusion"),
                "precision": r.get("precision", "bf16"),
                "gpu": r.get("gpu", "H100"),
                "num_gpus": r.get("num_gpus", 1),
                "batch_size": r.get("batch", 1),
                "parallelism": "uly1-ring1",
                "load_format": "real",
                "status": r.get("status", "ok"),
                "valid": r.get("valid", True),
                "run_dir": r["name"],
                "batch_latency_s": r.get("lat"),
                "median_itl_s": r.get("itl"),
                "median_tpot_s": r.get("tpot"),
                "median_e2e_s": r.get("e2e"),
                "energy_per_response_j": r.get("e"),
            }
        )
    return pl.from_arrow(traces.table_from_rows(full, traces.SUMMARY))


# Points by hand: G(0.5, 20) A(1, 10) B(2, 8) C(2, 9) D(3, 8) E(4, 5) F(4, 5) H(5, 6).
# C is dominated by B (same latency, more energy), D by B (same energy, slower), H by E.
# E and F are identical: neither dominates the other, both stay.
POINTS = [
    ("G", 0.5, 20),
    ("A", 1, 10),
    ("B", 2, 8),
    ("C", 2, 9),
    ("D", 3, 8),
    ("E", 4, 5),
    ("F", 4, 5),
    ("H", 5, 6),
]


@pytest.fixture
def points() -> pl.DataFrame:
    return summary([{"name": n, "lat": lat, "e": e, "batch": i + 1} for i, (n, lat, e) in enumerate(POINTS)])


def test_pareto_front_by_hand(points: pl.DataFrame) -> None:
    front = pareto_front(points, "batch_latency_s", "energy_per_response_j")
    assert front.get_column("run_dir").to_list() == ["G", "A", "B", "E", "F"]


def test_recommend_by_hand(points: pl.DataFrame) -> None:
    rec = recommend(points, "text-to-image", "m", 2.5)
    assert rec.latency_metric == "batch_latency_s"
    assert rec.config.run_dir == "B" and (rec.config.latency, rec.config.energy) == (2.0, 8.0)
    assert rec.baseline.run_dir == "G"
    assert rec.savings_fraction == pytest.approx(1 - 8 / 20)
    # The target is inclusive.
    assert recommend(points, "text-to-image", "m", 2.0).config.run_dir == "B"
    # Below every latency but one: only G is feasible → recommendation = baseline, no savings.
    only_g = recommend(points, "text-to-image", "m", 0.9)
    assert only_g.config.run_dir == "G" and only_g.savings_fraction == 0.0
    # Everything feasible: E and F tie on (4, 5); the deterministic tie-break takes E (batch 6 < 7).
    assert recommend(points, "text-to-image", "m", 100.0).config.run_dir == "E"


def test_equal_energy_prefers_lower_latency() -> None:
    df = summary(
        [
            {"name": "slow", "lat": 3, "e": 5},
            {"name": "fast", "lat": 1, "e": 5},
            {"name": "x", "lat": 0.5, "e": 9},
        ]
    )
    assert recommend(df, "text-to-image", "m", 10.0).config.run_dir == "fast"


def test_unreachable_target_names_target_and_best(points: pl.DataFrame) -> None:
    with pytest.raises(TargetUnreachableError) as info:
        recommend(points, "text-to-image", "m", 0.25)
    assert info.value.best_latency_s == 0.5
    assert "250 ms" in str(info.value) and "500 ms" in str(info.value)


def test_excluded_rows_are_counted_and_never_chosen() -> None:
    df = summary(
        [
            {"name": "good", "lat": 2, "e": 10},
            {"name": "fast", "lat": 1, "e": 12},
            {"name": "invalid", "lat": 1, "e": 1, "valid": False},
            {"name": "unknown-validity", "lat": 1, "e": 1, "valid": None},
            {"name": "failed", "lat": 1, "e": 1, "status": "failed"},
            {"name": "infeasible", "status": "infeasible"},
            {"name": "no-latency", "e": 1},
            {"name": "no-energy", "lat": 1},
            {"name": "nan-energy", "lat": 1, "e": math.nan},
            {"name": "zero-latency", "lat": 0.0, "e": 1},
        ]
    )
    usable, excluded = usable_rows(df, "batch_latency_s")
    assert sorted(usable.get_column("run_dir")) == ["fast", "good"]
    assert excluded == Exclusions(not_ok=2, invalid=2, no_latency=2, no_energy=2)
    assert excluded.total == 8
    rec = recommend(df, "text-to-image", "m", 5.0)
    assert rec.config.run_dir == "good" and rec.baseline.run_dir == "fast"
    assert rec.excluded.total == 8 and rec.candidates == 2
    assert "8 row(s) excluded" in rec.describe()


def test_default_latency_metric_per_task() -> None:
    llm = summary([{"name": "a", "task": "lm-arena-chat", "modality": "llm", "itl": 0.01, "e": 1}])
    assert default_latency_metric("lm-arena-chat", llm) == "median_itl_s"
    v2_like = summary([{"name": "a", "task": "chat", "modality": "llm", "tpot": 0.03, "e": 1}])
    assert default_latency_metric("chat", v2_like) == "median_tpot_s"
    code = summary(
        [{"name": "a", "task": "sourcegraph-fim", "modality": "llm", "e2e": 2.0, "itl": 0.01, "e": 1}]
    )
    assert default_latency_metric("sourcegraph-fim", code) == "median_e2e_s"
    code_itl_only = summary(
        [{"name": "a", "task": "sourcegraph-fim", "modality": "llm", "itl": 0.01, "e": 1}]
    )
    assert default_latency_metric("sourcegraph-fim", code_itl_only) == "median_itl_s"
    assert default_latency_metric("text-to-video") == "batch_latency_s"
    assert (
        default_latency_metric("my-new-llm-task", summary([{"name": "a", "task": "x", "modality": "llm"}]))
        == "median_itl_s"
    )
    with pytest.raises(FrontierError, match="no default latency metric"):
        default_latency_metric("mystery")


def test_latency_metric_names() -> None:
    assert resolve_latency_metric("median_itl") == "median_itl_s"
    assert resolve_latency_metric("batch_latency_s") == "batch_latency_s"
    with pytest.raises(FrontierError, match="unknown latency metric 'speed'.*median_itl"):
        resolve_latency_metric("speed")


def test_unknown_task_and_model_list_what_exists(points: pl.DataFrame) -> None:
    with pytest.raises(FrontierError, match="unknown task 'chat'.*text-to-image"):
        recommend(points, "chat", "m", 1.0)
    with pytest.raises(FrontierError, match="unknown model 'other'.*: m$"):
        recommend(points, "text-to-image", "other", 1.0)


def test_missing_column_is_named(points: pl.DataFrame) -> None:
    with pytest.raises(FrontierError, match="missing column.*valid"):
        recommend(points.drop("valid"), "text-to-image", "m", 1.0)


def test_frontier_table_groups_by_precision() -> None:
    df = summary(
        [
            {"name": "b1", "lat": 1, "e": 10},
            {"name": "b2", "lat": 2, "e": 12},  # dominated within bf16
            {"name": "f1", "lat": 2, "e": 5, "precision": "fp8"},  # would dominate b2 if precisions mixed
            {"name": "f2", "lat": 3, "e": 4, "precision": "fp8"},
            {"name": "x", "lat": 1, "e": 1, "valid": False},
        ]
    )
    table = frontier_table(df)
    got = table.frontier.select("precision", "run_dir", "frontier_rank", "latency_metric", "latency_s").rows()
    assert got == [
        ("bf16", "b1", 1, "batch_latency_s", 1.0),
        ("fp8", "f1", 1, "batch_latency_s", 2.0),
        ("fp8", "f2", 2, "batch_latency_s", 3.0),
    ]
    assert table.excluded == Exclusions(invalid=1)


def test_recommendation_table_statuses() -> None:
    df = summary(
        [
            {"name": "a", "lat": 1, "e": 10},
            {"name": "b", "lat": 4, "e": 6},
            {"name": "z", "model": "broken", "lat": 1, "e": 1, "valid": False},
        ]
    )
    recs = recommendation_table(df, targets_from_cli(["text-to-image=500ms,2s,5s"]))
    assert recs.select("model", "latency_target_s", "status", "run_dir").rows() == [
        ("broken", 0.5, "no-usable-rows", None),
        ("broken", 2.0, "no-usable-rows", None),
        ("broken", 5.0, "no-usable-rows", None),
        ("m", 0.5, "unreachable", None),
        ("m", 2.0, "ok", "a"),
        ("m", 5.0, "ok", "b"),
    ]
    last = recs.row(5, named=True)
    assert last["baseline_run_dir"] == "a" and last["savings_fraction"] == pytest.approx(0.4)
    assert recs.row(3, named=True)["best_latency_s"] == 1.0


def test_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "text-to-image: [1s, 5s]\ngpqa:\n  metric: p90_itl\n  targets: 50ms,100ms\ndefault: [1min]\n"
    )
    spec = load_targets(path)
    assert spec.for_task("text-to-image", "batch_latency_s").targets_s == (1.0, 5.0)
    gpqa = spec.for_task("gpqa", "median_itl_s")
    assert gpqa.metric == "p90_itl_s" and gpqa.targets_s == pytest.approx((0.05, 0.1))
    assert spec.for_task("other", "median_itl_s").targets_s == (60.0,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("text-to-image: [1, 5s]\n", "text-to-image: 1 has no unit"),
        ("text-to-image: [fast]\n", "'fast'"),
        ("text-to-image: {targets: [1s], deadline: 3}\n", "unknown key.*deadline"),
        ("- 1s\n", "mapping of task"),
    ],
)
def test_bad_targets_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    with pytest.raises(FrontierError, match=message):
        load_targets(path)


def test_unknown_precision_rows_still_grouped() -> None:
    df = summary(
        [
            {"name": "a", "lat": 1, "e": 10, "precision": None},
            {"name": "b", "lat": 2, "e": 12, "precision": None},
        ]
    )
    assert frontier_table(df).frontier.get_column("run_dir").to_list() == ["a"]
    recs = recommendation_table(df, targets_from_cli(["default=5s"]))
    assert recs.select("precision", "status", "run_dir").rows() == [(None, "ok", "a")]


def test_published_rows_are_the_drawable_ones_of_the_task_model_and_precision() -> None:
    """The rows the frontier figures and the campaign page overlay, from the bundled v3 slice as imported."""
    published = pl.from_arrow(import_mlenergy(REPO / "resources" / "mlenergy-v3"))
    llama = "meta-llama/Llama-3.1-8B-Instruct"
    mine = (pl.col("task") == "lm-arena-chat") & (pl.col("model") == llama)
    n = published.filter(mine).height
    assert n == 20  # B200 and H100, one GPU, BF16 (the slice's published grid)
    # one row made invalid and one without a latency: both are left out
    index = pl.int_range(pl.len())
    first, second = (published.with_row_index().filter(mine)["index"][i] for i in (0, 1))
    damaged = published.with_columns(
        valid=pl.when(index == first).then(False).otherwise(pl.col("valid")),
        median_itl_s=pl.when(index == second).then(None).otherwise(pl.col("median_itl_s")),
    )
    rows = published_rows(damaged, "lm-arena-chat", [llama], "median_itl_s", precision="BF16")
    assert rows.height == n - 2
    assert set(rows["model"]) == {llama} and set(rows["task"]) == {"lm-arena-chat"}
    assert published_rows(damaged, "lm-arena-chat", [llama], "median_itl_s", precision="fp8").is_empty()
    assert published_rows(published, "lm-arena-chat", [llama], "no_such_metric").is_empty()
    assert published_rows(None, "lm-arena-chat", [llama], "median_itl_s").is_empty()
    both = published_rows(published, "lm-arena-chat", [llama, "Qwen/Qwen3-32B"], "median_itl_s")
    assert (
        both.height
        == n
        + published.filter((pl.col("task") == "lm-arena-chat") & (pl.col("model") == "Qwen/Qwen3-32B")).height
    )
