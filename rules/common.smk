# The grid table, wildcard constraints and input functions shared by all rules.

import hashlib
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The rules call the `jouleflow` CLI; the grid is built in-process from the same source tree.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from jouleflow.plan.grid import GridError, build_grid  # noqa: E402
from jouleflow.plan import gridtable, shared  # noqa: E402
from jouleflow.plan.jobspec import ATTEMPT_SCALED  # noqa: E402
from jouleflow.plan.localgpu import LocalGpuError, resolve_local  # noqa: E402
from jouleflow.plan.runguard import check_campaign, latest_failed_attempt  # noqa: E402
from jouleflow.records import read_run  # noqa: E402
from jouleflow.traces import is_complete_run  # noqa: E402

try:
    # `gpus: [local]` (the quickstart): the type of this machine's GPUs, as if written there.
    config["sweeps"] = resolve_local(config)["sweeps"]
    GRID = build_grid(config)
except (GridError, LocalGpuError) as exc:
    raise WorkflowError(f"Invalid config: {exc}") from None


def finished_runs():
    """(spec, run dir, source, bundled run) of every grid point, for the run guard."""
    for p in GRID.points:
        bundled = str(GRID.reference_run(p)) if p.source == "reference" else None
        yield GRID.spec(p), gridtable.run_dir(RESULTS, p), p.source, bundled


# Every finished run that no longer matches the config, all at once and on every invocation, until
# the config is reverted or the run moved away (docs/pipeline.md, "Guards").
STALE = check_campaign(finished_runs())
if STALE:
    raise WorkflowError(
        f"jouleflow: {len(STALE)} finished run(s) no longer match the config; nothing was run:\n  "
        + "\n  ".join(STALE)
    )

# Then the job specs mirror the config (written only where their content changed; rules/measure.smk),
# and so does the planned config the grid_table and analysis_targets rules read.
gridtable.sync_job_specs(GRID)
gridtable.sync_planned_config(GRID)
# One grid point: runs/{task}/{model}/{gpu}/{parallelism}/{batch}, model slugged (design.md).
POINT = "{task}/{model}/{gpu}/{parallelism}/{batch}"
RUN = f"{RESULTS}/runs/{POINT}"
ENERGY = f"{RESULTS}/energy/{POINT}/summary.json"
# Where the joules go (LLM points): beside summary.json, outside the run directory as it is.
ATTRIBUTION = f"{RESULTS}/energy/{POINT}/attribution.json"
REQUEST_ENERGY = f"{RESULTS}/energy/{POINT}/request_energy.parquet"
SPEC = f"{RESULTS}/specs/{POINT}.json"
ANALYSIS_TARGETS = f"{RESULTS}/analysis/targets.json"
PLANNED_CONFIG = gridtable.planned_config_path(RESULTS)
TIMELINES_AUTO_MAX = 64  # figures.timelines: auto draws one per run up to this many runs

if GRID.skipped:
    logger.warning(
        f"jouleflow: {len(GRID.skipped)} grid point(s) skipped (see {RESULTS}/grid/skipped.tsv):\n"
        + "\n".join(f"  {s.point.key}: {s.reason}" for s in GRID.skipped[:20])
        + ("\n  ..." if len(GRID.skipped) > 20 else "")
    )


wildcard_constraints:
    task=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9._@-]*",
    gpu=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    parallelism=r"[a-z][a-z0-9-]*",
    batch=r"[0-9]+",


def point_of(wildcards):
    key = f"{wildcards.task}/{wildcards.model}/{wildcards.gpu}/{wildcards.parallelism}/{wildcards.batch}"
    try:
        return GRID.by_key[key]
    except KeyError:
        raise WorkflowError(f"runs/{key} is not a point of the configured grid") from None


def run_identity(wildcards):
    return GRID.identity(point_of(wildcards))


def point_wildcards(point):
    return {
        "task": point.task,
        "model": point.model_slug,
        "gpu": point.gpu,
        "parallelism": point.parallelism.label,
        "batch": point.batch_size,
    }


def grid_digest():
    """Changes whenever the jobs table would (params trigger of the grid_table rule)."""
    rows = gridtable.job_rows(GRID) + gridtable.skipped_rows(GRID)
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def expand_points(pattern, source=None, modality=None):
    return [
        pattern.format(**point_wildcards(p))
        for p in GRID.points
        if (source is None or p.source == source) and (modality is None or p.modality == modality)
    ]


def group_info(wildcards):
    """Model id and precision behind an analysis group's (task, model slug) wildcards."""
    point = GRID.group_info(wildcards.task, wildcards.model)
    return {"model": point.model, "precision": point.precision}


def expand_groups(pattern, modality=None):
    return [
        pattern.format(task=task, model=slug)
        for task, slug in GRID.analysis_groups()
        if modality is None or GRID.group_info(task, slug).modality == modality
    ]


def all_outputs(wildcards):
    targets = [
        f"{RESULTS}/grid/jobs.tsv",
        f"{RESULTS}/grid/skipped.tsv",
        SUMMARY,
        f"{RESULTS}/summary/summary.csv",
        f"{RESULTS}/tables/provenance.csv",
        *analysis_outputs(),
        *figure_outputs(),
        f"{RESULTS}/report/campaign.html",
    ]
    # rules/compare.smk (optional) lists the comparisons the config asks for in compare_targets().
    if "compare_targets" in globals():
        targets += list(globals()["compare_targets"]())
    return targets


def bundled_run(wildcards):
    point = point_of(wildcards)
    if point.source != "reference":
        # Not a reference point: this rule cannot make it, Snakemake falls back to rule measure.
        return f"{RESULTS}/.not-a-reference-point/{point.key}"
    return str(GRID.reference_run(point))


def smaller_batch_run(wildcards):
    """The group's next-smaller batch size: measured first, so an infeasible one stops the larger.
    A finished run keeps the one it was measured after (its spec's `after`, in run.json), so that
    inserting a batch size below it changes none of its inputs and reruns nothing."""
    point = point_of(wildcards)
    run = gridtable.run_dir(RESULTS, point)
    if is_complete_run(run):
        recorded = read_run(run).config.get("after")
        return [recorded] if recorded and Path(recorded).exists() else []
    pred = GRID.predecessor_run(point)
    return [pred] if pred else []


def failed_attempt(wildcards):
    """A failed run is measured again by the next invocation (runguard.latest_failed_attempt)."""
    return latest_failed_attempt(gridtable.run_dir(RESULTS, point_of(wildcards)))


def measure_env():
    """The measurement jobs' conda env: per job only when the grid mixes LLMs and diffusion models."""
    envs = {"llm": "../envs/vllm.yaml", "diffusion": "../envs/xdit.yaml"}
    modalities = {p.modality for p in GRID.points if p.source == "measure"}
    if len(modalities) <= 1:
        return envs[next(iter(modalities), "llm")]
    return lambda wildcards: envs[point_of(wildcards).modality]


def not_shared(wildcards):
    """Nothing for a dedicated point; for a shared-server point a path no rule makes, so that rule
    measure does not apply and the group's measure_shared rule makes it."""
    point = point_of(wildcards)
    return f"{RESULTS}/.a-shared-server-point/{point.key}" if point.key in SHARED_KEYS else []


SHARED_KEYS = {p.key for members in GRID.shared.values() for p in members}


def shared_rule_name(group):
    return shared.rule_name(group)


def shared_store(group, point):
    """Where the group's sweep keeps the point (plan/shared.py): a failed attempt there is retried."""
    return str(shared.store_dir(f"{RESULTS}/shared/{group}", gridtable.run_dir(RESULTS, point)))


def shared_points_args(members):
    """--point SPEC RUN_DIR FAILURE_LOG per batch size (jouleflow campaign measure-shared)."""
    args = []
    for p in members:
        w = point_wildcards(p)
        args.append(
            f"--point {SPEC.format(**w)} {RUN.format(**w)} {RESULTS}/failures/{POINT.format(**w)}.jsonl"
        )
    return " ".join(args)


def shared_resources(members):
    """The group job's scheduler resources: its first point's (one server, the same GPUs), runtime
    and memory scaled by the attempt as for rule measure."""
    first = GRID.resources(members[0])
    return {name: (_scaled(value) if name in ATTEMPT_SCALED else value) for name, value in first.items()}


def _scaled(value):
    return lambda wildcards, attempt: value * attempt


def models_with_source(source):
    """Regex of the model slugs with points of this source: rule fetch_reference only matches
    bundled models and rule measure only measured ones, so Snakemake rarely tries both."""
    slugs = sorted({p.model_slug for p in GRID.points if p.source == source})
    return "|".join(re.escape(s) for s in slugs) or "(?!)"


def measure_resource(name):
    """A measurement job's scheduler resource (jobspec.resources; GPUs in the style of the config's
    `slurm` section). Snakemake evaluates a function once per job, so where every measured point
    agrees this is a plain value, or for runtime and memory (which grow with the attempt, so that a
    retry gets more) that value × attempt; else it is looked up per job from the grid row."""
    by_key = _measured_resources()
    values = {resources[name] for resources in by_key.values()}
    value = next(iter(values), 0)
    scaled = name in ATTEMPT_SCALED
    if len(values) <= 1:
        return (lambda wildcards, attempt: value * attempt) if scaled else value
    if scaled:
        return lambda wildcards, attempt: by_key[point_of(wildcards).key][name] * attempt
    return lambda wildcards: by_key[point_of(wildcards).key][name]


_MEASURED_RESOURCES = {}


def _measured_resources():
    """Run key → first-attempt resources of every measured point (computed once per parse)."""
    if not _MEASURED_RESOURCES:
        _MEASURED_RESOURCES.update((p.key, GRID.resources(p)) for p in GRID.points if p.source == "measure")
    return _MEASURED_RESOURCES


def validity_flags():
    v = config["validity"]
    flags = (
        f"--min-window {v['min_steady_s']} --min-batch-fraction {v['min_running_fraction']} "
        f"--max-failed-fraction {v['max_failed_fraction']} --max-power-fraction {v['max_power_fraction']}"
    )
    # only when set: an unchanged command leaves existing summaries alone
    return flags + (f" --max-jpt-ci {v['max_jpt_ci']}" if v.get("max_jpt_ci") else "")


def analysis_outputs():
    return [f"{RESULTS}/tables/frontier.parquet", f"{RESULTS}/tables/recommendations.csv"]


def figure_outputs():
    figures = [f"{RESULTS}/figures/task-energy.png"]
    figures += expand_groups(f"{RESULTS}/figures/sweep/{{task}}/{{model}}.png")
    figures += expand_groups(f"{RESULTS}/figures/frontier/{{task}}/{{model}}.png")
    # where the joules go (rules/attribution.smk): LLM groups and points only
    figures += expand_groups(f"{RESULTS}/figures/energy-split/{{task}}/{{model}}.png", modality="llm")
    timelines = config["figures"]["timelines"]
    if timelines is True or (timelines == "auto" and len(GRID.points) <= TIMELINES_AUTO_MAX):
        # the per-run figures: the power timeline, and per-request energy (LLM) by the same switch
        figures += expand_points(f"{RESULTS}/figures/timeline/{POINT}.png")
        figures += expand_points(f"{RESULTS}/figures/request-energy/{POINT}.png", modality="llm")
    return figures


def latency_targets(wildcards):
    """Every latency target of the task: the frontier figure draws each one."""
    targets = GRID.latency_targets(wildcards.task)
    return f"--latency-target {','.join(targets)}" if targets else ""


# The campaign page (rule campaign_page) and the frontier figures (rule plot_frontier) overlay ML.ENERGY's
# published points of the campaign's models from the bundled v3 slice (its files are their input).
PUBLISHED = "resources/mlenergy-v3"
PUBLISHED_FILES = published_files(PUBLISHED)


def published_option(wildcards, input):
    return f"--published {PUBLISHED}" if input.published else ""


def page_timelines():
    return [f for f in figure_outputs() if "/figures/timeline/" in f]


def page_options(wildcards, input):
    opts = f"--targets {input.targets}" if GRID.analysis_targets() else ""
    if input.timelines:
        opts += f" --timelines {RESULTS}/figures/timeline --runs-root {RESULTS}/runs"
    if input.published:
        opts += f" --published {PUBLISHED}"
    return opts
