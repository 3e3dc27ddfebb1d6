"""Memory capacity unlocks batch: the largest feasible batch and the minimum energy per GPU count.

Per (task, model, GPU type, GPU count): the largest batch size measured (feasible: a run that did
not fit is not in the usable rows) and the minimum energy with its configuration. Each GPU count
above the smallest is compared with the fewer-GPU counts of the same model: it is flagged when its
minimum energy is lower than the best with fewer GPUs *and* its minimum-energy batch is larger than
any batch that fitted on fewer GPUs, i.e. the extra memory bought a batch size fewer GPUs cannot
hold and that batch paid for the extra GPUs (the v3 study's GPT-OSS 120B on H100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from jouleflow.analysis.compare import output
from jouleflow.analysis.compare.common import NoComparablePairs, metric_column
from jouleflow.analysis.compare.minimum import config_label, minimum_per, prepare

GROUP = ("task", "model", "gpu")
TABLE_COLUMNS = (
    "task",
    "model",
    "gpu",
    "num_gpus",
    "max_batch",
    "configs",
    "min_energy",
    "min_energy_batch",
    "min_energy_config",
    "fewer_gpus",
    "fewer_min_energy",
    "fewer_max_batch",
    "change",
    "batch_unlocked",
    "more_gpus_lower_energy_by_batch",
)
FORMATS = {
    "num_gpus": "int", "max_batch": "int", "configs": "int", "min_energy": "g", "min_energy_batch": "int",
    "fewer_gpus": "int", "fewer_min_energy": "g", "fewer_max_batch": "int", "change": "pct",
}  # fmt: skip


@dataclass
class MemoryBatchResult:
    energy_column: str
    rows_: list[dict[str, Any]]

    def rows(self) -> list[dict[str, Any]]:
        return self.rows_

    def cases(self) -> list[dict[str, Any]]:
        """Rows that have fewer-GPU counts to compare with."""
        return [r for r in self.rows_ if r["fewer_gpus"] is not None]

    def flagged(self) -> list[dict[str, Any]]:
        return [r for r in self.rows_ if r["more_gpus_lower_energy_by_batch"]]

    def summary(self) -> dict[str, Any]:
        cases = self.cases()
        return {
            "energy_metric": self.energy_column,
            "cases": len(cases),
            "lower_energy": sum(1 for r in cases if r["change"] < 0),
            "batch_unlocked": sum(1 for r in cases if r["batch_unlocked"]),
            "flagged": len(self.flagged()),
            "flagged_cases": self.flagged(),
            "rows": self.rows_,
        }

    def markdown(self) -> str:
        s = self.summary()
        cols = ["task", "model", "gpu", "num_gpus", "max_batch", "min_energy", "min_energy_config", "fewer_gpus",
                "fewer_max_batch", "fewer_min_energy", "change"]  # fmt: skip
        headers = {"max_batch": "max batch", "min_energy": f"min {self.energy_column}", "min_energy_config": "at",
                   "fewer_gpus": "fewer GPUs", "fewer_max_batch": "their max batch",
                   "fewer_min_energy": "their min energy", "change": "change"}  # fmt: skip
        return "\n".join(
            [
                "# Memory capacity unlocks batch\n",
                f"Per task, model, GPU type and count: the largest measured batch and the minimum {self.energy_column}. "
                "Flagged: more GPUs give less energy than the best with fewer GPUs, at a batch size fewer GPUs "
                "could not fit.\n",
                f"{s['cases']} GPU-count step(s) (vs the best with fewer GPUs): energy lower in {s['lower_energy']}, "
                f"a larger batch in {s['batch_unlocked']}, both (flagged) in {s['flagged']}.\n",
                "\n## Flagged\n",
                output.markdown_table(self.flagged(), cols, FORMATS, headers),
                "\n## All\n",
                output.markdown_table(self.rows_, [*cols, "more_gpus_lower_energy_by_batch"], FORMATS,
                                      {**headers, "more_gpus_lower_energy_by_batch": "flagged"}),
            ]
        )  # fmt: skip


def compare_memory_batch(
    df: pl.DataFrame,
    energy: str = "energy_per_response",
    tasks: Sequence[str] | None = None,
    gpu: str | None = None,
) -> MemoryBatchResult:
    """Largest batch and minimum energy per GPU count, and the counts where memory pays off."""
    en = metric_column(energy, "energy")
    configs = prepare(df, en, "memory-batch", tasks=tasks, gpu=gpu)
    if configs.height == 0:
        raise NoComparablePairs(f"no comparable pairs: no configuration has a positive {en}")
    per_count = (
        configs.group_by([*GROUP, "num_gpus"]).agg(pl.col("batch_size").max().alias("max_batch"), pl.len().alias("configs"))
    )  # fmt: skip
    best = {
        (r["task"], r["model"], r["gpu"], r["num_gpus"]): r
        for r in minimum_per(configs, [*GROUP, "num_gpus"], en).to_dicts()
    }
    rows = []
    history: dict[tuple, list[dict[str, Any]]] = {}
    for r in per_count.sort([*GROUP, "num_gpus"]).to_dicts():
        key = (r["task"], r["model"], r["gpu"])
        b = best[(*key, r["num_gpus"])]
        row = {
            **{k: r[k] for k in (*GROUP, "num_gpus", "max_batch", "configs")},
            "min_energy": b[en],
            "min_energy_batch": b["batch_size"],
            "min_energy_config": config_label(b),
        }
        fewer = history.setdefault(key, [])
        if fewer:
            base = min(fewer, key=lambda x: (x["min_energy"], x["num_gpus"]))
            fewer_max_batch = max(x["max_batch"] for x in fewer)
            change = row["min_energy"] / base["min_energy"] - 1.0
            unlocked = row["min_energy_batch"] > fewer_max_batch
            row.update(fewer_gpus=base["num_gpus"], fewer_min_energy=base["min_energy"],
                       fewer_max_batch=fewer_max_batch, change=change, batch_unlocked=unlocked,
                       more_gpus_lower_energy_by_batch=change < 0 and unlocked)  # fmt: skip
        else:
            row.update(fewer_gpus=None, fewer_min_energy=None, fewer_max_batch=None, change=None,
                       batch_unlocked=None, more_gpus_lower_energy_by_batch=False)  # fmt: skip
        fewer.append(row)
        rows.append(row)
    return MemoryBatchResult(en, rows)
