"""Campaign config → jobs table: one GridPoint per measured (or bundled) run.

Snakemake builds this at parse time for every invocation (also `snakemake -n` on a 2,000-point
campaign), so the module is stdlib-only and does no per-point I/O beyond one `stat` for bundled
reference runs. The config has already been validated against config/schema/config.schema.yaml
(defaults filled); this module and jouleflow.plan.config_checks add the checks a schema cannot express,
each naming the key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jouleflow import requestsource, tasks
from jouleflow.plan import jobspec
from jouleflow.plan import shared as shared_mode
from jouleflow.plan.gpurequest import GpuRequestError, gpu_request
from jouleflow.plan.parallelism import Parallelism, parse_parallelism
from jouleflow.runkey import at_precision, model_slug

# Bytes per weight, to scale a model's memory need when it is run at another precision.
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}
DIFFUSION_PRECISIONS = ("bf16", "fp16", "fp32")
AXES = ("tasks", "gpus", "parallelism", "batch_sizes", "precisions")


class GridError(ValueError):
    """The config cannot be turned into a grid; the message starts with the config key at fault."""


def default_latency_metric(task: str, modality: str) -> str:
    """The metric analysis uses for the task (jouleflow.tasks); a config task always has a modality."""
    preferences = tasks.latency_preferences(task, modality)
    assert preferences is not None, f"task {task!r}: modality {modality!r}"
    return preferences[0]


@dataclass(frozen=True)
class GridPoint:
    task: str
    model: str  # registry key, usually the HF id
    precision: str
    native_precision: str
    gpu: str
    parallelism: Parallelism
    batch_size: int
    source: str  # reference | measure
    sweep: str
    modality: str

    @property
    def model_slug(self) -> str:
        # A precision other than the checkpoint's own (online quantization) is a different model on disk.
        slug = model_slug(self.model)
        return slug if self.precision == self.native_precision else at_precision(slug, self.precision)

    @property
    def key(self) -> str:
        """`{task}/{model}/{gpu}/{parallelism}/{batch}`: the run's path below `runs/`."""
        return f"{self.task}/{self.model_slug}/{self.gpu}/{self.parallelism.label}/{self.batch_size}"

    @property
    def group(self) -> tuple[str, str, str, str]:
        """Points that differ only in batch size (larger ones are skipped once one is infeasible)."""
        return (self.task, self.model_slug, self.gpu, self.parallelism.label)

    @property
    def num_gpus(self) -> int:
        return self.parallelism.num_gpus


@dataclass(frozen=True)
class Skipped:
    point: GridPoint
    reason: str


@dataclass
class Grid:
    config: Mapping[str, Any]
    base_dir: Path
    points: list[GridPoint] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    by_key: dict[str, GridPoint] = field(default_factory=dict)
    predecessor: dict[str, str] = field(default_factory=dict)  # key → key of the next-smaller batch
    # group name → its points, each group measured on one shared server (plan/shared.py)
    shared: dict[str, list[GridPoint]] = field(default_factory=dict)

    def reference_run(self, point: GridPoint) -> Path:
        return Path(self.config["reference_dir"]) / "runs" / point.key

    def analysis_groups(self) -> list[tuple[str, str]]:
        """(task, model slug) pairs, each one frontier / sweep figure / recommendation group."""
        return sorted({(p.task, p.model_slug) for p in self.points})

    def group_info(self, task: str, slug: str) -> GridPoint:
        return next(p for p in self.points if p.task == task and p.model_slug == slug)

    def latency_metric(self, task: str) -> str:
        metric = self.config["analysis"]["latency_metric"].get(task)
        return metric or default_latency_metric(task, self.config["tasks"][task]["modality"])

    def latency_targets(self, task: str) -> list[str]:
        return [str(t) for t in self.config["analysis"]["latency_targets"].get(task, [])]

    def analysis_targets(self) -> dict[str, dict[str, Any]]:
        """Latency metric and targets of each task that has targets (others get the built-in ones):
        the frontier's --targets file (results/analysis/targets.json)."""
        return {
            task: {"metric": self.latency_metric(task), "targets": self.latency_targets(task)}
            for task in sorted({p.task for p in self.points})
            if self.latency_targets(task)
        }

    def resources(self, point: GridPoint, attempt: int = 1) -> dict[str, Any]:
        """The measurement job's scheduler resources (jobspec.resources) at this attempt."""
        return jobspec.resources(self.config, point, attempt)

    def spec(self, point: GridPoint) -> dict[str, Any]:
        """The job spec of `jouleflow measure llm --config` (jobspec.job_spec), with the run it is
        scheduled after (measured points of a chained group), or the size of its group's shared
        server (plan/shared.py)."""
        spec = jobspec.job_spec(self.config, point)
        if shared_mode.is_shared(self.config, point):
            spec["server_max_num_seqs"] = max(p.batch_size for p in self.shared_group(point))
        elif point.source == "measure":
            spec["after"] = self.predecessor_run(point)
        return spec

    def identity(self, point: GridPoint) -> dict[str, Any]:
        return jobspec.identity_of(self.spec(point), point.source)

    def shared_group(self, point: GridPoint) -> list[GridPoint]:
        """The points measured on the same shared server as this one, by batch size."""
        return self.shared["/".join(point.group)]

    def predecessor_run(self, point: GridPoint) -> str | None:
        """Run directory of the next-smaller batch size of the point's group, when chained."""
        pred = self.predecessor.get(point.key)
        return f"{self.config['results_dir']}/runs/{pred}" if pred else None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _matches(point: GridPoint, rule: Mapping[str, Any]) -> bool:
    values = {
        "task": point.task,
        "model": point.model,
        "gpu": point.gpu,
        "parallelism": point.parallelism.label,
        "batch_size": point.batch_size,
        "precision": point.precision,
        "num_gpus": point.num_gpus,
        "source": point.source,
    }
    return all(values[k] in _as_list(v) for k, v in rule.items())


def _sweep_axes(sweep: Mapping[str, Any], model: str, where: str) -> dict[str, list[Any]]:
    axes = {axis: list(sweep.get(axis) or []) for axis in AXES}
    override = sweep.get("overrides", {}).get(model, {})
    axes.update({axis: list(values) for axis, values in override.items()})
    for axis in ("tasks", "gpus", "parallelism", "batch_sizes"):
        if not axes[axis]:
            key = f"{where}.overrides.{model}.{axis}" if axis in override else f"{where}.{axis}"
            raise GridError(f"{key}: the list is empty; give at least one value")
    return axes


def _check_registry(config: Mapping[str, Any]) -> None:
    for name, model in config["models"].items():
        prec = model["precision"]
        if prec not in BYTES_PER_PARAM:
            raise GridError(
                f"models.{name}.precision: unknown precision {prec!r} (known: {', '.join(BYTES_PER_PARAM)})"
            )
    for name, model in config["models"].items():
        problem = jobspec.template_error(model.get("path"))
        if problem:
            raise GridError(f"models.{name}.path: {problem}")
    for name, task in config["tasks"].items():
        problem = jobspec.template_error(task["generation"].get("prompts"))
        if problem:
            raise GridError(f"tasks.{name}.generation.prompts: {problem}")
        if task["modality"] == "diffusion":
            if "request_set" in task:
                raise GridError(f"tasks.{name}.request_set: a diffusion task takes `generation:` instead")
            continue
        if "request_set" not in task:
            raise GridError(f"tasks.{name}.request_set: required for an llm task")
        rs = task["request_set"]
        for key in ("path", "output_lengths"):
            problem = jobspec.template_error(rs.get(key))
            if problem:
                raise GridError(f"tasks.{name}.request_set.{key}: {problem}")
        if rs["kind"] == "parquet" and not rs.get("path"):
            raise GridError(f"tasks.{name}.request_set.path: required when kind is 'parquet'")
        if rs["kind"] == "synthetic" and not (rs.get("output_lengths") or rs.get("fixed_output_len")):
            raise GridError(
                f"tasks.{name}.request_set: synthetic requests need output_lengths (a histogram file) "
                "or fixed_output_len"
            )


def _check_slurm(config: Mapping[str, Any]) -> None:
    """The `slurm` section must give a valid GPU request for every catalogue GPU type."""
    settings = config.get("slurm") or {}
    for name in settings.get("gpu_types") or {}:
        if name not in config["gpus"]:
            raise GridError(f"slurm.gpu_types.{name}: unknown GPU type {name!r} (no entry under `gpus:`)")
    for name in config["gpus"]:
        try:
            gpu_request(1, name, settings)
        except GpuRequestError as exc:
            raise GridError(str(exc).removeprefix("config ")) from None


def _memory_skip(config: Mapping[str, Any], point: GridPoint) -> str | None:
    """Reason to skip a point whose weights cannot fit, or None (also when the need is unknown)."""
    model = config["models"][point.model]
    gpu = config["gpus"][point.gpu]
    scale = BYTES_PER_PARAM[point.precision] / BYTES_PER_PARAM[point.native_precision]
    if model.get("memory_gb") is not None:
        need = model["memory_gb"] * scale
    elif model.get("total_params_b") is not None:
        need = model["total_params_b"] * BYTES_PER_PARAM[point.precision]
    else:
        return None
    per_replica = point.parallelism.gpus_per_replica
    have = gpu["memory_gb"] * per_replica
    if need > have:
        return (
            f"weights need {need:.1f} GB at {point.precision} but {per_replica} × {point.gpu} "
            f"hold {have:.0f} GB (models.{point.model}.memory_gb, gpus.{point.gpu}.memory_gb)"
        )
    return None


def _expand_sweep(config: Mapping[str, Any], index: int, sweep: Mapping[str, Any]) -> Iterable[GridPoint]:
    name = sweep.get("name") or f"sweeps[{index}]"
    where = f"sweeps[{index}]"
    source = sweep.get("source") or config["source"]
    for key in sweep.get("overrides", {}):
        if key not in sweep["models"]:
            raise GridError(f"{where}.overrides.{key}: model is not in {where}.models")
    for m_index, model in enumerate(sweep["models"]):
        if model not in config["models"]:
            raise GridError(f"{where}.models[{m_index}]: unknown model {model!r} (no entry under `models:`)")
        entry = config["models"][model]
        axes = _sweep_axes(sweep, model, where)
        for task in axes["tasks"]:
            if task not in config["tasks"]:
                raise GridError(f"{where}.tasks: unknown task {task!r} (no entry under `tasks:`)")
            if config["tasks"][task]["modality"] != entry["modality"]:
                raise GridError(
                    f"{where}.tasks: task {task!r} is {config['tasks'][task]['modality']} "
                    f"but model {model!r} is {entry['modality']}"
                )
        for gpu in axes["gpus"]:
            if gpu not in config["gpus"]:
                raise GridError(f"{where}.gpus: unknown GPU type {gpu!r} (no entry under `gpus:`)")
        pars = []
        for label in axes["parallelism"]:
            try:
                pars.append(parse_parallelism(label))
            except ValueError as exc:
                raise GridError(f"{where}.parallelism: {exc}") from None
        for prec in axes["precisions"]:
            if prec not in BYTES_PER_PARAM:
                raise GridError(f"{where}.precisions: unknown precision {prec!r}")
            if entry["modality"] == "diffusion" and prec not in DIFFUSION_PRECISIONS:
                raise GridError(
                    f"{where}.precisions: {prec!r} for diffusion model {model!r} "
                    f"(xDiT runs {', '.join(DIFFUSION_PRECISIONS)})"
                )
        for par in pars:
            llm_parts = par.tensor * par.pipeline * par.data > 1 or par.expert
            xdit_parts = par.ulysses * par.ring * par.cfg * par.pipefusion > 1
            if (entry["modality"] == "llm" and xdit_parts) or (
                entry["modality"] == "diffusion" and llm_parts
            ):
                raise GridError(
                    f"{where}.parallelism: {par.label!r} does not apply to {entry['modality']} model {model!r}"
                )
        precisions = axes["precisions"] or [entry["precision"]]
        for task, gpu, par, batch, prec in itertools.product(
            axes["tasks"], axes["gpus"], pars, axes["batch_sizes"], precisions
        ):
            per_node = config["gpus"][gpu]["per_node"]
            if par.num_gpus > per_node:
                raise GridError(
                    f"{where}.parallelism: {par.label!r} needs {par.num_gpus} GPUs but a {gpu} node "
                    f"has {per_node} (gpus.{gpu}.per_node); jobs span one node"
                )
            yield GridPoint(
                task=task,
                model=model,
                precision=prec,
                native_precision=entry["precision"],
                gpu=gpu,
                parallelism=par,
                batch_size=int(batch),
                source=source,
                sweep=name,
                modality=entry["modality"],
            )


def build_grid(config: Mapping[str, Any], base_dir: str | Path = ".") -> Grid:
    """Expand the sweeps (a union of products), apply filters and feasibility, check bundled runs."""
    from jouleflow.plan import config_checks  # it imports this module's GridError

    base_dir = Path(base_dir)
    config_checks.check_config(config)
    _check_registry(config)
    _check_slurm(config)
    grid = Grid(config=config, base_dir=base_dir)
    seen: dict[str, GridPoint] = {}
    checked: set[str] = set()
    for index, sweep in enumerate(config["sweeps"]):
        for point in _expand_sweep(config, index, sweep):
            prior = seen.get(point.key)
            if prior is not None:
                if prior.source != point.source:
                    raise GridError(
                        f"sweeps: run {point.key} is in {prior.sweep} (source {prior.source}) and in "
                        f"{point.sweep} (source {point.source}); give it one source"
                    )
                continue  # a union: the same point from two sweeps is one run
            seen[point.key] = point
    filters = config["filters"]
    for point in seen.values():
        reason = None
        if filters["include"] and not any(_matches(point, r) for r in filters["include"]):
            reason = "not matched by filters.include"
        else:
            hit = next((i for i, r in enumerate(filters["exclude"]) if _matches(point, r)), None)
            if hit is not None:
                reason = f"excluded by filters.exclude[{hit}]"
        reason = reason or _memory_skip(config, point)
        if reason:
            grid.skipped.append(Skipped(point, reason))
            continue
        if point.source == "reference":
            bundled = base_dir / grid.reference_run(point) / "run.json"
            if not bundled.is_file():
                raise GridError(
                    f"{point.sweep}: source is 'reference' but the bundle has no run {point.key} "
                    f"(no {bundled}); set `source: measure` on this sweep to measure it"
                )
        else:
            _check_request_files(config, point, base_dir, checked)
        grid.points.append(point)
        grid.by_key[point.key] = point
    config_checks.check_points(config, grid.points, base_dir)
    for key, what in shared_mode.config_problems(config, grid.points):
        raise GridError(f"{key}: {what}")
    grid.shared = shared_mode.shared_groups(config, grid.points)
    _link_predecessors(grid)
    return grid


def _check_request_files(
    config: Mapping[str, Any], point: GridPoint, base_dir: Path, checked: set[str]
) -> None:
    """A measured point's request-set or histogram file must exist (one stat per distinct file), and
    an hf source must be usable (a preset's unset revision fails here, where the task is measured)."""
    task = config["tasks"][point.task]
    rs = task.get("request_set") or {}
    if rs.get("kind") == "hf" and f"hf:{point.task}" not in checked:
        for key, what in requestsource.hf_problems(rs, task.get("endpoint") or "chat"):
            raise GridError(f"tasks.{point.task}.request_set.{key}: {what} (needed by run {point.key})")
        checked.add(f"hf:{point.task}")
    for key, what in requestsource.media_problems(rs, task.get("endpoint") or "chat"):
        raise GridError(f"tasks.{point.task}.request_set.{key}: {what} (needed by run {point.key})")
    for key, path in jobspec.request_files(config, point).items():
        if path in checked:
            continue
        if not (base_dir / path).is_file():
            raise GridError(f"{key}: {path} does not exist (needed by run {point.key})")
        checked.add(path)


def _link_predecessors(grid: Grid) -> None:
    """Chain measured points of a group by batch size, so a larger batch waits for the smaller one."""
    if not grid.config["measurement"]["skip_larger_after_infeasible"]:
        return
    groups: dict[tuple[str, str, str, str], list[GridPoint]] = {}
    for point in grid.points:
        if point.source == "measure" and not shared_mode.is_shared(grid.config, point):
            groups.setdefault(point.group, []).append(point)
    for members in groups.values():
        members.sort(key=lambda p: p.batch_size)
        for smaller, larger in itertools.pairwise(members):
            grid.predecessor[larger.key] = smaller.key
