"""Time–energy Pareto frontiers and minimum-energy recommendations under a latency target.

Per (task, model, precision) the candidates are all configurations measured for it (GPU type ×
count × batch size × parallelism). A configuration is on the frontier when no other one is at
least as fast *and* at least as frugal, and strictly better in one of the two (lower-left set of
(latency, energy per response)). The recommendation for a target T is the minimum-energy
configuration whose latency is ≤ T; its savings are measured against the minimum-latency
configuration (the one a latency-first operator would deploy). Method: docs/analysis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from jouleflow import labels, tasks
from jouleflow.units import format_duration

ENERGY_COL = "energy_per_response_j"
GROUP_COLS: tuple[str, ...] = ("task", "model", "precision")
# Configuration fields that identify a candidate; the last ones make ties deterministic.
CONFIG_COLS: tuple[str, ...] = (
    "gpu",
    "num_gpus",
    "batch_size",
    "parallelism",
    "precision",
    "load_format",
    "source",
    "run_dir",
)
_TIE_BREAK = ("gpu", "num_gpus", "batch_size", "parallelism", "run_dir")
LATENCY_COLUMNS: tuple[str, ...] = (
    "median_itl_s",
    "p90_itl_s",
    "p95_itl_s",
    "p99_itl_s",
    "median_tpot_s",
    "median_ttft_s",
    "median_e2e_s",
    "p90_e2e_s",
    "batch_latency_s",
)

# Default latency metric per task (CONTRACTS): jouleflow.tasks, shared with the planner.


class FrontierError(ValueError):
    """A frontier or recommendation that cannot be computed; the message says what and why."""


class TargetUnreachableError(FrontierError):
    def __init__(self, message: str, target_s: float, best_latency_s: float) -> None:
        super().__init__(message)
        self.target_s = target_s
        self.best_latency_s = best_latency_s


def resolve_latency_metric(name: str) -> str:
    """Accept a summary column ("median_itl_s") or its unit-less name ("median_itl")."""
    column = name if name.endswith("_s") else f"{name}_s"
    if column not in LATENCY_COLUMNS:
        known = ", ".join(c.removesuffix("_s") for c in LATENCY_COLUMNS)
        raise FrontierError(f"unknown latency metric {name!r} (known: {known})")
    return column


def latency_preferences(task: str, modality: str | None = None) -> tuple[str, ...]:
    preferences = tasks.latency_preferences(task, modality)
    if preferences is not None:
        return preferences
    raise FrontierError(
        f"task {task!r}: no default latency metric (modality {modality!r}); pass one explicitly"
    )


def modality_of(rows: pl.DataFrame) -> str | None:
    """The rows' modality (llm | diffusion), None when the column is absent or empty."""
    if "modality" not in rows.columns:
        return None
    values = rows.get_column("modality").drop_nulls()
    return values[0] if len(values) else None


def default_latency_metric(task: str, rows: pl.DataFrame | None = None) -> str:
    """The task's default metric, falling back along its preference list to one the rows carry."""
    modality = modality_of(rows) if rows is not None else None
    preferences = latency_preferences(task, modality)
    if rows is not None:
        for column in preferences:
            if column in rows.columns and rows.get_column(column).drop_nulls().len() > 0:
                return column
    return preferences[0]


@dataclass(frozen=True)
class Exclusions:
    """Rows left out of a frontier, by reason (each row counted once, first reason wins)."""

    not_ok: int = 0  # status infeasible / failed
    invalid: int = 0  # valid is false or unknown
    no_latency: int = 0  # latency missing, NaN or ≤ 0
    no_energy: int = 0  # energy missing, NaN or ≤ 0 (e.g. no energy sensor)

    @property
    def total(self) -> int:
        return self.not_ok + self.invalid + self.no_latency + self.no_energy

    def __add__(self, other: Exclusions) -> Exclusions:
        return Exclusions(
            *(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True))
        )

    def describe(self) -> str:
        parts = [f"{n} {label}" for label, n in asdict(self).items() if n]
        return f"{self.total} row(s) excluded" + (f" ({', '.join(parts)})" if parts else "")


def require_columns(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FrontierError(f"{what}: missing column(s) {', '.join(missing)}")


def _positive(column: str) -> pl.Expr:
    value = pl.col(column).cast(pl.Float64)
    return value.is_not_null() & value.is_not_nan() & (value > 0)


def usable_rows(
    df: pl.DataFrame, latency_col: str, energy_col: str = ENERGY_COL
) -> tuple[pl.DataFrame, Exclusions]:
    """Keep rows that are ok, valid and carry a positive latency and energy; count the rest."""
    require_columns(df, ["status", "valid", latency_col, energy_col], "summary")
    ok = pl.col("status") == "ok"
    valid = ok & pl.col("valid").fill_null(False)
    has_latency = valid & _positive(latency_col)
    has_energy = has_latency & _positive(energy_col)
    counts = df.select(
        not_ok=(~ok.fill_null(False)).sum(),
        invalid=(ok.fill_null(False) & ~valid.fill_null(False)).sum(),
        no_latency=(valid.fill_null(False) & ~has_latency.fill_null(False)).sum(),
        no_energy=(has_latency.fill_null(False) & ~has_energy.fill_null(False)).sum(),
    ).row(0, named=True)
    return df.filter(has_energy.fill_null(False)), Exclusions(**{k: int(v) for k, v in counts.items()})


def frontier_flags(
    df: pl.DataFrame, latency_col: str, energy_col: str, group_cols: Sequence[str] = ()
) -> pl.Series:
    """Boolean mask, aligned with `df`, of rows on their group's lower-left Pareto frontier.

    Rows are sorted by (latency, energy) within a group; a point is on the frontier when its energy
    is strictly below every earlier distinct point's. Identical points share their fate (neither
    strictly dominates the other). Rows with missing values are never on the frontier.
    """
    groups = list(group_cols)
    keyed = df.with_row_index("_row").with_columns(
        pl.col(latency_col).cast(pl.Float64).alias("_lat"), pl.col(energy_col).cast(pl.Float64).alias("_e")
    )
    complete = keyed.filter(_positive("_lat") & _positive("_e")).sort(
        [*groups, "_lat", "_e"], nulls_last=True
    )
    earlier_best = pl.col("_e").cum_min().shift(1)
    if groups:
        earlier_best = earlier_best.over(groups)
    strictly_best = earlier_best.is_null() | (pl.col("_e") < earlier_best)
    # Identical points are consecutive after the sort; the first of them decides for all.
    flagged = complete.with_columns(_front=strictly_best).with_columns(
        _front=pl.col("_front").first().over([*groups, "_lat", "_e"])
    )
    mask = keyed.select("_row").join(flagged.select("_row", "_front"), on="_row", how="left").sort("_row")
    return mask.get_column("_front").fill_null(False).rename("on_frontier")


def pareto_front(df: pl.DataFrame, latency_col: str, energy_col: str = ENERGY_COL) -> pl.DataFrame:
    """The rows of `df` (one group of candidates) on the lower-left frontier, fastest first."""
    require_columns(df, [latency_col, energy_col], "pareto_front")
    front = df.filter(frontier_flags(df, latency_col, energy_col))
    order = [latency_col, energy_col, *(c for c in _TIE_BREAK if c in df.columns)]
    return front.sort(order, nulls_last=True)


@dataclass(frozen=True)
class ConfigPoint:
    """One candidate configuration with its latency (s) and energy per response (J)."""

    gpu: str | None
    num_gpus: int | None
    batch_size: int | None
    parallelism: str | None
    precision: str | None
    load_format: str | None
    source: str | None
    run_dir: str | None
    latency: float
    energy: float

    @classmethod
    def from_row(cls, row: dict[str, Any], latency_col: str, energy_col: str) -> ConfigPoint:
        fields = {c: row.get(c) for c in CONFIG_COLS}
        return cls(**fields, latency=float(row[latency_col]), energy=float(row[energy_col]))

    def config(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in CONFIG_COLS}

    def describe(self) -> str:
        weights = " [dummy weights]" if self.load_format == "dummy" else ""
        return f"{self.gpu} ×{self.num_gpus}, batch {self.batch_size}, {self.parallelism}, {self.precision}{weights}"


@dataclass(frozen=True)
class Recommendation:
    task: str
    model: str
    latency_metric: str
    latency_target_s: float
    config: ConfigPoint  # minimum energy with latency ≤ target
    baseline: ConfigPoint  # minimum latency overall
    candidates: int
    excluded: Exclusions

    @property
    def savings_fraction(self) -> float:
        """1 − E(recommended) / E(minimum-latency config); 0 when they are the same configuration."""
        return 1.0 - self.config.energy / self.baseline.energy

    def to_json(self) -> dict[str, Any]:
        def point(p: ConfigPoint) -> dict[str, Any]:
            # `config`, `latency`, `energy` as at the top level; the config keys also flat for convenience.
            return {**p.config(), "config": p.config(), "latency": p.latency, "energy": p.energy}

        return {
            "task": self.task,
            "model": self.model,
            "latency_metric": self.latency_metric,
            "latency_target": self.latency_target_s,
            "units": {"latency": "s", "energy": "J per response"},
            "config": self.config.config(),
            "latency": self.config.latency,
            "energy": self.config.energy,
            "baseline": point(self.baseline),
            "savings_fraction": self.savings_fraction,
            "candidates": self.candidates,
            "excluded": {**asdict(self.excluded), "total": self.excluded.total},
        }

    def describe(self) -> str:
        c, b = self.config, self.baseline
        # The label vocabulary of the figures (jouleflow.labels): "Median ITL", v2's "Mean TPOT".
        metric = labels.name(self.latency_metric, [c.source, b.source])
        return "\n".join(
            [
                f"{self.task} / {self.model}: target {metric} ≤ {format_duration(self.latency_target_s)}",
                f"  recommended: {c.describe()}: {metric} {format_duration(c.latency)}, {c.energy:.4g} J per response ({c.run_dir})",
                f"  min-latency: {b.describe()}: {metric} {format_duration(b.latency)}, {b.energy:.4g} J per response ({b.run_dir})",
                f"  savings:     {self.savings_fraction:.1%} less energy than the minimum-latency configuration",
                f"  {self.candidates} candidate(s); {self.excluded.describe()}",
            ]
        )


def best_under_target(
    candidates: pl.DataFrame, latency_col: str, target_s: float, energy_col: str = ENERGY_COL
) -> tuple[dict, dict]:
    """(recommended row, baseline row) among usable candidates; TargetUnreachableError when none meets it."""
    if candidates.height == 0:
        raise FrontierError("no usable configuration (all rows excluded)")
    ties = [c for c in _TIE_BREAK if c in candidates.columns]
    baseline = candidates.sort([latency_col, energy_col, *ties], nulls_last=True).row(0, named=True)
    feasible = candidates.filter(pl.col(latency_col) <= target_s)
    if feasible.height == 0:
        best = float(baseline[latency_col])
        raise TargetUnreachableError(
            f"latency target {format_duration(target_s)} ({latency_col}) is unreachable: "
            f"the fastest configuration achieves {format_duration(best)}",
            target_s,
            best,
        )
    chosen = feasible.sort([energy_col, latency_col, *ties], nulls_last=True).row(0, named=True)
    return chosen, baseline


def published_rows(
    published: pl.DataFrame | None,
    task: str,
    models: Sequence[str],
    metric: str,
    precision: str | None = None,
) -> pl.DataFrame:
    """ML.ENERGY's published configurations of `models` on `task` (of `precision`, any case) that can be
    drawn next to a campaign's: ok, valid, positive `metric` and energy. None or data without the
    metric give no rows. The frontier figures and the campaign page overlay these same rows."""
    if published is None or metric not in published.columns or ENERGY_COL not in published.columns:
        return pl.DataFrame()
    cond = (pl.col("task") == task) & pl.col("model").is_in(list(models))
    if precision and "precision" in published.columns:
        cond = cond & (pl.col("precision").str.to_lowercase() == precision.lower())
    return usable_rows(published.filter(cond), metric)[0]


def select_group(df: pl.DataFrame, task: str, model: str, precision: str | None = None) -> pl.DataFrame:
    """Rows of one (task, model[, precision]); FrontierError listing what exists when absent."""
    require_columns(df, ["task", "model"], "summary")
    tasks = sorted(df.get_column("task").drop_nulls().unique().to_list())
    if task not in tasks:
        raise FrontierError(f"unknown task {task!r}; the summary has: {', '.join(tasks) or '(none)'}")
    in_task = df.filter(pl.col("task") == task)
    models = sorted(in_task.get_column("model").drop_nulls().unique().to_list())
    if model not in models:
        raise FrontierError(
            f"unknown model {model!r} for task {task!r}; the summary has: {', '.join(models)}"
        )
    rows = in_task.filter(pl.col("model") == model)
    if precision is not None:
        precisions = sorted(rows.get_column("precision").drop_nulls().unique().to_list())
        if precision not in precisions:
            raise FrontierError(
                f"no {precision!r} rows for {task!r} / {model!r}; precisions: {', '.join(precisions)}"
            )
        rows = rows.filter(pl.col("precision") == precision)
    return rows


def recommend(
    df: pl.DataFrame,
    task: str,
    model: str,
    latency_target_s: float,
    latency_metric: str | None = None,
    *,
    precision: str | None = None,
    energy_col: str = ENERGY_COL,
) -> Recommendation:
    """Minimum-energy configuration of (task, model) with latency ≤ target, and its savings."""
    rows = select_group(df, task, model, precision)
    latency_col = (
        resolve_latency_metric(latency_metric) if latency_metric else default_latency_metric(task, rows)
    )
    candidates, excluded = usable_rows(rows, latency_col, energy_col)
    if candidates.height == 0:
        raise FrontierError(
            f"{task} / {model}: no usable configuration for {latency_col}; {excluded.describe()}"
        )
    chosen, baseline = best_under_target(candidates, latency_col, latency_target_s, energy_col)
    return Recommendation(
        task=task,
        model=model,
        latency_metric=latency_col,
        latency_target_s=latency_target_s,
        config=ConfigPoint.from_row(chosen, latency_col, energy_col),
        baseline=ConfigPoint.from_row(baseline, latency_col, energy_col),
        candidates=candidates.height,
        excluded=excluded,
    )
