"""`jouleflow import mlenergy PATH`: ML.ENERGY's published results → jouleflow's summary table.

The layout is detected: a v3 leaderboard data directory (index.json + tasks/) or a v2 tree of
per-configuration JSON files (task directories with schema.yaml + models.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from jouleflow import traces
from jouleflow.importers.common import PublishedDataError
from jouleflow.importers.mlenergy_v2 import is_v2_tree, read_v2
from jouleflow.importers.mlenergy_v3 import is_v3_dir, read_v3

_SORT_KEYS = ("source", "task", "model", "gpu", "num_gpus", "batch_size", "parallelism", "run_dir")


def detect_layout(path: str | Path) -> str:
    """'v2' or 'v3'; PublishedDataError naming the path when it is neither (or missing)."""
    root = Path(path)
    if not root.exists():
        raise PublishedDataError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise PublishedDataError(f"{root}: expected a directory (ML.ENERGY v2 tree or v3 data dir)")
    if is_v3_dir(root):
        return "v3"
    if is_v2_tree(root):
        return "v2"
    raise PublishedDataError(
        f"{root}: not an ML.ENERGY results layout (expected a v3 data dir with index.json and tasks/, "
        "or a v2 tree with <task>/schema.yaml, <task>/models.json and <GPU>/<org>/<model>/bs*.json)"
    )


def _sort_key(row: dict[str, Any]) -> tuple:
    return tuple((row.get(k) is None, row.get(k) if row.get(k) is not None else 0) for k in _SORT_KEYS)


def import_mlenergy(path: str | Path) -> pa.Table:
    """Read a published ML.ENERGY v2 or v3 result set into a traces.SUMMARY table (sorted, deterministic)."""
    root = Path(path)
    layout = detect_layout(root)
    rows = read_v3(root) if layout == "v3" else read_v2(root)
    if not rows:
        raise PublishedDataError(f"{root}: the ML.ENERGY {layout} layout holds no configurations")
    rows.sort(key=_sort_key)
    return traces.table_from_rows(rows, traces.SUMMARY)


def import_to_parquet(path: str | Path, out: str | Path) -> pa.Table:
    table = import_mlenergy(path)
    traces.write_table(table, out)
    return table
