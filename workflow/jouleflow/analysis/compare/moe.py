"""Mixture-of-Experts vs dense models of similar total size.

Per (task, GPU type, precision), each model's minimum-energy configuration (over GPU count,
batch size and parallelism, unless a GPU count is fixed) is taken; every MoE model is paired
with every dense model whose total parameter count is within the tolerance
(max/min - 1 <= tolerance). MoE wins when its energy is lower; change = MoE / dense - 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    ChangeStats,
    CompareError,
    NoComparablePairs,
    change_stats,
    filter_tasks,
    gpus_column,
    gpus_note,
    metric_column,
    relative_change,
    require_columns,
    same_gpus,
    usable_rows,
    with_config_keys,
)

GROUP_KEYS = ("task", "gpu", "precision")
TABLE_COLUMNS = (
    "task",
    "gpu",
    "precision",
    "moe_model",
    "moe_total_params_b",
    "moe_active_params_b",
    "moe_config",
    "moe_energy",
    "dense_model",
    "dense_total_params_b",
    "dense_config",
    "dense_energy",
    "change",
    "dense_over_moe",
    "moe_wins",
    "same_gpus",
)


def architecture_kind(value: str | None) -> str | None:
    """'moe' / 'dense' from the summary's architecture text ('MoE', 'Dense Transformer', ...); None otherwise."""
    if value is None:
        return None
    text = value.lower()
    if "moe" in text or "mixture" in text:
        return "moe"
    if "dense" in text:
        return "dense"
    return None


def _config(row: dict[str, Any]) -> str:
    par = f" {row['parallelism']}" if row["parallelism"] else ""
    return f"{row['num_gpus']}x b{row['batch_size']}{par}"


@dataclass(frozen=True)
class MoePair:
    task: str
    gpu: str
    precision: str
    moe: dict[str, Any]
    dense: dict[str, Any]
    energy_column: str

    @property
    def change(self) -> float:
        return relative_change(self.moe[self.energy_column], self.dense[self.energy_column])

    def as_row(self) -> dict[str, Any]:
        e = self.energy_column
        return {
            "task": self.task, "gpu": self.gpu, "precision": self.precision,
            "moe_model": self.moe["model"], "moe_total_params_b": self.moe["total_params_b"],
            "moe_active_params_b": self.moe.get("active_params_b"), "moe_config": _config(self.moe),
            "moe_energy": self.moe[e], "dense_model": self.dense["model"],
            "dense_total_params_b": self.dense["total_params_b"], "dense_config": _config(self.dense),
            "dense_energy": self.dense[e], "change": self.change,
            "dense_over_moe": self.dense[e] / self.moe[e], "moe_wins": self.change < 0,
            "same_gpus": same_gpus(self.moe, self.dense),
        }  # fmt: skip


@dataclass
class MoeResult:
    energy_column: str
    tolerance: float
    pairs: list[MoePair]

    @property
    def stats(self) -> ChangeStats:
        return change_stats([p.change for p in self.pairs])

    def rows(self) -> list[dict[str, Any]]:
        return [p.as_row() for p in self.pairs]

    def summary(self) -> dict[str, Any]:
        return {
            "energy_metric": self.energy_column,
            "tolerance": self.tolerance,
            "pairs": self.rows(),
            **self.stats.as_dict(wins_key="wins_moe"),
        }

    def markdown(self) -> str:
        s = self.stats
        rows = self.rows()
        flags = [r["same_gpus"] for r in rows]
        return "\n".join(
            [
                "# MoE vs dense at similar total parameters\n",
                f"Minimum {self.energy_column} per model, task, GPU type and precision; pairs whose total parameter "
                f"counts differ by at most {self.tolerance:.0%}. Change = MoE/dense - 1.\n",
                output.markdown_table(
                    [s.as_dict(wins_key="wins")],
                    ["wins", "total", "median_change", "min_change", "max_change"],
                    {
                        "wins": "int",
                        "total": "int",
                        "median_change": "pct",
                        "min_change": "pct",
                        "max_change": "pct",
                    },
                    {"wins": "MoE wins", **output.CHANGE_HEADERS},
                ),
                "\n## Pairs\n",
                *([note] if (note := gpus_note(flags)) else []),
                output.markdown_table(
                    rows,
                    [
                        "task",
                        "gpu",
                        "moe_model",
                        "moe_config",
                        "moe_energy",
                        "dense_model",
                        "dense_config",
                        "dense_energy",
                        "dense_over_moe",
                        *gpus_column(flags),
                    ],
                    {"moe_energy": "g", "dense_energy": "g", "dense_over_moe": "ratio"},
                    {"dense_over_moe": "dense / MoE", "same_gpus": "same GPUs"},
                ),
            ]
        )


def compare_moe(
    df: pl.DataFrame,
    energy: str = "energy_per_token",
    tolerance: float = 0.25,
    tasks: Sequence[str] | None = None,
    num_gpus: int | None = None,
) -> MoeResult:
    """MoE/dense pairs of similar total size. See the module docstring."""
    if not tolerance >= 0:
        raise CompareError(f"tolerance must be >= 0, got {tolerance}")
    en = metric_column(energy, "energy")
    require_columns(
        df,
        ["task", "model", "precision", "gpu", "num_gpus", "batch_size", "architecture", "total_params_b", en],
        "moe",
    )
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), [en, "total_params_b"])
    if "active_params_b" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("active_params_b"))
    if num_gpus is not None:
        df = df.filter(pl.col("num_gpus") == num_gpus)
    pairs = []
    kinds_seen = set()
    for key, group in sorted(df.group_by(list(GROUP_KEYS)), key=lambda kv: tuple(str(k) for k in kv[0])):
        best: dict[str, dict[str, Any]] = {}
        for row in group.sort([en, "num_gpus", "batch_size", "parallelism"]).to_dicts():
            best.setdefault(row["model"], row)  # first = least energy
        by_kind: dict[str, list[dict[str, Any]]] = {"moe": [], "dense": []}
        for row in best.values():
            kind = architecture_kind(row["architecture"])
            if kind:
                kinds_seen.add(kind)
                by_kind[kind].append(row)
        for moe in sorted(by_kind["moe"], key=lambda r: r["model"]):
            for dense in sorted(by_kind["dense"], key=lambda r: r["model"]):
                big, small = sorted([moe["total_params_b"], dense["total_params_b"]], reverse=True)
                if big / small - 1 <= tolerance + 1e-12:
                    pairs.append(MoePair(str(key[0]), str(key[1]), str(key[2]), moe, dense, en))
    if not pairs:
        missing = {"moe", "dense"} - kinds_seen
        why = (
            f"the summary has no {' or '.join(sorted(missing))} model (architecture column)"
            if missing
            else f"no MoE and dense model within {tolerance:.0%} total parameters share a task, GPU type and precision"
        )
        raise NoComparablePairs(f"no comparable pairs: {why}")
    return MoeResult(en, tolerance, pairs)
