"""Electricity cost and operational carbon of each configuration, from its measured energy.

Energy at the wall is the GPUs' energy × PUE (the facility's power usage effectiveness); cost is
that × the electricity price, carbon that × the grid's carbon intensity (operational emissions only,
no embodied carbon). One campaign-wide setting, optionally overridden per named region with a
region chosen per GPU type (config `analysis.cost`, docs/config.md):

    analysis:
      cost:
        price_usd_per_kwh: 0.10
        carbon_g_per_kwh: 400
        pue: 1.2
        regions:
          nordic: {price_usd_per_kwh: 0.06, carbon_g_per_kwh: 30}   # unset keys: the campaign's
        region_by_gpu: {B200: nordic}                               # other GPUs: the campaign's

Columns added to a summary carry their unit in the name (COST_COLUMNS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

J_PER_KWH = 3.6e6
RATE_KEYS = ("price_usd_per_kwh", "carbon_g_per_kwh", "pue")
DEFAULT_REGION = "default"
# (column, energy column it scales, responses or tokens per unit, rate key)
_DERIVED = (
    ("cost_usd_per_1m_tokens", "energy_per_token_j", 1e6, "price_usd_per_kwh"),
    ("cost_usd_per_1k_responses", "energy_per_response_j", 1e3, "price_usd_per_kwh"),
    ("carbon_g_per_1m_tokens", "energy_per_token_j", 1e6, "carbon_g_per_kwh"),
    ("carbon_g_per_1k_responses", "energy_per_response_j", 1e3, "carbon_g_per_kwh"),
)
COST_COLUMNS: tuple[str, ...] = ("cost_region", *(c for c, *_ in _DERIVED))


class CostError(ValueError):
    """A cost setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Rates:
    price_usd_per_kwh: float
    carbon_g_per_kwh: float
    pue: float = 1.0

    def usd_per_joule(self) -> float:
        return self.price_usd_per_kwh * self.pue / J_PER_KWH

    def g_per_joule(self) -> float:
        return self.carbon_g_per_kwh * self.pue / J_PER_KWH


@dataclass(frozen=True)
class CostSpec:
    default: Rates
    regions: Mapping[str, Rates] = field(default_factory=dict)
    region_by_gpu: Mapping[str, str] = field(default_factory=dict)

    def region_of(self, gpu: str | None) -> str:
        return self.region_by_gpu.get(gpu or "", DEFAULT_REGION)

    def rates(self, region: str) -> Rates:
        return self.default if region == DEFAULT_REGION else self.regions[region]


def _number(value: Any, key: str, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CostError(f"{key}: expected a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        what = "a PUE below 1 would mean the facility uses less than its GPUs" if key.endswith("pue") else ""
        raise CostError(f"{key}: must be {bound}, got {value:g}" + (f" ({what})" if what else ""))
    return float(value)


def _rates(doc: Any, where: str, inherit: Rates | None) -> Rates:
    if not isinstance(doc, Mapping):
        raise CostError(f"{where}: expected a mapping of {', '.join(RATE_KEYS)}")
    unknown = set(doc) - set(RATE_KEYS)
    if unknown:
        raise CostError(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(RATE_KEYS)})"
        )
    values: dict[str, float] = {}
    for key in RATE_KEYS:
        if key in doc:
            values[key] = _number(doc[key], f"{where}.{key}", minimum=1.0 if key == "pue" else 0.0)
        elif inherit is not None:
            values[key] = getattr(inherit, key)
        elif key != "pue":
            raise CostError(f"{where}.{key}: required")
    return Rates(**values)


def parse_cost(doc: Any, where: str = "analysis.cost") -> CostSpec:
    """A CostSpec from the config mapping; CostError naming the offending key."""
    if not isinstance(doc, Mapping):
        raise CostError(f"{where}: expected a mapping")
    unknown = set(doc) - {*RATE_KEYS, "regions", "region_by_gpu"}
    if unknown:
        raise CostError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    default = _rates({k: doc[k] for k in RATE_KEYS if k in doc}, where, None)
    regions_doc = doc.get("regions") or {}
    if not isinstance(regions_doc, Mapping):
        raise CostError(f"{where}.regions: expected a mapping of region name → rates")
    if DEFAULT_REGION in regions_doc:
        raise CostError(f"{where}.regions.{DEFAULT_REGION}: reserved for the campaign-wide rates")
    regions = {str(n): _rates(r, f"{where}.regions.{n}", default) for n, r in regions_doc.items()}
    by_gpu = doc.get("region_by_gpu") or {}
    if not isinstance(by_gpu, Mapping):
        raise CostError(f"{where}.region_by_gpu: expected a mapping of GPU type → region name")
    for gpu, region in by_gpu.items():
        if region not in regions:
            known = ", ".join(sorted(regions)) or "(none)"
            raise CostError(f"{where}.region_by_gpu.{gpu}: unknown region {region!r} (regions: {known})")
    return CostSpec(default, regions, {str(k): str(v) for k, v in by_gpu.items()})


def load_cost(text_or_path: str | Path) -> CostSpec:
    """`--cost FILE` (YAML/JSON), or an inline mapping such as '{price_usd_per_kwh: 0.1, ...}'."""
    text = str(text_or_path)
    if text.lstrip().startswith("{"):
        where, source = "--cost", text
    else:
        path = Path(text)
        if not path.is_file():
            raise CostError(f"{path}: cost file is missing")
        where, source = str(path), path.read_text()
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise CostError(f"{where}: not valid YAML/JSON ({exc})") from exc
    # A whole config file is accepted too: its analysis.cost section.
    if isinstance(doc, Mapping) and "analysis" in doc and isinstance(doc["analysis"], Mapping):
        if "cost" not in doc["analysis"]:
            raise CostError(f"{where}: has no analysis.cost section")
        return parse_cost(doc["analysis"]["cost"], f"{where}: analysis.cost")
    return parse_cost(doc, where)


def add_cost_columns(df: pl.DataFrame, spec: CostSpec) -> pl.DataFrame:
    """`df` with COST_COLUMNS (replaced when present); null where the energy is missing."""
    gpu = df.get_column("gpu") if "gpu" in df.columns else pl.Series([None] * df.height, dtype=pl.String)
    regions = [spec.region_of(g) for g in gpu.to_list()]
    rates = [spec.rates(r) for r in regions]
    columns = [pl.Series("cost_region", regions, dtype=pl.String)]
    for name, energy_col, per, rate_key in _DERIVED:
        factor = pl.Series(
            [
                (r.usd_per_joule() if rate_key == "price_usd_per_kwh" else r.g_per_joule()) * per
                for r in rates
            ],
            dtype=pl.Float64,
        )
        energy = (
            df.get_column(energy_col).cast(pl.Float64)
            if energy_col in df.columns
            else pl.Series([None] * df.height, dtype=pl.Float64)
        )
        columns.append((energy * factor).rename(name))
    return df.with_columns(columns)


def facility_cost_per_hour(facility_power_w: float, rates: Rates) -> tuple[float, float]:
    """(USD per hour, kg CO2e per hour) of a facility drawing `facility_power_w` (PUE included)."""
    kwh_per_hour = facility_power_w / 1000.0
    return kwh_per_hour * rates.price_usd_per_kwh, kwh_per_hour * rates.carbon_g_per_kwh / 1000.0
