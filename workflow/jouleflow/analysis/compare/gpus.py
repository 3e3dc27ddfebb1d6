"""GPU generations at matched latency.

For each (task, model, precision) and each deadline, take the minimum-energy configuration whose
latency is at or under the deadline on GPU type A, and likewise on B (any GPU count, batch size
or parallelism). A comparison exists only when both have one. Its relative change is
energy(B) / energy(A) - 1: negative when B uses less. B wins when the change is negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    ChangeStats,
    CompareError,
    NoComparablePairs,
    change_stats,
    filter_tasks,
    format_duration,
    metric_column,
    relative_change,
    require_columns,
    require_gpu_types,
    usable_rows,
    with_config_keys,
)

GROUP_KEYS = ("task", "model", "precision")
CHOICE_FIELDS = ("num_gpus", "batch_size", "parallelism", "latency", "energy")
TABLE_COLUMNS = (
    "task", "model", "precision", "deadline_s",
    "a_gpu", "a_num_gpus", "a_batch_size", "a_parallelism", "a_latency", "a_energy",
    "b_gpu", "b_num_gpus", "b_batch_size", "b_parallelism", "b_latency", "b_energy",
    "change", "b_wins",
)  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The minimum-energy configuration of one GPU type under one deadline."""

    gpu: str
    num_gpus: int
    batch_size: int
    parallelism: str
    latency: float
    energy: float


@dataclass(frozen=True)
class GpuComparison:
    task: str
    model: str
    precision: str
    deadline_s: float
    a: Choice
    b: Choice

    @property
    def change(self) -> float:
        return relative_change(self.b.energy, self.a.energy)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "task": self.task,
            "model": self.model,
            "precision": self.precision,
            "deadline_s": self.deadline_s,
        }
        for side, choice in (("a", self.a), ("b", self.b)):
            row[f"{side}_gpu"] = choice.gpu
            for name in CHOICE_FIELDS:
                row[f"{side}_{name}"] = getattr(choice, name)
        row["change"] = self.change
        row["b_wins"] = self.change < 0
        return row


@dataclass
class GpuComparisonResult:
    gpu_a: str
    gpu_b: str
    latency_column: str
    energy_column: str
    deadlines_s: list[float]
    comparisons: list[GpuComparison]
    # (task, model, precision, deadline_s, reason) for groups with both GPU types but no comparison
    unmatched: list[tuple[str, str, str, float, str]] = field(default_factory=list)

    @property
    def stats(self) -> ChangeStats:
        return change_stats([c.change for c in self.comparisons])

    def stats_by_deadline(self) -> list[tuple[float, ChangeStats]]:
        return [
            (d, change_stats([c.change for c in self.comparisons if c.deadline_s == d]))
            for d in self.deadlines_s
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "gpu_a": self.gpu_a,
            "gpu_b": self.gpu_b,
            "latency_metric": self.latency_column,
            "energy_metric": self.energy_column,
            "deadlines_s": self.deadlines_s,
            "comparisons": [c.as_row() for c in self.comparisons],
            **self.stats.as_dict(wins_key="wins_b"),
            "by_deadline": [
                {"deadline_s": d, **s.as_dict(wins_key="wins_b")} for d, s in self.stats_by_deadline()
            ],
            "unmatched": [
                {"task": t, "model": m, "precision": p, "deadline_s": d, "reason": r}
                for t, m, p, d, r in self.unmatched
            ],
        }

    def rows(self) -> list[dict[str, Any]]:
        return [c.as_row() for c in self.comparisons]

    def markdown(self) -> str:
        a, b = self.gpu_a, self.gpu_b
        lines = [
            f"# {b} vs {a} at matched latency\n",
            f"Minimum {self.energy_column} under a {self.latency_column} deadline, per task, model and precision "
            f"(any GPU count). Change = {b}/{a} - 1; negative means {b} uses less energy.\n",
        ]
        summary_rows = [
            {"deadline": format_duration(d), **s.as_dict(wins_key="wins")}
            for d, s in self.stats_by_deadline()
        ]
        summary_rows.append({"deadline": "all", **self.stats.as_dict(wins_key="wins")})
        fmt = {
            "wins": "int",
            "total": "int",
            "median_change": "pct",
            "min_change": "pct",
            "max_change": "pct",
        }
        lines.append(
            output.markdown_table(
                summary_rows,
                ["deadline", "wins", "total", "median_change", "min_change", "max_change"],
                fmt,
                {"wins": f"{b} wins", **output.CHANGE_HEADERS},
            )
        )
        rows = [
            dict(
                r,
                deadline=format_duration(r["deadline_s"]),
                a_config=_config_label(r, "a"),
                b_config=_config_label(r, "b"),
            )
            for r in self.rows()
        ]
        lines.append("\n## Comparisons\n")
        lines.append(
            output.markdown_table(
                rows,
                [
                    "task",
                    "model",
                    "precision",
                    "deadline",
                    "a_config",
                    "a_energy",
                    "b_config",
                    "b_energy",
                    "change",
                ],
                {"a_energy": "g", "b_energy": "g", "change": "pct"},
                {
                    "a_config": f"{a} config",
                    "a_energy": f"{a} energy (J)",
                    "b_config": f"{b} config",
                    "b_energy": f"{b} energy (J)",
                },
            )
        )
        if self.unmatched:
            lines.append(
                f"\n{len(self.unmatched)} (model, deadline) case(s) had configurations on both GPU types "
                "but no comparison (see `unmatched` in --json).\n"
            )
        return "\n".join(lines)


def _config_label(row: dict[str, Any], side: str) -> str:
    par = f" {row[f'{side}_parallelism']}" if row[f"{side}_parallelism"] else ""
    return f"{row[f'{side}_num_gpus']}x b{row[f'{side}_batch_size']}{par} ({row[f'{side}_latency']:.3g}s)"


def min_energy_under_deadline(
    rows: Sequence[dict[str, Any]], latency: str, energy: str, deadline_s: float
) -> dict[str, Any] | None:
    """The row with the least energy among those with latency <= deadline (None if none meets it).

    Ties in energy go to the lower latency, then fewer GPUs, then the smaller batch, so the
    choice does not depend on row order.
    """
    feasible = [r for r in rows if r[latency] <= deadline_s]
    if not feasible:
        return None
    return min(
        feasible, key=lambda r: (r[energy], r[latency], r["num_gpus"], r["batch_size"], r["parallelism"])
    )


def _choice(row: dict[str, Any], latency: str, energy: str) -> Choice:
    return Choice(
        gpu=row["gpu"],
        num_gpus=int(row["num_gpus"]),
        batch_size=int(row["batch_size"]),
        parallelism=row["parallelism"],
        latency=float(row[latency]),
        energy=float(row[energy]),
    )


def compare_gpus(
    df: pl.DataFrame,
    gpu_a: str,
    gpu_b: str,
    deadlines_s: Sequence[float],
    latency: str = "median_itl",
    energy: str = "energy_per_response",
    tasks: Sequence[str] | None = None,
) -> GpuComparisonResult:
    """Compare GPU type B against A at each latency deadline (seconds). See the module docstring."""
    lat = metric_column(latency, "latency")
    en = metric_column(energy, "energy")
    require_columns(df, [*GROUP_KEYS, "gpu", "num_gpus", "batch_size", lat, en], "gpus")
    if gpu_a == gpu_b:
        raise CompareError(f"--a and --b are both {gpu_a!r}; compare two different GPU types")
    if not deadlines_s:
        raise CompareError("no deadlines given")
    require_gpu_types(df, [gpu_a, gpu_b])
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), [lat, en])
    df = df.filter(pl.col("gpu").is_in([gpu_a, gpu_b]))
    deadlines = sorted(set(float(d) for d in deadlines_s))

    comparisons: list[GpuComparison] = []
    unmatched: list[tuple[str, str, str, float, str]] = []
    groups_with_both = 0
    for key, group in sorted(df.group_by(list(GROUP_KEYS)), key=lambda kv: tuple(str(k) for k in kv[0])):
        task, model, precision = (str(k) for k in key)
        by_gpu = {g: group.filter(pl.col("gpu") == g).to_dicts() for g in (gpu_a, gpu_b)}
        if not by_gpu[gpu_a] or not by_gpu[gpu_b]:
            continue
        groups_with_both += 1
        for deadline in deadlines:
            best_a = min_energy_under_deadline(by_gpu[gpu_a], lat, en, deadline)
            best_b = min_energy_under_deadline(by_gpu[gpu_b], lat, en, deadline)
            if best_a and best_b:
                comparisons.append(
                    GpuComparison(
                        task, model, precision, deadline, _choice(best_a, lat, en), _choice(best_b, lat, en)
                    )
                )
            else:
                met = [g for g, best in ((gpu_a, best_a), (gpu_b, best_b)) if best]
                reason = f"deadline met only on {met[0]}" if met else "deadline met on neither"
                unmatched.append((task, model, precision, deadline, reason))
    if not comparisons:
        if groups_with_both == 0:
            raise NoComparablePairs(
                f"no comparable pairs: no (task, model, precision) has usable {lat} and {en} on both {gpu_a} and {gpu_b}"
            )
        raise NoComparablePairs(
            f"no comparable pairs: {groups_with_both} (task, model, precision) group(s) have both {gpu_a} and "
            f"{gpu_b}, but none meets any deadline ({', '.join(format_duration(d) for d in deadlines)}) on both"
        )
    return GpuComparisonResult(gpu_a, gpu_b, lat, en, deadlines, comparisons, unmatched)
