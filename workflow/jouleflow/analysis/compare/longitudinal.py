"""Two campaigns of the same models and GPUs: what changed, configuration by configuration.

Configurations of a baseline and a challenger campaign (e.g. ML.ENERGY Leaderboard v2 with vLLM
0.5.4 and v3 with vLLM 0.11.1, or one's own campaign before and after an engine or driver upgrade)
are paired at the same task, model, GPU type, GPU count, weight precision, parallelism and batch
size, after rewriting both to canonical names (aliases.py). `ignore` relaxes GPU count, precision
and/or parallelism; with precision ignored, an `-FP8` model id pairs with its BF16 sibling, and a
row at precision fp8 of a model id (jouleflow's online quantization) with the same id at bf16.
Precision is otherwise a pairing key, so one campaign's fp8 and bf16 rows of one id stay apart.

Per pair: energy per token, token throughput and power on both sides, and the decomposition
J/token = power / throughput as log ratios, which add exactly:

    ln(E_c / E_b) = ln(P_c / P_b) - ln(T_c / T_b) + residual

The residual is zero when each side's J/token equals its power / throughput (ML.ENERGY's published
data, where both are measured over one window); it is nonzero when a summary measures them over
different windows or averages repeats, and is reported rather than hidden. `driver` names the
factor with the larger log term: the one that moved J/token more.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from jouleflow.analysis.compare import longitudinal_report
from jouleflow.analysis.compare.aliases import Aliases
from jouleflow.analysis.compare.common import (
    CompareError,
    NoComparablePairs,
    bf16_sibling,
    change_stats,
    collapse_repeats,
    require_columns,
    usable_rows,
    with_config_keys,
)

ENERGY, THROUGHPUT, POWER = "energy_per_token_j", "tokens_per_s", "mean_power_w"
VALUES = (ENERGY, THROUGHPUT, POWER)
# Pairing keys in diagnostic order: the first one the campaigns share nothing on is named.
MATCH_KEYS = ("task", "model", "gpu", "num_gpus", "precision", "parallelism", "batch_size")
RELAXABLE = ("num_gpus", "precision", "parallelism")
SIDE_FIELDS = ("model_id", "precision", "num_gpus", "parallelism", "energy", "throughput", "power", "runs")
GROUP_KEYS = ("task", "model", "gpu")
TABLE_COLUMNS = (
    "task", "model", "gpu", "batch_size",
    *(f"baseline_{f}" for f in SIDE_FIELDS), *(f"challenger_{f}" for f in SIDE_FIELDS),
    "energy_change", "throughput_ratio", "power_ratio",
    "log_energy_ratio", "log_power_ratio", "log_throughput_ratio", "log_residual",
    "power_share", "throughput_share", "driver",
)  # fmt: skip


@dataclass(frozen=True)
class Side:
    model_id: str
    precision: str
    num_gpus: int
    parallelism: str
    energy: float
    throughput: float
    power: float
    runs: int


@dataclass(frozen=True)
class Pair:
    task: str
    model: str
    gpu: str
    batch_size: int
    baseline: Side
    challenger: Side

    @property
    def log_energy(self) -> float:
        return math.log(self.challenger.energy / self.baseline.energy)

    @property
    def log_power(self) -> float:
        return math.log(self.challenger.power / self.baseline.power)

    @property
    def log_throughput(self) -> float:
        return math.log(self.challenger.throughput / self.baseline.throughput)

    @property
    def log_residual(self) -> float:
        """What power / throughput leaves unexplained, so the three terms sum to log_energy exactly."""
        return self.log_energy - (self.log_power - self.log_throughput)

    @property
    def driver(self) -> str:
        power, throughput = abs(self.log_power), abs(self.log_throughput)
        if power == throughput:
            return "neither" if power == 0 else "both"
        return "power" if power > throughput else "throughput"

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "task": self.task,
            "model": self.model,
            "gpu": self.gpu,
            "batch_size": self.batch_size,
        }
        for name, side in (("baseline", self.baseline), ("challenger", self.challenger)):
            for f in SIDE_FIELDS:
                row[f"{name}_{f}"] = getattr(side, f)
        log_e = self.log_energy
        row.update(
            energy_change=math.expm1(log_e),
            throughput_ratio=self.challenger.throughput / self.baseline.throughput,
            power_ratio=self.challenger.power / self.baseline.power,
            log_energy_ratio=log_e,
            log_power_ratio=self.log_power,
            log_throughput_ratio=self.log_throughput,
            log_residual=self.log_residual,
            # Shares of the J/token log change (power + throughput + residual = 1); none for no change.
            power_share=self.log_power / log_e if log_e else None,
            throughput_share=-self.log_throughput / log_e if log_e else None,
            driver=self.driver,
        )
        return row


@dataclass
class LongitudinalResult:
    baseline_label: str
    challenger_label: str
    aliases: Aliases
    ignore: tuple[str, ...]
    pairs: list[Pair]
    # (task, model, gpu, side, batch sizes) measured on one side only, within groups both sides have.
    unpaired: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [p.as_row() for p in self.pairs]

    def groups(self) -> list[dict[str, Any]]:
        """Per (task, model, GPU type): pairs, the spread of J/token change, its largest reduction."""
        out = []
        keys = sorted({(p.task, p.model, p.gpu) for p in self.pairs})
        for key in keys:
            pairs = [p for p in self.pairs if (p.task, p.model, p.gpu) == key]
            rows = [p.as_row() for p in pairs]
            stats = change_stats([r["energy_change"] for r in rows])
            best = min(rows, key=lambda r: (r["energy_change"], r["batch_size"]))
            out.append(
                {
                    "task": key[0],
                    "model": key[1],
                    "gpu": key[2],
                    "batch_sizes": [p.batch_size for p in pairs],
                    **stats.as_dict(wins_key="challenger_lower"),
                    "largest_reduction_batch_size": best["batch_size"],
                    "median_throughput_ratio": statistics.median(r["throughput_ratio"] for r in rows),
                    "median_power_ratio": statistics.median(r["power_ratio"] for r in rows),
                    "min_throughput_ratio": min(r["throughput_ratio"] for r in rows),
                    "max_throughput_ratio": max(r["throughput_ratio"] for r in rows),
                    "min_power_ratio": min(r["power_ratio"] for r in rows),
                    "max_power_ratio": max(r["power_ratio"] for r in rows),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        stats = change_stats([r["energy_change"] for r in self.rows()])
        return {
            "baseline": self.baseline_label,
            "challenger": self.challenger_label,
            "aliases": self.aliases.as_dict(),
            "ignored_keys": list(self.ignore),
            **stats.as_dict(wins_key="challenger_lower"),
            "groups": self.groups(),
            "pairs": self.rows(),
            "unpaired": self.unpaired,
        }

    def markdown(self) -> str:
        return longitudinal_report.markdown(self)


def _prepare(df: pl.DataFrame, aliases: Aliases, ignore: Sequence[str], label: str) -> pl.DataFrame:
    require_columns(df, [k for k in MATCH_KEYS if k not in ("precision", "parallelism")] + list(VALUES),
                    f"longitudinal ({label})")  # fmt: skip
    df = with_config_keys(df)
    if "precision" not in df.columns:
        df = df.with_columns(pl.lit("").alias("precision"))
    # model_id keeps each side's own id; model becomes the canonical name pairs are matched on.
    df = aliases.apply(usable_rows(df, VALUES).with_columns(pl.col("model").alias("model_id")))
    if "precision" in ignore:
        # The -FP8 suffix names the precision (as in `compare precision`); ignoring one ignores both.
        # An fp8 row of an unchanged id (online quantization) needs nothing: only its precision differs.
        df = df.with_columns(pl.col("model").map_elements(lambda m: bf16_sibling(m) or m, pl.String))
    # Integer keys of one width on both sides: a join of Int32 with Int64 columns is refused.
    df = df.with_columns(pl.col("num_gpus").cast(pl.Int64), pl.col("batch_size").cast(pl.Int64))
    keys = [*MATCH_KEYS, "model_id"]
    return collapse_repeats(df.select([*keys, *VALUES]), keys, VALUES)


def _filter(df: pl.DataFrame, column: str, names: Sequence[str] | None) -> pl.DataFrame:
    return df.filter(pl.col(column).is_in(list(names))) if names else df


def _check_names(b: pl.DataFrame, c: pl.DataFrame, column: str, names: Sequence[str] | None) -> None:
    if not names:
        return
    present = sorted(set(b[column].to_list()) | set(c[column].to_list()))
    unknown = [n for n in names if n not in present]
    if unknown:
        raise CompareError(
            f"{column}(s) {', '.join(unknown)} in neither campaign (after aliases); present: "
            f"{', '.join(present) or '(none)'}"
        )


def _values(df: pl.DataFrame, key: str, limit: int = 8) -> str:
    vals = sorted({str(v) for v in df[key].to_list()})
    return ", ".join(vals[:limit]) + (f" (+{len(vals) - limit} more)" if len(vals) > limit else "")


def _why_nothing_in_common(b: pl.DataFrame, c: pl.DataFrame, keys: Sequence[str]) -> str:
    """Name the first pairing key on which the two campaigns share no value."""
    if b.is_empty() or c.is_empty():
        empty = [name for name, df in (("baseline", b), ("challenger", c)) if df.is_empty()]
        return (
            f"the {' and '.join(empty)} campaign has no configuration with {', '.join(VALUES)} all positive"
        )
    for i in range(1, len(keys) + 1):
        prefix = list(keys[:i])
        if b.select(prefix).unique().join(c.select(prefix).unique(), on=prefix).is_empty():
            key, before = keys[i - 1], list(keys[: i - 1])
            if before:  # list only the values within the shared groups
                common = b.select(before).unique().join(c.select(before).unique(), on=before)
                b, c = b.join(common, on=before, how="semi"), c.join(common, on=before, how="semi")
            shared = ", ".join(before)
            within = f" within the shared ({shared})" if shared else ""
            return f"no {key} in common{within}: baseline has {_values(b, key)}; challenger has {_values(c, key)}"
    return "no configuration in common"  # unreachable: a shared full key is a pair


def compare_longitudinal(
    baseline: pl.DataFrame,
    challenger: pl.DataFrame,
    aliases: Aliases | None = None,
    ignore: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    gpus: Sequence[str] | None = None,
    baseline_label: str = "baseline",
    challenger_label: str = "challenger",
) -> LongitudinalResult:
    """Pair the two campaigns' configurations and decompose each J/token change. See the module docstring."""
    aliases = aliases or Aliases()
    bad = [k for k in ignore if k not in RELAXABLE]
    if bad:
        raise CompareError(f"cannot ignore {', '.join(bad)}; ignorable keys: {', '.join(RELAXABLE)}")
    ignore = tuple(k for k in RELAXABLE if k in ignore)
    b = _prepare(baseline, aliases, ignore, "baseline")
    c = _prepare(challenger, aliases, ignore, "challenger")
    for column, names in (("task", tasks), ("model", models), ("gpu", gpus)):
        _check_names(b, c, column, names)
        b, c = _filter(b, column, names), _filter(c, column, names)

    keys = [k for k in MATCH_KEYS if k not in ignore]
    # Precision ignored, one id can stand on a side at bf16 and fp8: both sides' precisions break the tie.
    tie = ["precision", "precision_c"] if "precision" in ignore else []
    joined = b.join(c, on=keys, how="inner", suffix="_c").sort([*keys, "model_id", "model_id_c", *tie])
    if joined.is_empty():
        raise NoComparablePairs(f"no comparable pairs: {_why_nothing_in_common(b, c, keys)}")

    def side(r: dict[str, Any], s: str) -> Side:
        # The join keeps one column per pairing key; the challenger's other columns carry the suffix.
        v = {k: r[k if k in keys else f"{k}{s}"] for k in ("precision", "num_gpus", "parallelism")}
        return Side(r[f"model_id{s}"], v["precision"], int(v["num_gpus"]), v["parallelism"],
                    r[f"{ENERGY}{s}"], r[f"{THROUGHPUT}{s}"], r[f"{POWER}{s}"], int(r[f"runs{s}"]))  # fmt: skip

    pairs = [
        Pair(r["task"], r["model"], r["gpu"], int(r["batch_size"]), side(r, ""), side(r, "_c"))
        for r in joined.iter_rows(named=True)
    ]
    return LongitudinalResult(
        baseline_label, challenger_label, aliases, ignore, pairs, _unpaired(b, c, pairs)
    )


def _unpaired(b: pl.DataFrame, c: pl.DataFrame, pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """Batch sizes measured on one side only, in the (task, model, GPU) groups that have pairs."""
    paired = {(p.task, p.model, p.gpu, p.batch_size) for p in pairs}
    out = []
    for key in sorted({(p.task, p.model, p.gpu) for p in pairs}):
        for name, df in (("baseline", b), ("challenger", c)):
            sub = df.filter(
                (pl.col("task") == key[0]) & (pl.col("model") == key[1]) & (pl.col("gpu") == key[2])
            )
            only = sorted(
                {int(x) for x in sub["batch_size"].to_list()} - {k[3] for k in paired if k[:3] == key}
            )
            if only:
                out.append(
                    {"task": key[0], "model": key[1], "gpu": key[2], "side": name, "batch_sizes": only}
                )
    return out
