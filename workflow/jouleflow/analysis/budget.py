"""Power-budget planning: what a fixed power budget serves under a latency target.

Per (task, model, precision), among the usable configurations whose latency meets the target, the
one with the highest throughput per watt (output tokens/s per W for LLMs, images or videos/s per W
for diffusion; measured mean power of all the configuration's GPUs) is deployed as identical
replicas. The budget is GPU power; with a PUE it is facility power, of which GPUs get budget / PUE.
Replicas are whole: floor(GPU budget / replica power), so the plan never exceeds the budget; a
configuration of which not even one replica fits is not a candidate.
Throughput and concurrent streams (replicas × batch size) scale with the replicas. Method and
caveats: docs/compare.md#power-budget-planning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.cost import COST_COLUMNS, CostSpec, add_cost_columns, facility_cost_per_hour
from jouleflow.analysis.frontier import (
    GROUP_COLS,
    FrontierError,
    default_latency_metric,
    modality_of,
    require_columns,
    resolve_latency_metric,
    usable_rows,
)
from jouleflow.analysis.recommend_all import restrict
from jouleflow.units import format_duration

# SI spelling only: "mW" would be milliwatts, so the case of the prefix is not guessed.
_POWER_UNITS = {"W": 1.0, "kW": 1e3, "MW": 1e6, "GW": 1e9}
_POWER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(W|kW|MW|GW)\s*$")
_TIE_BREAK = ("latency_s", "gpu", "num_gpus", "batch_size", "parallelism", "run_dir")

PLAN_COLUMNS: tuple[str, ...] = (
    "task", "model", "precision", "status", "reason", "latency_metric", "latency_target_s",
    "gpu", "num_gpus", "batch_size", "parallelism", "run_dir", "latency_s",
    "throughput_unit", "replica_throughput", "replica_power_w", "throughput_per_w",
    "replicas", "total_gpus", "total_throughput", "concurrent_streams",
    "gpu_power_used_w", "facility_power_used_w", "energy_per_response_j", "candidates",
)  # fmt: skip
COST_PLAN_COLUMNS: tuple[str, ...] = (*COST_COLUMNS, "cost_usd_per_hour", "carbon_kg_per_hour")


class BudgetError(FrontierError):
    """A plan that cannot be made from these inputs (bad budget, PUE, missing columns)."""


def parse_power(text: str, what: str = "--power") -> float:
    """'1MW', '500 kW', '700W' → watts; the unit is required and the value must be positive."""
    match = _POWER.match(str(text))
    if not match:
        raise BudgetError(f"{what}: {text!r} is not a power with a unit (W, kW, MW, GW), e.g. 1MW")
    watts = float(match.group(1)) * _POWER_UNITS[match.group(2)]
    if watts <= 0:
        raise BudgetError(f"{what}: the power budget must be positive, got {text!r}")
    return watts


def format_power(watts: float) -> str:
    for unit, scale in (("GW", 1e9), ("MW", 1e6), ("kW", 1e3)):
        if watts >= scale:
            return f"{watts / scale:.4g} {unit}"
    return f"{watts:.4g} W"


@dataclass(frozen=True)
class BudgetPlan:
    power_w: float  # the budget as given (facility power when pue > 1)
    pue: float
    latency_target_s: float
    rows: pl.DataFrame  # PLAN_COLUMNS (+ COST_PLAN_COLUMNS with a cost spec), one per group
    empty_reason: str | None  # why no group has a plan; None when at least one has

    @property
    def gpu_power_w(self) -> float:
        return self.power_w / self.pue

    def ok_rows(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("status") == "ok")

    def summary(self) -> dict[str, Any]:
        return {
            "power_budget_w": self.power_w,
            "pue": self.pue,
            "gpu_power_budget_w": self.gpu_power_w,
            "latency_target_s": self.latency_target_s,
            "empty_reason": self.empty_reason,
            "plans": self.rows.to_dicts(),
        }


def _throughput(rows: pl.DataFrame, task: str, modality: str | None) -> tuple[pl.DataFrame, str]:
    """Rows with replica_throughput (per second) and its unit, positive values only."""
    if modality == "diffusion":
        require_columns(rows, ["batch_size", "batch_latency_s", "mean_power_w"], "summary")
        unit = "videos/s" if "video" in task else "images/s"
        value = pl.col("batch_size").cast(pl.Float64) / pl.col("batch_latency_s").cast(pl.Float64)
    else:
        require_columns(rows, ["tokens_per_s", "mean_power_w"], "summary")
        unit = "tokens/s"
        value = pl.col("tokens_per_s").cast(pl.Float64)
    out = rows.with_columns(replica_throughput=value, replica_power_w=pl.col("mean_power_w").cast(pl.Float64))
    positive = (pl.col("replica_throughput") > 0) & (pl.col("replica_power_w") > 0)
    return out.filter(positive.fill_null(False) & pl.col("replica_throughput").is_not_nan()), unit


def _replicas(gpu_budget_w: float, replica_w: float, power_w: float, pue: float) -> int:
    n = math.floor(gpu_budget_w / replica_w)
    # Floating-point guards: the largest n with n replicas (with PUE) within the budget, exactly.
    while (n + 1) * replica_w * pue <= power_w:
        n += 1
    while n > 0 and n * replica_w * pue > power_w:
        n -= 1
    return n


def _group_plan(
    key: dict, rows: pl.DataFrame, metric: str, unit: str, target: float, power_w: float, pue: float,
    cost: CostSpec | None,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        **key,
        "latency_metric": metric,
        "latency_target_s": target,
        "candidates": rows.height,
    }
    if rows.height == 0:
        return out | {
            "status": "no-usable-rows",
            "reason": "no ok, valid row with latency, energy, throughput and power",
        }
    feasible = rows.filter(pl.col(metric) <= target)
    if feasible.height == 0:
        best = float(rows.get_column(metric).min())  # type: ignore[arg-type]
        return out | {
            "status": "unreachable",
            "reason": f"{metric.removesuffix('_s')} ≤ {format_duration(target)} is unreachable: "
            f"the fastest configuration achieves {format_duration(best)}",
            "latency_s": best,
        }
    # Only configurations of which one replica fits the budget can be deployed at all.
    fits = feasible.filter(pl.col("replica_power_w") * pue <= power_w)
    if fits.height == 0:
        smallest = float(feasible.get_column("replica_power_w").min())  # type: ignore[arg-type]
        return out | {
            "status": "budget-too-small",
            "reason": f"the smallest replica meeting the target draws {format_power(smallest * pue)} "
            f"(with PUE), more than the {format_power(power_w)} budget",
            "replicas": 0,
        }
    ranked = fits.with_columns(
        latency_s=pl.col(metric).cast(pl.Float64),
        throughput_per_w=pl.col("replica_throughput") / pl.col("replica_power_w"),
    )
    ties = [c for c in _TIE_BREAK if c in ranked.columns]
    best_row = ranked.sort(
        ["throughput_per_w", *ties], descending=[True, *([False] * len(ties))], nulls_last=True
    ).row(0, named=True)
    replica_w = best_row["replica_power_w"]
    replicas = _replicas(power_w / pue, replica_w, power_w, pue)
    chosen = {c: best_row.get(c) for c in ("gpu", "num_gpus", "batch_size", "parallelism", "run_dir")}
    out |= chosen | {
        "latency_s": best_row["latency_s"],
        "throughput_unit": unit,
        "replica_throughput": best_row["replica_throughput"],
        "replica_power_w": replica_w,
        "throughput_per_w": best_row["throughput_per_w"],
        "energy_per_response_j": best_row.get("energy_per_response_j"),
        "replicas": replicas,
    }
    num_gpus = int(best_row.get("num_gpus") or 1)
    used = replicas * replica_w
    out |= {
        "status": "ok",
        "total_gpus": replicas * num_gpus,
        "total_throughput": replicas * best_row["replica_throughput"],
        "concurrent_streams": replicas * int(best_row.get("batch_size") or 0),
        "gpu_power_used_w": used,
        "facility_power_used_w": used * pue,
    }
    if cost is not None:
        out |= {c: best_row.get(c) for c in COST_COLUMNS}
        # At the plan's facility power (its PUE), the region's price and carbon intensity.
        usd, kg = facility_cost_per_hour(used * pue, cost.rates(best_row["cost_region"]))
        out |= {"cost_usd_per_hour": usd, "carbon_kg_per_hour": kg}
    return out


def plan_budget(
    summary: pl.DataFrame,
    power_w: float,
    latency_target_s: float,
    *,
    pue: float = 1.0,
    tasks: Sequence[str] | None = None,
    latency_metric: str | None = None,
    gpu: str | None = None,
    num_gpus: int | None = None,
    cost: CostSpec | None = None,
) -> BudgetPlan:
    """One plan row per (task, model, precision); `empty_reason` says why when none has a plan."""
    if not (power_w > 0 and math.isfinite(power_w)):
        raise BudgetError(f"power budget must be positive, got {power_w!r} W")
    if not (pue >= 1 and math.isfinite(pue)):
        raise BudgetError(f"pue must be >= 1 (facility power over IT power), got {pue!r}")
    if not (latency_target_s > 0):
        raise BudgetError(f"latency target must be positive, got {latency_target_s!r} s")
    # The same GPU/task filters as `recommend --all`; rows without a task belong to no plan.
    df = restrict(summary, gpu=gpu, num_gpus=num_gpus, tasks=tasks).filter(pl.col("task").is_not_null())
    if cost is not None:
        df = add_cost_columns(df, cost)
    records = []
    for (task,), rows in sorted(df.partition_by("task", as_dict=True).items(), key=lambda kv: str(kv[0][0])):
        metric = (
            resolve_latency_metric(latency_metric) if latency_metric else default_latency_metric(task, rows)
        )
        usable, _ = usable_rows(rows, metric)
        usable, unit = _throughput(usable, task, modality_of(rows))
        by_group = usable.partition_by(list(GROUP_COLS), as_dict=True)
        for key in rows.select(GROUP_COLS).unique().sort(GROUP_COLS, nulls_last=True).iter_rows(named=True):
            candidates = by_group.get(tuple(key[c] for c in GROUP_COLS), usable.head(0))
            records.append(_group_plan(key, candidates, metric, unit, latency_target_s, power_w, pue, cost))
    columns = PLAN_COLUMNS + (COST_PLAN_COLUMNS if cost is not None else ())
    table = pl.DataFrame([{c: r.get(c) for c in columns} for r in records], infer_schema_length=None)
    if table.height == 0:
        table = pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    return BudgetPlan(power_w, pue, latency_target_s, table, _empty_reason(table, latency_target_s))


def _empty_reason(table: pl.DataFrame, target: float) -> str | None:
    if table.height == 0:
        return "the summary has no rows for these filters"
    if (table.get_column("status") == "ok").any():
        return None
    statuses = sorted(set(table.get_column("status").to_list()))
    if statuses == ["unreachable"]:
        fastest = float(table.get_column("latency_s").min())  # type: ignore[arg-type]
        return (
            f"no configuration meets the latency target {format_duration(target)} "
            f"(the fastest of any model achieves {format_duration(fastest)})"
        )
    reasons = "; ".join(f"{r['model']} ({r['task']}): {r['reason']}" for r in table.iter_rows(named=True))
    return f"no model has a plan: {reasons}"


_MD_COLUMNS = (
    "task", "model", "precision", "status", "gpu", "num_gpus", "batch_size", "latency_s",
    "throughput_unit", "throughput_per_w", "replicas", "total_gpus", "total_throughput",
    "concurrent_streams", "facility_power_used_w",
)  # fmt: skip
_FORMATS = {
    "num_gpus": "int", "batch_size": "int", "latency_s": "g", "throughput_per_w": "g", "replicas": "int",
    "total_gpus": "int", "total_throughput": "g", "concurrent_streams": "int", "facility_power_used_w": "g",
    "cost_usd_per_hour": "g", "carbon_kg_per_hour": "g", "cost_usd_per_1m_tokens": "g",
}  # fmt: skip


def markdown(plan: BudgetPlan) -> str:
    from jouleflow.analysis.compare.output import markdown_table

    head = (
        f"# Power budget {format_power(plan.power_w)} (PUE {plan.pue:g}: {format_power(plan.gpu_power_w)} "
        f"for GPUs), latency ≤ {format_duration(plan.latency_target_s)}\n\n"
    )
    if plan.empty_reason:
        head += f"No plan: {plan.empty_reason}.\n\n"
    extra = [
        c
        for c in ("cost_usd_per_hour", "carbon_kg_per_hour", "cost_usd_per_1m_tokens")
        if c in plan.rows.columns
    ]
    table = markdown_table(plan.rows.to_dicts(), [*_MD_COLUMNS, *extra], _FORMATS)
    notes = [
        f"- {r['model']} ({r['task']}): {r['reason']}" for r in plan.rows.iter_rows(named=True) if r["reason"]
    ]
    return head + table + ("\n" + "\n".join(notes) + "\n" if notes else "")
