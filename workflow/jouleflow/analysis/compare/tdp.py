"""How much a TDP-based estimate overstates measured energy.

The estimate is jouleflow.analysis.tdp's: every GPU at its TDP for the time one response occupies the
server, i.e. TDP x GPUs x time per response, with time per response = batch latency / batch size
for diffusion and mean output tokens / output tokens per second for LLMs. Ratio = estimate /
measured energy per response; since the measured energy is mean power x the same time, the ratio
is TDP x GPUs / measured mean power: it isolates the power assumption. Reported for each (task,
model, GPU type) at its minimum-energy configuration, and over all configurations. The TDP of a
GPU type: a --tdp override, else the summary's gpu_tdp_w, else jouleflow.gpus' table.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    CompareError,
    NoComparablePairs,
    filter_tasks,
    require_columns,
    usable_rows,
    with_config_keys,
)
from jouleflow.analysis.tdp import with_tdp_estimate
from jouleflow.gpus import TDP_BY_SHORT_NAME
from jouleflow.gpus import tdp_w as gpu_table_tdp

NEEDED = (
    "task",
    "model",
    "gpu",
    "modality",
    "num_gpus",
    "batch_size",
    "energy_per_response_j",
    "tokens_per_s",
    "mean_output_tokens",
    "batch_latency_s",
)
TABLE_COLUMNS = (
    "task",
    "model",
    "gpu",
    "num_gpus",
    "batch_size",
    "parallelism",
    "tdp_w",
    "tdp_source",
    "time_per_response_s",
    "measured_j",
    "estimate_j",
    "ratio",
)
SUMMARY_COLUMNS = (
    "task",
    "gpu",
    "models",
    "median_ratio",
    "min_ratio",
    "max_ratio",
    "median_measured_j",
    "median_estimate_j",
)


def parse_tdp(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """`H100=700,B200=1000` -> {"H100": 700.0, "B200": 1000.0}."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        items = [(str(k), v) for k, v in text.items()]
    else:
        items = []
        for item in (s.strip() for s in text.split(",")):
            if not item:
                continue
            if "=" not in item:
                raise CompareError(f"TDP item {item!r} is not GPU=WATTS (e.g. H100=700)")
            name, value = item.split("=", 1)
            items.append((name.strip(), value.strip()))
    tdp = {}
    for name, value in items:
        try:
            watts = float(value)
        except (TypeError, ValueError) as exc:
            raise CompareError(f"TDP for {name!r} is not a number: {value!r}") from exc
        if not watts > 0:
            raise CompareError(f"TDP for {name!r} must be positive, got {value!r}")
        tdp[name] = watts
    return tdp


def _resolve_tdp(df: pl.DataFrame, overrides: Mapping[str, float]) -> pl.DataFrame:
    """gpu_tdp_w and tdp_source per row: override, else the summary's value, else the GPU table."""
    if "gpu_tdp_w" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("gpu_tdp_w"))
    gpus = sorted(set(df["gpu"].drop_nulls().to_list()))
    table = {g: gpu_table_tdp(g) for g in gpus}
    override = pl.col("gpu").replace_strict(overrides, default=None, return_dtype=pl.Float64)
    builtin = pl.col("gpu").replace_strict(table, default=None, return_dtype=pl.Float64)
    summary_tdp = pl.when(pl.col("gpu_tdp_w") > 0).then(pl.col("gpu_tdp_w"))
    return df.with_columns(
        pl.coalesce(override, summary_tdp, builtin).alias("gpu_tdp_w"),
        pl.when(override.is_not_null())
        .then(pl.lit("override"))
        .when(summary_tdp.is_not_null())
        .then(pl.lit("summary"))
        .when(builtin.is_not_null())
        .then(pl.lit("gpu table"))
        .alias("tdp_source"),
    )


@dataclass
class TdpResult:
    rows_all: list[dict[str, Any]]  # every configuration
    rows_best: list[dict[str, Any]]  # the minimum-energy configuration per (task, model, gpu)

    def by_task(self) -> list[dict[str, Any]]:
        keys = sorted({(r["task"], r["gpu"]) for r in self.rows_best})
        out = []
        for task, gpu in keys:
            part = [r for r in self.rows_best if r["task"] == task and r["gpu"] == gpu]
            ratios = [r["ratio"] for r in part]
            out.append(
                {
                    "task": task,
                    "gpu": gpu,
                    "models": len(part),
                    "median_ratio": statistics.median(ratios),
                    "min_ratio": min(ratios),
                    "max_ratio": max(ratios),
                    "median_measured_j": statistics.median(r["measured_j"] for r in part),
                    "median_estimate_j": statistics.median(r["estimate_j"] for r in part),
                }
            )
        return out

    @staticmethod
    def _spread(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        ratios = [r["ratio"] for r in rows]
        return {
            "total": len(ratios),
            "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios),
            "max_ratio": max(ratios),
        }

    def summary(self) -> dict[str, Any]:
        tdp = {r["gpu"]: {"tdp_w": r["tdp_w"], "source": r["tdp_source"]} for r in self.rows_all}
        return {
            "tdp": dict(sorted(tdp.items())),
            "by_task": self.by_task(),
            "rows": self.rows_best,
            **self._spread(self.rows_best),
            "all_configurations": self._spread(self.rows_all),
        }

    def rows(self) -> list[dict[str, Any]]:
        return self.rows_best

    def markdown(self) -> str:
        fmt = {
            "models": "int",
            "median_ratio": "ratio",
            "min_ratio": "ratio",
            "max_ratio": "ratio",
            "median_measured_j": "g",
            "median_estimate_j": "g",
        }
        best, every = self._spread(self.rows_best), self._spread(self.rows_all)
        return "\n".join(
            [
                "# TDP-based estimate vs measured energy per response\n",
                "Estimate = TDP x GPUs x time per response; ratio = estimate / measured. Per task and GPU type over each "
                "model's minimum-energy configuration.\n",
                output.markdown_table(self.by_task(), SUMMARY_COLUMNS, fmt),
                f"\nMinimum-energy configurations: median ratio {best['median_ratio']:.2f}x "
                f"({best['min_ratio']:.2f}x to {best['max_ratio']:.2f}x, n={best['total']}). "
                f"All configurations: median {every['median_ratio']:.2f}x "
                f"({every['min_ratio']:.2f}x to {every['max_ratio']:.2f}x, n={every['total']}).\n",
            ]
        )


def compare_tdp(
    df: pl.DataFrame, tdp_w: Mapping[str, float] | None = None, tasks: Sequence[str] | None = None
) -> TdpResult:
    """TDP-estimate overestimation. See the module docstring."""
    require_columns(df, NEEDED, "tdp")
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), ["energy_per_response_j"])
    df = df.filter(pl.col("num_gpus").is_not_null() & (pl.col("num_gpus") > 0))
    df = _resolve_tdp(df, dict(tdp_w or {}))
    unknown = sorted(set(df.filter(pl.col("gpu_tdp_w").is_null())["gpu"].drop_nulls().to_list()))
    if unknown:
        raise CompareError(
            f"no TDP known for GPU type(s) {', '.join(unknown)}: give --tdp "
            f"{','.join(f'{g}=WATTS' for g in unknown)} (built in: "
            f"{', '.join(f'{g}={w:g}' for g, w in TDP_BY_SHORT_NAME.items())})"
        )
    df = with_tdp_estimate(df).filter(pl.col("tdp_overestimation").is_not_null())
    rows = [
        {
            "task": r["task"],
            "model": r["model"],
            "gpu": r["gpu"],
            "num_gpus": r["num_gpus"],
            "batch_size": r["batch_size"],
            "parallelism": r["parallelism"],
            "tdp_w": r["gpu_tdp_w"],
            "tdp_source": r["tdp_source"],
            "time_per_response_s": r["tdp_estimate_j"] / (r["gpu_tdp_w"] * r["num_gpus"]),
            "measured_j": r["energy_per_response_j"],
            "estimate_j": r["tdp_estimate_j"],
            "ratio": r["tdp_overestimation"],
        }
        for r in df.to_dicts()
    ]
    if not rows:
        raise NoComparablePairs("no comparable pairs: no row has energy per response and a time per response")
    rows.sort(
        key=lambda r: (
            r["task"],
            r["model"],
            r["gpu"],
            r["measured_j"],
            r["num_gpus"],
            r["batch_size"],
            r["parallelism"],
        )
    )
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        best.setdefault((r["task"], r["model"], r["gpu"]), r)  # rows sorted by energy within the key
    return TdpResult(rows, list(best.values()))
