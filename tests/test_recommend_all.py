"""`recommend` on one GPU type / count and for every model at once (answers by hand)."""

from __future__ import annotations

import csv
import json

import pytest
from costplan_helpers import CHAT, llm, summary, write
from jouleflow.analysis.cost import parse_cost
from jouleflow.analysis.frontier import FrontierError
from jouleflow.analysis.recommend_all import recommend_all, restrict
from jouleflow.analysis.recommendations import TargetSpec, TaskTargets
from jouleflow.cli import main

# Model A on H100 (ITL, J/response): a1 (20 ms, 250), a2 (60 ms, 100), a3 2 GPUs (40 ms, 200);
# on B200: ab (30 ms, 90). Model B: b1 (80 ms, 500).
ROWS = [*CHAT, llm("ab", gpu="B200", batch=64, itl=0.03, tps=3000, power=700, ept=0.09, epr=90)]
TARGETS = TargetSpec({"chat": TaskTargets((0.05, 0.1))})


def table(**kw):
    return {
        (r["model"], r["latency_target_s"]): r
        for r in recommend_all(summary(*ROWS), TARGETS, **kw).iter_rows(named=True)
    }


def test_every_model_every_target() -> None:
    t = table()
    assert len(t) == 4  # 2 models × 2 targets
    # 50 ms: among a1, a3, ab the least energy is ab (90 J) on B200; baseline a1 (fastest, 20 ms).
    assert (t["org/A", 0.05]["run_dir"], t["org/A", 0.05]["baseline_run_dir"]) == ("ab", "a1")
    assert t["org/A", 0.05]["savings_fraction"] == pytest.approx(1 - 90 / 250)
    assert t["org/A", 0.1]["run_dir"] == "ab"  # a2 (100 J) meets 100 ms but ab is still cheaper
    assert t["org/B", 0.05]["status"] == "unreachable" and t["org/B", 0.05]["best_latency_s"] == 0.08
    assert t["org/B", 0.1]["run_dir"] == "b1"


def test_restricted_to_a_gpu_and_count() -> None:
    t = table(gpu="H100")
    assert t["org/A", 0.05]["run_dir"] == "a3" and t["org/A", 0.1]["run_dir"] == "a2"
    t = table(gpu="H100", num_gpus=1)
    # One H100: a3 (2 GPUs) is out; at 50 ms only a1 is left (it is also the fastest: no savings).
    assert t["org/A", 0.05]["run_dir"] == "a1" and t["org/A", 0.05]["savings_fraction"] == 0
    assert t["org/B", 0.1]["run_dir"] == "b1"


def test_cost_columns_come_along() -> None:
    cost = parse_cost({"price_usd_per_kwh": 0.1, "carbon_g_per_kwh": 400, "pue": 1.2})
    row = table(cost=cost)["org/A", 0.05]
    # ab: 90 J/response → 90,000 J per 1,000 = 0.025 kWh × 1.2 × 0.1 USD = 0.003 USD; × 400 g = 12 g.
    assert row["cost_usd_per_1k_responses"] == pytest.approx(0.003)
    assert row["carbon_g_per_1k_responses"] == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"gpu": "A100"}, "no rows on GPU 'A100'; GPU types in the summary: B200, H100"),
        ({"gpu": "B200", "num_gpus": 2}, "no rows with 2 GPU\\(s\\) on B200; GPU counts there: 1"),
        ({"tasks": ["code"]}, "unknown task\\(s\\) code; the summary has: chat"),
    ],
)
def test_filters_that_leave_nothing_say_what_exists(kw: dict, message: str) -> None:
    with pytest.raises(FrontierError, match=message):
        restrict(summary(*ROWS), **kw)


def test_cli_all_and_single(tmp_path, capsys) -> None:
    s = write(tmp_path / "s.parquet", *ROWS)
    rc = main(["recommend", "--summary", str(s), "--all", "--target", "chat=50ms,100ms", "--gpu", "H100",
               "-o", str(tmp_path / "r.csv"), "--markdown", str(tmp_path / "r.md")])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert out.startswith("# Best configuration per model under a deadline on H100")
    assert "3 ok, 1 unreachable" in out
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["model"], r["latency_target_s"], r["run_dir"]) for r in rows] == [
        ("org/A", "0.05", "a3"), ("org/A", "0.1", "a2"), ("org/B", "0.05", ""), ("org/B", "0.1", "b1"),
    ]  # fmt: skip
    assert out == (tmp_path / "r.md").read_text() + "\n"  # the file holds what was printed
    rc = main(["recommend", "--summary", str(s), "--all", "--latency-target", "50ms", "--num-gpus", "1",
               "--json", "--cost", "{price_usd_per_kwh: 0.1, carbon_g_per_kwh: 400, pue: 1.2}"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["filters"]["num_gpus"] == 1
    assert {r["model"]: r["run_dir"] for r in doc["recommendations"]} == {"org/A": "ab", "org/B": None}
    assert doc["recommendations"][0]["cost_usd_per_1k_responses"] == pytest.approx(0.003)
    # One model on one GPU type, as before plus --gpu.
    rc = main(["recommend", "--summary", str(s), "--task", "chat", "--model", "org/A", "--gpu", "H100",
               "--latency-target", "50ms", "--json"])  # fmt: skip
    assert rc == 0 and json.loads(capsys.readouterr().out)["config"]["run_dir"] == "a3"


def test_cli_bad_combinations(tmp_path, capsys) -> None:
    s = write(tmp_path / "s.parquet", *ROWS)
    assert main(["recommend", "--summary", str(s), "--task", "chat"]) == 2
    assert "--model, --latency-target required (or --all for every model)" in capsys.readouterr().err
    assert main(["recommend", "--summary", str(s), "--all", "--model", "org/A"]) == 2
    assert main(["recommend", "--summary", str(s), "--all", "--gpu", "A100"]) == 2
    assert "GPU types in the summary: B200, H100" in capsys.readouterr().err
    assert (
        main(
            [
                "recommend",
                "--summary",
                str(s),
                "--all",
                "--cost",
                "{price_usd_per_kwh: -1, carbon_g_per_kwh: 1}",
            ]
        )
        == 2
    )
    assert "--cost.price_usd_per_kwh: must be >= 0" in capsys.readouterr().err


def test_recommendations_table_carries_cost_only_when_the_summary_has_it() -> None:
    from jouleflow.analysis.cost import COST_COLUMNS, add_cost_columns
    from jouleflow.analysis.recommendations import recommendation_table

    plain = recommendation_table(summary(*ROWS), TARGETS)
    assert not set(COST_COLUMNS) & set(plain.columns)
    cost = parse_cost({"price_usd_per_kwh": 0.1, "carbon_g_per_kwh": 400, "pue": 1.2})
    costed = recommendation_table(add_cost_columns(summary(*ROWS), cost), TARGETS)
    assert costed.columns == plain.columns + list(COST_COLUMNS)
    unreachable = costed.filter(costed["status"] == "unreachable").row(0, named=True)
    assert unreachable["cost_usd_per_1k_responses"] is None  # no configuration, no cost


def test_cli_all_figure(tmp_path, monkeypatch) -> None:
    from jouleflow.plots import recommend_figure as module

    figures = []
    real_save = module.save
    monkeypatch.setattr(module, "save", lambda fig, out: figures.append(fig) or real_save(fig, out))
    code = llm("c1", model="org/C", task="code", batch=32, itl=0.03, tps=3000, power=500, epr=60)
    s = write(tmp_path / "s.parquet", *ROWS, code)
    args = ["recommend", "--summary", str(s), "--all", "--target", "chat=50ms,100ms", "--target", "code=50ms",
            "--gpu", "H100", "--figure", str(tmp_path / "r.png")]  # fmt: skip
    assert main(args) == 0
    first = {e: (tmp_path / f"r.{e}").read_bytes() for e in ("png", "svg")}
    assert main(args) == 0
    assert first == {e: (tmp_path / f"r.{e}").read_bytes() for e in ("png", "svg")}  # byte-identical rerun
    fig = figures[-1]
    assert [ax.get_title() for ax in fig.axes] == ["chat", "code"]  # one panel per task
    chat, code_ax = fig.axes
    # One bar per chosen (model, deadline), from zero to its energy: chat a3 200 J, a2 100 J, b1 500 J.
    assert sorted(p.get_width() for p in chat.patches) == [100, 200, 500]
    assert [p.get_width() for p in code_ax.patches] == [60]
    assert all(p.get_x() == 0 for ax in fig.axes for p in ax.patches)
    texts = [t.get_text() for t in chat.texts]
    assert " H100 ×2, batch 128" in texts and " H100 ×1, batch 256" in texts
    assert " unreachable (fastest 80 ms)" in texts  # org/B at 50 ms: labelled, no bar
    assert [t.get_text() for t in chat.get_yticklabels()] == ["org/B (bf16)", "org/A (bf16)"]  # A on top
    assert chat.get_xlabel() == "Energy per response (J)"
    assert [t.get_text() for t in chat.get_legend().get_texts()] == ["≤ 50 ms", "≤ 100 ms"]
