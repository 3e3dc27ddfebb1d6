"""Multi-GPU scaling at a fixed batch size.

Within each (task, model, precision, GPU type, batch size), every pair of configurations with
fewer and more GPUs is one case. Per GPU type: the share of cases where energy rises
(more > fewer) and where latency falls (more < fewer). Repeated runs of one configuration are
averaged first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    NoComparablePairs,
    collapse_repeats,
    filter_tasks,
    metric_column,
    relative_change,
    require_columns,
    usable_rows,
    with_config_keys,
)

GROUP_KEYS = ("task", "model", "precision", "gpu", "batch_size")
TABLE_COLUMNS = (
    "task", "model", "precision", "gpu", "batch_size",
    "fewer_gpus", "fewer_parallelism", "more_gpus", "more_parallelism",
    "fewer_energy", "more_energy", "energy_change", "energy_rises",
    "fewer_latency", "more_latency", "latency_change", "latency_falls",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "gpu",
    "cases",
    "energy_rises",
    "energy_rises_share",
    "latency_falls",
    "latency_falls_share",
)


@dataclass(frozen=True)
class ScalingCase:
    task: str
    model: str
    precision: str
    gpu: str
    batch_size: int
    fewer_gpus: int
    fewer_parallelism: str
    more_gpus: int
    more_parallelism: str
    fewer_energy: float
    more_energy: float
    fewer_latency: float
    more_latency: float

    @property
    def energy_rises(self) -> bool:
        return self.more_energy > self.fewer_energy

    @property
    def latency_falls(self) -> bool:
        return self.more_latency < self.fewer_latency

    def as_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in self.__dataclass_fields__}
        row.update(
            energy_change=relative_change(self.more_energy, self.fewer_energy),
            energy_rises=self.energy_rises,
            latency_change=relative_change(self.more_latency, self.fewer_latency),
            latency_falls=self.latency_falls,
        )
        return row


def _tally(gpu: str, cases: Sequence[ScalingCase]) -> dict[str, Any]:
    n = len(cases)
    rises = sum(c.energy_rises for c in cases)
    falls = sum(c.latency_falls for c in cases)
    return {
        "gpu": gpu,
        "cases": n,
        "energy_rises": rises,
        "energy_rises_share": rises / n if n else None,
        "latency_falls": falls,
        "latency_falls_share": falls / n if n else None,
    }


@dataclass
class ScalingResult:
    energy_column: str
    latency_column: str
    cases: list[ScalingCase]

    def by_gpu(self) -> list[dict[str, Any]]:
        gpus = sorted({c.gpu for c in self.cases})
        return [_tally(g, [c for c in self.cases if c.gpu == g]) for g in gpus]

    def overall(self) -> dict[str, Any]:
        return _tally("all", self.cases)

    def summary(self) -> dict[str, Any]:
        return {
            "energy_metric": self.energy_column,
            "latency_metric": self.latency_column,
            "by_gpu": self.by_gpu(),
            "all": self.overall(),
            "cases": self.rows(),
        }

    def rows(self) -> list[dict[str, Any]]:
        return [c.as_row() for c in self.cases]

    def markdown(self) -> str:
        fmt = {
            "cases": "int",
            "energy_rises": "int",
            "energy_rises_share": "share",
            "latency_falls": "int",
            "latency_falls_share": "share",
        }
        lines = [
            "# Multi-GPU scaling at a fixed batch size\n",
            f"Same task, model, precision, GPU type and batch size; more GPUs vs fewer. Energy: {self.energy_column}; "
            f"latency: {self.latency_column}.\n",
            output.markdown_table(
                [*self.by_gpu(), _tally("all", self.cases)],
                SUMMARY_COLUMNS,
                fmt,
                {"energy_rises_share": "energy rises", "latency_falls_share": "latency falls"},
            ),
            "\n## Cases\n",
            output.markdown_table(
                self.rows(),
                [
                    "task",
                    "model",
                    "gpu",
                    "batch_size",
                    "fewer_gpus",
                    "more_gpus",
                    "energy_change",
                    "latency_change",
                ],
                {
                    "batch_size": "int",
                    "fewer_gpus": "int",
                    "more_gpus": "int",
                    "energy_change": "pct",
                    "latency_change": "pct",
                },
            ),
        ]
        return "\n".join(lines)


def compare_scaling(
    df: pl.DataFrame,
    energy: str = "energy_per_response",
    latency: str = "median_itl",
    tasks: Sequence[str] | None = None,
) -> ScalingResult:
    """All fewer-vs-more-GPU cases at equal batch size. See the module docstring."""
    en = metric_column(energy, "energy")
    lat = metric_column(latency, "latency")
    require_columns(df, [*GROUP_KEYS, "num_gpus", en, lat], "scaling")
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), [en, lat])
    configs = collapse_repeats(df, [*GROUP_KEYS, "num_gpus", "parallelism"], [en, lat])
    cases = []
    for _, group in configs.group_by(list(GROUP_KEYS)):
        rows = group.to_dicts()
        for few in rows:
            for more in rows:
                if more["num_gpus"] <= few["num_gpus"]:
                    continue
                cases.append(
                    ScalingCase(
                        task=few["task"],
                        model=few["model"],
                        precision=few["precision"],
                        gpu=few["gpu"],
                        batch_size=int(few["batch_size"]),
                        fewer_gpus=int(few["num_gpus"]),
                        fewer_parallelism=few["parallelism"],
                        more_gpus=int(more["num_gpus"]),
                        more_parallelism=more["parallelism"],
                        fewer_energy=float(few[en]),
                        more_energy=float(more[en]),
                        fewer_latency=float(few[lat]),
                        more_latency=float(more[lat]),
                    )
                )
    if not cases:
        raise NoComparablePairs(
            "no comparable pairs: no (task, model, precision, GPU type, batch size) was measured on two GPU counts"
        )
    cases.sort(
        key=lambda c: (
            c.gpu,
            c.task,
            c.model,
            c.precision,
            c.batch_size,
            c.fewer_gpus,
            c.more_gpus,
            c.fewer_parallelism,
            c.more_parallelism,
        )
    )
    return ScalingResult(en, lat, cases)
