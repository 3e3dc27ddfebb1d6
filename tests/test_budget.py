"""Power-budget planning on hand-made summaries (answers by hand), its properties and bad input."""

from __future__ import annotations

import json

import pytest
from costplan_helpers import CHAT, IMAGE, llm, summary, write
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis.budget import BudgetError, parse_power, plan_budget
from jouleflow.analysis.cost import parse_cost
from jouleflow.cli import main


def by_model(plan) -> dict:
    return {r["model"]: r for r in plan.rows.iter_rows(named=True)}


def test_plan_by_hand() -> None:
    # 1 MW facility, PUE 1.25 → 800 kW for GPUs. Model A at 50 ms: a1 (4 tok/s/W) and a3 (5 tok/s/W)
    # meet it, a2 (10) does not: a3, 1000 W per 2-GPU replica → 800 replicas, 1600 GPUs,
    # 800 × 5000 = 4e6 tokens/s, 800 × 128 = 102,400 streams, 800 kW GPU = 1 MW facility power.
    plan = plan_budget(summary(*CHAT), 1e6, 0.05, pue=1.25)
    a = by_model(plan)["org/A"]
    assert (a["status"], a["run_dir"], a["replicas"], a["total_gpus"]) == ("ok", "a3", 800, 1600)
    assert a["throughput_per_w"] == pytest.approx(5.0)
    assert a["total_throughput"] == pytest.approx(4e6)
    assert a["concurrent_streams"] == 102_400
    assert a["facility_power_used_w"] == pytest.approx(1e6) and a["gpu_power_used_w"] == pytest.approx(8e5)
    assert a["throughput_unit"] == "tokens/s"
    b = by_model(plan)["org/B"]
    assert b["status"] == "unreachable" and "80 ms" in b["reason"] and "50 ms" in b["reason"]
    assert plan.empty_reason is None


def test_floor_never_rounds_up() -> None:
    # 2,999 W for 1,000 W replicas: 2 replicas (floor), not 3.
    a = by_model(plan_budget(summary(*CHAT), 2999.0, 0.05))["org/A"]
    assert a["replicas"] == 2 and a["gpu_power_used_w"] == 2000


def test_small_budget_falls_back_to_a_replica_that_fits() -> None:
    # 700 W: a3 (1,000 W) does not fit once; a1 (500 W) does: 1 replica, 2,000 tokens/s.
    a = by_model(plan_budget(summary(*CHAT), 700.0, 0.05))["org/A"]
    assert (a["status"], a["run_dir"], a["replicas"], a["total_throughput"]) == ("ok", "a1", 1, 2000)
    # 400 W: nothing meeting 50 ms fits; the reason says so.
    tiny = plan_budget(summary(*CHAT), 400.0, 0.05)
    a = by_model(tiny)["org/A"]
    assert a["status"] == "budget-too-small" and "500 W" in a["reason"] and "400 W" in a["reason"]
    assert tiny.empty_reason and "no model has a plan" in tiny.empty_reason


def test_diffusion_counts_images_per_second() -> None:
    # 10 s target: d1 (0.5 images/s at 500 W = 0.001/W) beats d4 (0.5/800). 10 kW → 20 replicas,
    # 10 images/s, 20 images in flight.
    d = by_model(plan_budget(summary(*IMAGE), 10_000.0, 10.0))["org/D"]
    assert (d["run_dir"], d["replicas"], d["throughput_unit"]) == ("d1", 20, "images/s")
    assert d["total_throughput"] == pytest.approx(10.0) and d["concurrent_streams"] == 20


def test_unreachable_everywhere_is_an_explicit_empty_plan() -> None:
    plan = plan_budget(summary(*CHAT), 1e6, 0.01)
    assert not plan.ok_rows().height
    assert (
        plan.empty_reason
        == "no configuration meets the latency target 10 ms (the fastest of any model achieves 20 ms)"
    )


def test_gpu_filter_and_cost_per_hour() -> None:
    rows = [*CHAT, llm("bb", model="org/A", gpu="B200", batch=64, itl=0.03, tps=9000, power=900)]
    cost = parse_cost({"price_usd_per_kwh": 0.1, "carbon_g_per_kwh": 400, "pue": 1.25})
    a = by_model(plan_budget(summary(*rows), 1e6, 0.05, pue=1.25, gpu="H100", cost=cost))["org/A"]
    assert a["gpu"] == "H100" and a["run_dir"] == "a3"
    # 1 MW at the wall for one hour: 1,000 kWh → 100 USD, 400 kg CO2e.
    assert a["cost_usd_per_hour"] == pytest.approx(100.0) and a["carbon_kg_per_hour"] == pytest.approx(400.0)
    # The plan's PUE (1 here) sets the facility power that is paid for, not the cost spec's 1.25:
    # 1,000 replicas × 1,000 W = 1 MW → 100 USD an hour.
    a = by_model(plan_budget(summary(*rows), 1e6, 0.05, pue=1.0, gpu="H100", cost=cost))["org/A"]
    assert a["replicas"] == 1000 and a["cost_usd_per_hour"] == pytest.approx(100.0)
    b200 = by_model(plan_budget(summary(*rows), 1e6, 0.05, gpu="B200"))["org/A"]
    assert b200["run_dir"] == "bb" and b200["replicas"] == 1111


@settings(max_examples=60, deadline=None)
@given(
    powers=st.lists(st.floats(50, 20_000), min_size=1, max_size=6),
    budget=st.floats(1, 1e7),
    pue=st.floats(1, 2.5),
)
def test_plan_never_exceeds_the_budget_and_uses_it_fully(
    powers: list[float], budget: float, pue: float
) -> None:
    rows = [
        llm(f"r{i}", batch=8 * (i + 1), itl=0.01, tps=1000 + 37 * i, power=p) for i, p in enumerate(powers)
    ]
    plan = plan_budget(summary(*rows), budget, 0.05, pue=pue)
    for r in plan.rows.iter_rows(named=True):
        if r["status"] == "ok":
            assert r["replicas"] >= 1
            assert r["replicas"] * r["replica_power_w"] * pue <= budget
            assert r["facility_power_used_w"] <= budget * (1 + 1e-12)
            assert (r["replicas"] + 1) * r["replica_power_w"] * pue > budget  # floor: one more would not fit
        else:
            assert r["status"] == "budget-too-small" and min(powers) * pue > budget


@pytest.mark.parametrize(
    ("text", "watts"), [("1MW", 1e6), ("500 kW", 5e5), ("700W", 700.0), ("1.5GW", 1.5e9), ("2.5e3 W", 2500.0)]
)
def test_parse_power(text: str, watts: float) -> None:
    assert parse_power(text) == watts


@pytest.mark.parametrize("text", ["1", "-1MW", "0MW", "1 MJ", "MW", "1mW", "1mw", "500KW"])
def test_bad_power_is_an_error(text: str) -> None:
    with pytest.raises(BudgetError, match="--power"):
        parse_power(text)


def test_bad_pue_and_target() -> None:
    with pytest.raises(BudgetError, match="pue must be >= 1"):
        plan_budget(summary(*CHAT), 1e6, 0.05, pue=0.8)
    with pytest.raises(BudgetError, match="power budget must be positive"):
        plan_budget(summary(*CHAT), -1.0, 0.05)


def test_cli_json_csv_and_exit_status(tmp_path, capsys) -> None:
    s = write(tmp_path / "s.parquet", *CHAT)
    rc = main(["plan", "budget", "--summary", str(s), "--power", "1MW", "--pue", "1.25", "--deadline", "50ms",
               "--json", "-o", str(tmp_path / "p.csv"), "--markdown", str(tmp_path / "p.md")])  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpu_power_budget_w"] == 8e5 and out["empty_reason"] is None
    assert {p["model"]: p["replicas"] for p in out["plans"]} == {"org/A": 800, "org/B": None}
    assert "a3" in (tmp_path / "p.csv").read_text()
    assert "| chat | org/A | bf16 | ok | H100 | 2 | 128 |" in (tmp_path / "p.md").read_text()
    rc = main(["plan", "budget", "--summary", str(s), "--power", "1MW", "--deadline", "5ms"])
    err = capsys.readouterr().err
    assert rc == 3 and "no configuration meets the latency target 5 ms" in err
    assert (
        main(["plan", "budget", "--summary", str(s), "--power", "1MW", "--deadline", "5ms", "--allow-empty"])
        == 0
    )
    capsys.readouterr()
    assert main(["plan", "budget", "--summary", str(s), "--power=-1MW", "--deadline", "5ms"]) == 2
    assert "--power" in capsys.readouterr().err
    assert (
        main(["plan", "budget", "--summary", str(s), "--power", "1MW", "--pue", "0.5", "--deadline", "5ms"])
        == 2
    )
    assert "--pue must be >= 1" in capsys.readouterr().err


def test_cli_figure_png_and_svg_also_for_an_empty_plan(tmp_path, capsys) -> None:
    s = write(tmp_path / "s.parquet", *CHAT)
    for deadline, name in (("50ms", "plan"), ("5ms", "empty")):
        args = ["plan", "budget", "--summary", str(s), "--power", "1MW", "--deadline", deadline]
        assert main([*args, "--figure", str(tmp_path / f"{name}.png"), "--allow-empty"]) == 0
        for ext in ("png", "svg"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000
    assert "no plan" in (tmp_path / "empty.svg").read_text()
