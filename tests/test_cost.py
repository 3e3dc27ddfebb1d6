"""Cost and operational carbon columns (analysis.cost): answers by hand, linearity, bad settings."""

from __future__ import annotations

import math

import pytest
from costplan_helpers import CHAT, llm, summary
from hypothesis import given, settings
from hypothesis import strategies as st
from jouleflow.analysis.cost import COST_COLUMNS, CostError, add_cost_columns, load_cost, parse_cost

BASE = {"price_usd_per_kwh": 0.1, "carbon_g_per_kwh": 400, "pue": 1.2}


def test_columns_by_hand() -> None:
    # 0.1 J/token × 1e6 tokens = 1e5 J = 0.027778 kWh; × PUE 1.2 = 0.033333 kWh at the wall;
    # × 0.1 USD/kWh = 0.0033333 USD; × 400 g/kWh = 13.333 g. 100 J/response × 1000 responses: the same.
    df = add_cost_columns(summary(llm("x", itl=0.02, tps=1, power=1, ept=0.1, epr=100.0)), parse_cost(BASE))
    row = df.row(0, named=True)
    assert row["cost_region"] == "default"
    assert row["cost_usd_per_1m_tokens"] == pytest.approx(1 / 300)
    assert row["carbon_g_per_1m_tokens"] == pytest.approx(40 / 3)
    assert row["cost_usd_per_1k_responses"] == pytest.approx(1 / 300)
    assert row["carbon_g_per_1k_responses"] == pytest.approx(40 / 3)
    assert set(COST_COLUMNS) <= set(df.columns)


def test_region_per_gpu_inherits_unset_rates() -> None:
    spec = parse_cost(
        {**BASE, "regions": {"nordic": {"price_usd_per_kwh": 0.05, "carbon_g_per_kwh": 30}},
         "region_by_gpu": {"B200": "nordic"}}
    )  # fmt: skip
    df = add_cost_columns(
        summary(
            llm("h", itl=0.02, tps=1, power=1, ept=0.1),
            llm("b", gpu="B200", itl=0.02, tps=1, power=1, ept=0.1),
        ),
        spec,
    )
    by_gpu = {r["gpu"]: r for r in df.iter_rows(named=True)}
    assert by_gpu["H100"]["cost_region"] == "default" and by_gpu["B200"]["cost_region"] == "nordic"
    # nordic keeps the campaign's PUE 1.2: 0.033333 kWh × 0.05 USD = 0.0016667 USD; × 30 g = 1 g.
    assert by_gpu["B200"]["cost_usd_per_1m_tokens"] == pytest.approx(1 / 600)
    assert by_gpu["B200"]["carbon_g_per_1m_tokens"] == pytest.approx(1.0)


def test_missing_energy_gives_null_cost() -> None:
    df = add_cost_columns(summary(llm("f", itl=0.02, tps=1, power=1, ept=None, epr=None)), parse_cost(BASE))
    assert df.get_column("cost_usd_per_1m_tokens").to_list() == [None]


@settings(max_examples=50, deadline=None)
@given(price=st.floats(0.001, 10), k=st.floats(0.01, 100), carbon=st.floats(0, 1000), pue=st.floats(1, 3))
def test_cost_linear_in_price_and_carbon_in_intensity(
    price: float, k: float, carbon: float, pue: float
) -> None:
    df = summary(*CHAT)
    one = add_cost_columns(
        df, parse_cost({"price_usd_per_kwh": price, "carbon_g_per_kwh": carbon, "pue": pue})
    )
    scaled = add_cost_columns(
        df, parse_cost({"price_usd_per_kwh": price * k, "carbon_g_per_kwh": carbon * k, "pue": pue})
    )
    for col in COST_COLUMNS[1:]:
        for a, b in zip(one.get_column(col).to_list(), scaled.get_column(col).to_list(), strict=True):
            assert math.isclose(b, a * k, rel_tol=1e-9, abs_tol=1e-15)
    # Carbon does not depend on the price, nor cost on the carbon intensity.
    cheap = add_cost_columns(
        df, parse_cost({"price_usd_per_kwh": price * k, "carbon_g_per_kwh": carbon, "pue": pue})
    )
    assert (
        cheap.get_column("carbon_g_per_1m_tokens").to_list()
        == one.get_column("carbon_g_per_1m_tokens").to_list()
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**BASE, "price_usd_per_kwh": -0.1}, "analysis.cost.price_usd_per_kwh: must be >= 0"),
        ({**BASE, "carbon_g_per_kwh": -1}, "analysis.cost.carbon_g_per_kwh: must be >= 0"),
        ({**BASE, "pue": 0.9}, "analysis.cost.pue: must be >= 1"),
        ({"carbon_g_per_kwh": 1}, "analysis.cost.price_usd_per_kwh: required"),
        ({**BASE, "price": 1}, "analysis.cost: unknown key(s) price"),
        ({**BASE, "price_usd_per_kwh": "cheap"}, "analysis.cost.price_usd_per_kwh: expected a number"),
        ({**BASE, "regions": {"eu": {"pue": 0.5}}}, "analysis.cost.regions.eu.pue: must be >= 1"),
        (
            {**BASE, "region_by_gpu": {"H100": "mars"}},
            "analysis.cost.region_by_gpu.H100: unknown region 'mars'",
        ),
        ({**BASE, "regions": {"default": {}}}, "analysis.cost.regions.default: reserved"),
    ],
)
def test_bad_settings_name_the_key(doc: dict, message: str) -> None:
    with pytest.raises(CostError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cost(doc)


def test_load_inline_file_and_config(tmp_path) -> None:
    assert load_cost("{price_usd_per_kwh: 0.1, carbon_g_per_kwh: 400}").default.pue == 1.0
    (tmp_path / "c.yaml").write_text(
        "analysis:\n  cost: {price_usd_per_kwh: 0.2, carbon_g_per_kwh: 1, pue: 1.5}\n"
    )
    assert load_cost(tmp_path / "c.yaml").default.price_usd_per_kwh == 0.2
    with pytest.raises(CostError, match="cost file is missing"):
        load_cost(tmp_path / "nope.yaml")


def test_schema_rejects_negative_price_and_low_pue() -> None:
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    schema = str(repo / "config" / "schema" / "config.schema.yaml")
    validate({**config, "analysis": {"cost": BASE}}, schema)
    for key, value in (("price_usd_per_kwh", -1), ("pue", 0.9)):
        bad = {**config, "analysis": {"cost": {**BASE, key: value}}}
        with pytest.raises(Exception, match=rf"On instance\['analysis'\]\['cost'\]\['{key}'\]"):
            validate(bad, schema)
