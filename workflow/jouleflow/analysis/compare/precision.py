"""FP8 vs BF16 by batch-size bucket.

Each FP8 configuration is paired with a BF16 one (precision bf16/bfloat16) at the same task, GPU
type, GPU count, batch size and parallelism. Two kinds of FP8 configuration:

- an FP8 checkpoint, model id ending in `-FP8` (ML.ENERGY's naming): its BF16 sibling is the same
  id without the suffix;
- a row whose precision is FP8 (`fp8`, `float8`, ...: common.FP8_NAMES), as jouleflow's sweeps with
  `precisions: [bf16, fp8]` write it (vLLM quantizes online; the model id is unchanged): its BF16
  sibling is the same id at bf16. Its `fp8_model` is `<model>@fp8`, as in the run key.

A row that fits both (an `-FP8` id at precision fp8) pairs once, by its id when that sibling
exists. Pairs fall into batch-size buckets with inclusive bounds (e.g. 8-16, 17-64, 65-256); per
bucket: FP8 wins (lower metric), and min / median / max of FP8 / BF16 - 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import (
    FP8_NAMES,
    ChangeStats,
    CompareError,
    NoComparablePairs,
    bf16_sibling,
    change_stats,
    collapse_repeats,
    filter_tasks,
    gpus_column,
    gpus_note,
    is_bf16,
    is_fp8,
    metric_column,
    relative_change,
    require_columns,
    same_gpus,
    usable_rows,
    with_config_keys,
)
from jouleflow.runkey import at_precision

PAIR_KEYS = ("task", "gpu", "num_gpus", "batch_size", "parallelism")
TABLE_COLUMNS = (
    "bucket",
    "task",
    "model",
    "fp8_model",
    "gpu",
    "num_gpus",
    "batch_size",
    "parallelism",
    "fp8",
    "bf16",
    "change",
    "fp8_wins",
    "same_gpus",
)


@dataclass(frozen=True)
class Bucket:
    lo: int
    hi: int

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}"

    def contains(self, batch_size: int) -> bool:
        return self.lo <= batch_size <= self.hi


def parse_buckets(text: str | Sequence[str]) -> list[Bucket]:
    """`8-16,17-64,65-256` -> buckets; bounds inclusive, non-overlapping."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    buckets = []
    for item in items:
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", item)
        if not match:
            raise CompareError(f"bucket {item!r} is not a range of batch sizes like 8-16")
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo > hi:
            raise CompareError(f"bucket {item!r} has its lower bound above its upper bound")
        buckets.append(Bucket(lo, hi))
    if not buckets:
        raise CompareError("no buckets given")
    ordered = sorted(buckets, key=lambda b: b.lo)
    for left, right in zip(ordered, ordered[1:], strict=False):
        if right.lo <= left.hi:
            raise CompareError(f"buckets {left.label} and {right.label} overlap")
    return buckets


@dataclass(frozen=True)
class PrecisionPair:
    task: str
    model: str  # the BF16 model id
    fp8_model: str  # `org/Name-FP8`, or `org/Name@fp8` for the same id at an FP8 precision
    gpu: str
    num_gpus: int
    batch_size: int
    parallelism: str
    fp8: float
    bf16: float
    same_gpus: bool | None = None  # both measured on the same physical GPUs (None: unknown)

    @property
    def change(self) -> float:
        return relative_change(self.fp8, self.bf16)

    def as_row(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model,
            "fp8_model": self.fp8_model,
            "gpu": self.gpu,
            "num_gpus": self.num_gpus,
            "batch_size": self.batch_size,
            "parallelism": self.parallelism,
            "fp8": self.fp8,
            "bf16": self.bf16,
            "change": self.change,
            "fp8_wins": self.change < 0,
            "same_gpus": self.same_gpus,
        }


@dataclass
class PrecisionResult:
    metric_column: str
    buckets: list[Bucket]
    pairs: list[PrecisionPair]

    def bucket_pairs(self, bucket: Bucket) -> list[PrecisionPair]:
        return [p for p in self.pairs if bucket.contains(p.batch_size)]

    def bucket_stats(self) -> list[tuple[Bucket, ChangeStats]]:
        return [(b, change_stats([p.change for p in self.bucket_pairs(b)])) for b in self.buckets]

    @property
    def outside(self) -> int:
        """Pairs whose batch size is in no bucket."""
        return sum(1 for p in self.pairs if not any(b.contains(p.batch_size) for b in self.buckets))

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric_column,
            "buckets": [
                {
                    "range": b.label,
                    "lo": b.lo,
                    "hi": b.hi,
                    **s.as_dict(),
                    "pairs": [p.as_row() for p in self.bucket_pairs(b)],
                }
                for b, s in self.bucket_stats()
            ],
            "pairs_outside_buckets": self.outside,
        }

    def rows(self) -> list[dict[str, Any]]:
        return [{"bucket": b.label, **p.as_row()} for b in self.buckets for p in self.bucket_pairs(b)]

    def markdown(self) -> str:
        lines = [
            f"# FP8 vs BF16: {self.metric_column}\n",
            "Each FP8 configuration (an `-FP8` model id, or `model@fp8`: the same id at an FP8 precision) "
            "against its BF16 sibling at the same task, GPU type, GPU count, batch size and parallelism. "
            "Change = FP8/BF16 - 1; negative means FP8 is lower. Bucket bounds are inclusive.\n",
        ]
        stats = [{"range": b.label, **s.as_dict()} for b, s in self.bucket_stats()]
        lines.append(
            output.markdown_table(
                stats,
                ["range", "wins", "total", "median_change", "min_change", "max_change"],
                {
                    "wins": "int",
                    "total": "int",
                    "median_change": "pct",
                    "min_change": "pct",
                    "max_change": "pct",
                },
                {"range": "batch size", "wins": "FP8 wins", **output.CHANGE_HEADERS},
            )
        )
        if self.outside:
            lines.append(f"\n{self.outside} pair(s) have a batch size outside every bucket.\n")
        lines.append("\n## Pairs\n")
        rows = self.rows()
        flags = [r["same_gpus"] for r in rows]
        if note := gpus_note(flags):
            lines.append(note)
        shown = [c for c in TABLE_COLUMNS if c not in ("parallelism", "fp8_wins", "same_gpus")]
        lines.append(
            output.markdown_table(
                rows,
                [*shown, *gpus_column(flags)],  # the CSV's, less parallelism and wins
                {"num_gpus": "int", "batch_size": "int", "fp8": "g", "bf16": "g", "change": "pct"},
                {"same_gpus": "same GPUs"},
            )
        )
        return "\n".join(lines)


def pair_fp8_bf16(
    df: pl.DataFrame,
    metric: str,
    tasks: Sequence[str] | None = None,
    exclude_models: Sequence[str] = (),
    min_batch: int | None = None,
) -> list[PrecisionPair]:
    """All FP8/BF16 pairs for `metric` (a summary column). Repeated runs of a configuration are averaged."""
    require_columns(df, ["task", "model", "precision", "gpu", "num_gpus", "batch_size", metric], "precision")
    df = usable_rows(filter_tasks(with_config_keys(df), tasks), [metric])
    if min_batch is not None:
        df = df.filter(pl.col("batch_size") >= min_batch)
    excluded = set(exclude_models)
    df = df.filter(~pl.col("model").is_in(list(excluded)))
    configs = collapse_repeats(df, ["model", "precision", *PAIR_KEYS], [metric]).to_dicts()
    bf16 = {(r["model"], *(r[k] for k in PAIR_KEYS)): r for r in configs if is_bf16(r["precision"])}
    pairs = []
    for row in configs:
        match = _bf16_base(row, bf16, excluded)
        if match is None:
            continue
        base, fp8_model = match
        pairs.append(
            PrecisionPair(
                task=row["task"],
                model=base["model"],
                fp8_model=fp8_model,
                gpu=row["gpu"],
                num_gpus=int(row["num_gpus"]),
                batch_size=int(row["batch_size"]),
                parallelism=row["parallelism"],
                fp8=float(row[metric]),
                bf16=float(base[metric]),
                same_gpus=same_gpus(row, base),
            )
        )
    return sorted(
        pairs, key=lambda p: (p.batch_size, p.task, p.model, p.gpu, p.num_gpus, p.parallelism, p.fp8_model)
    )


def _bf16_base(
    row: dict[str, Any], bf16: dict[tuple, dict[str, Any]], excluded: set[str]
) -> tuple[dict[str, Any], str] | None:
    """The BF16 configuration an FP8 one is compared with, and the FP8 side's label; None if none.

    By id first (`org/Name-FP8` -> `org/Name` at bf16), else by precision (an FP8 row -> the same id
    at bf16): one base per row, so a row that fits both rules counts once. A BF16 row has no base
    by precision and an id without the suffix none by id, so no row pairs with itself.
    """
    at = tuple(row[k] for k in PAIR_KEYS)
    sibling = bf16_sibling(row["model"])
    if sibling is not None and sibling not in excluded:
        base = bf16.get((sibling, *at))
        if base is not None:
            return base, row["model"]
    if is_fp8(row["precision"]):
        base = bf16.get((row["model"], *at))
        if base is not None:
            return base, at_precision(row["model"], row["precision"])
    return None


def _fp8_candidates(df: pl.DataFrame) -> list[str]:
    """The FP8 configurations a summary has, for the message when none pairs: `-FP8` ids and
    `<model>@<fp8 precision>` for the rows at an FP8 precision."""
    if "model" not in df.columns:
        return []
    rows = df.select([c for c in ("model", "precision") if c in df.columns]).unique().to_dicts()
    names = set()
    for r in rows:
        model, precision = r["model"], r.get("precision")
        if model is None:
            continue
        if bf16_sibling(model):
            names.add(model)
        elif is_fp8(precision):
            names.add(at_precision(model, precision))
    return sorted(names)


def compare_precision(
    df: pl.DataFrame,
    buckets: Sequence[Bucket],
    metric: str = "energy_per_token",
    tasks: Sequence[str] | None = None,
    exclude_models: Sequence[str] = (),
    min_batch: int | None = None,
) -> PrecisionResult:
    """FP8 vs BF16 per batch-size bucket. See the module docstring."""
    col = metric_column(metric)
    pairs = pair_fp8_bf16(df, col, tasks, exclude_models, min_batch)
    if not pairs:
        fp8_models = _fp8_candidates(df)
        why = (
            f"FP8 models {', '.join(fp8_models)} have no BF16 sibling at the same task, GPU, count, batch and parallelism"
            if fp8_models
            else "the summary has no model whose id ends in -FP8 and no row whose precision is FP8 "
            f"({', '.join(sorted(FP8_NAMES))})"
        )
        if exclude_models or min_batch is not None or tasks:
            why += f" (after filters: tasks={tasks or 'all'}, excluded={list(exclude_models)}, min batch={min_batch})"
        raise NoComparablePairs(f"no comparable pairs: {why}")
    result = PrecisionResult(col, list(buckets), pairs)
    if all(s.total == 0 for _, s in result.bucket_stats()):
        sizes = sorted({p.batch_size for p in pairs})
        raise NoComparablePairs(
            f"no comparable pairs in the buckets {', '.join(b.label for b in buckets)}: "
            f"the {len(pairs)} FP8/BF16 pair(s) have batch sizes {', '.join(map(str, sizes))}"
        )
    return result
