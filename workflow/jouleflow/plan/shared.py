"""Campaign mode `measurement.shared_server`: one vLLM server per group of measured LLM points.

A group is the points that differ only in batch size (task, model, GPU, parallelism). With the mode
on, one pipeline job per group starts one vLLM server with `--max-num-seqs` = the group's largest
batch size and jouleflow's batch-limit scheduler, and measures every batch size on it, each as its
own ordinary run directory (measure/reuse.py; `jouleflow campaign measure-shared`). Its fidelity
against dedicated servers is measured in docs/method.md; it needs a fixed CUDA-graph capture range
(`measurement.cudagraph_max_capture`), so that every batch size runs the engine configuration a
dedicated server of that size would.

A shared point's job spec carries `server_max_num_seqs` (the group's largest batch size) and no
`after`: the group's job finds the largest batch size that fits itself (largest first, down).
Diffusion points and other engines keep one job per point.

The sweep measures into the group's own store, `<results>/shared/<group>/runs/<batch>`, which
Snakemake does not own, and then links each finished point into its run directory. Snakemake
deletes the outputs of a job that ends in error (a cancelled or killed invocation), also update()
ones: the store keeps every point measured before that, and the next invocation links them again and
measures only what is missing.

Stdlib + traces only (parsed per Snakemake run).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jouleflow.plan.grid import GridPoint


def enabled(config: Mapping[str, Any]) -> bool:
    return bool(config["measurement"].get("shared_server"))


def is_shared(config: Mapping[str, Any], point: GridPoint) -> bool:
    """Measured on its group's shared server: measured, LLM, vLLM, and the mode on."""
    engine = config["models"][point.model].get("engine") or "vllm"
    return enabled(config) and point.source == "measure" and point.modality == "llm" and engine == "vllm"


def shared_groups(config: Mapping[str, Any], points: list[GridPoint]) -> dict[str, list[GridPoint]]:
    """Group name (`task/model/gpu/parallelism`) -> its shared points by batch size, in grid order."""
    groups: dict[str, list[GridPoint]] = {}
    for point in points:
        if is_shared(config, point):
            groups.setdefault("/".join(point.group), []).append(point)
    return {name: sorted(members, key=lambda p: p.batch_size) for name, members in groups.items()}


def rule_name(group: str) -> str:
    """The group's Snakemake rule name: `measure_shared_` + the group with non-word characters as `_`."""
    return "measure_shared_" + re.sub(r"\W", "_", group)


def config_problems(config: Mapping[str, Any], points: list[GridPoint]) -> list[tuple[str, str]]:
    """(config key, what is wrong) when the mode cannot be used as configured."""
    if not enabled(config) or not any(is_shared(config, p) for p in points):
        return []
    if config["measurement"].get("cudagraph_max_capture") is None:
        return [
            (
                "measurement.cudagraph_max_capture",
                "must be set with measurement.shared_server: vLLM's default capture range follows"
                " --max-num-seqs, so a shared server would run the smaller batch sizes with another"
                " engine configuration than a dedicated one (docs/method.md); 512 is vLLM's largest default",
            )
        ]
    return []


def store_dir(work_dir: str | Path, run_dir: str | Path) -> Path:
    """Where the group's sweep keeps a point: `<work dir>/runs/<batch>`."""
    return Path(work_dir) / "runs" / Path(run_dir).name


def publish(store: Path, run_dir: Path) -> str:
    """Put the stored point in its run directory (hard links, a copy across file systems); returns
    what was done. A run directory already holding this very run is left alone; a failed attempt
    there is moved aside first (`<batch>.failed-<time>`); any other finished run is refused."""
    from jouleflow.plan.runguard import StaleRunError, archive_failed, run_status
    from jouleflow.traces import RUN_JSON, is_complete_run

    if is_complete_run(run_dir):
        if (run_dir / RUN_JSON).read_bytes() == (store / RUN_JSON).read_bytes():
            return f"{run_dir}: the stored run is already in place"
        if run_status(run_dir)[0] != "failed":
            raise StaleRunError(
                f"{run_dir}: holds another finished run than the group's store ({store}); move one away"
            )
        archive_failed(run_dir)
    _link_tree(store, run_dir)
    return f"{run_dir}: linked from {store}"


def _link_tree(src: Path, dst: Path) -> None:
    """dst as a linked copy of the run directory src; run.json last and the whole renamed into
    place, so that a half-made directory never looks finished."""
    from jouleflow.traces import RUN_JSON

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial-link-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=_link, ignore=shutil.ignore_patterns(RUN_JSON))
    _link(src / RUN_JSON, tmp / RUN_JSON)
    if dst.exists():  # an empty leftover (Snakemake makes output directories' parents)
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def adopt_in_place(spec: Any, run_dir: Path, store: Path) -> str | None:
    """A finished run in `run_dir` that the store lacks: linked into the store when it matches its
    spec (then kept like any stored point), refused naming the keys when it does not (StaleRunError).
    A failed one is left to be measured again. None when there is nothing to adopt."""
    from jouleflow.plan.runguard import decide
    from jouleflow.traces import is_complete_run

    if is_complete_run(store) or not is_complete_run(run_dir):
        return None
    if decide(spec, run_dir, "measure").action != "keep":
        return None  # a failed attempt: the store measures the point again, publish moves it aside
    _link_tree(run_dir, store)
    return f"{run_dir}: finished run in place, matches the config; kept and added to the group's store"


def _link(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
