"""What Snakemake plans, read from the DAG of dry runs on a copy of the workflow.

The measurement stage (job specs and reference copies) is executed for real here; the full
pipeline, which needs the energy, frontier and plot CLIs, is exercised in test_pipeline_reruns.py.
"""

from __future__ import annotations

import json
import shutil

import pytest
from jouleflow.plan.runguard import write_skipped_infeasible
from pipeline_helpers import (
    BASE_KEY,
    BASE_SWEEP,
    H200_POINTS,
    MEASURE_RULES,
    QWEN,
    QWEN_ENTRY,
    QWEN_SWEEP,
    copy_workflow,
    default_run_dirs,
    execute,
    plan,
    points_of,
    rules_of,
    run_dirs,
    with_qwen,
)

DEFAULT_POINTS = {f"{BASE_KEY}/{b}" for b in (64, 128, 256)} | H200_POINTS
QWEN_POINTS = {f"lm-arena-chat/Qwen--Qwen3-8B/H100/tp1/{b}" for b in (32, 64)}


@pytest.fixture(scope="module")
def measured_base(tmp_path_factory):
    """The default config's measurement stage, really executed: its reference runs copied."""
    workdir = copy_workflow(tmp_path_factory.mktemp("base") / "wf")
    execute(workdir, targets=default_run_dirs())
    return workdir


@pytest.fixture
def base(measured_base, tmp_path):
    """A private copy of the measured workflow (files, mtimes and Snakemake metadata)."""
    return shutil.copytree(measured_base, tmp_path / "wf", symlinks=True)


def test_default_config_plans_reference_copies_and_analysis_only(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    jobs = plan(workdir)
    counts = rules_of(jobs)
    assert "measure" not in counts
    assert points_of(jobs, ["fetch_reference"]) == DEFAULT_POINTS
    assert points_of(jobs, ["energy"]) == DEFAULT_POINTS
    for aggregate in (
        "grid_table",
        "summary",
        "frontier",
        "plot_task_energy",
        "compare_gpus",
        "compare_modality",
        "compare_moe",
        "compare_tasks",
    ):
        assert counts[aggregate] == 1, aggregate
    # One per (task, model key): Llama BF16 and FP8 are two curves; Qwen3-8B chat and gpqa-lengths, Qwen3-VL-8B
    # image-chat, Qwen3-30B-A3B and Qwen3-32B chat five more; PixArt-Sigma text-to-image the eighth.
    assert counts["plot_sweep"] == counts["plot_frontier"] == 8
    assert counts["plot_energy_split"] == 7  # LLM curves only: a diffusion run has no attribution
    assert counts["compare_precision"] == 2  # energy per token, median ITL


def test_reference_copies_are_the_bundled_runs(measured_base):
    for run in default_run_dirs():
        bundled = measured_base / "resources" / "reference" / run.removeprefix("results/")
        copied = measured_base / run
        for src in bundled.iterdir():
            assert (copied / src.name).read_bytes() == src.read_bytes()


def test_adding_a_model_plans_only_its_measurements(base):
    jobs = plan(base, with_qwen())
    assert points_of(jobs, MEASURE_RULES) == QWEN_POINTS
    assert points_of(jobs, ["measure"]) == QWEN_POINTS
    # larger Qwen batch waits for the smaller one (skipped if that one was infeasible)
    assert points_of(jobs, ["energy"]) >= QWEN_POINTS


@pytest.mark.parametrize(
    "change",
    [
        {"analysis": {"latency_targets": {"lm-arena-chat": ["40ms"]}}},
        {"analysis": {"latency_metric": {"lm-arena-chat": "p90_itl_s"}}},
        {"validity": {"min_steady_s": 30}},
        {"figures": {"timelines": False}},
    ],
    ids=["latency-target", "latency-metric", "validity", "figures"],
)
def test_analysis_changes_plan_no_measurement(base, change):
    jobs = plan(base, change)
    assert points_of(jobs, MEASURE_RULES) == set()


def test_measured_runs_are_kept_when_rerun_is_forced(base):
    before = {run: sorted((p.name, p.read_bytes()) for p in (base / run).iterdir()) for run in run_dirs()}
    execute(base, targets=run_dirs(), forcerun=["fetch_reference"])
    for run in run_dirs():
        log = base / "logs" / "fetch_reference" / f"{run.removeprefix('results/runs/')}.log"
        assert "kept as is" in log.read_text()
        after = sorted(
            (p.name, p.read_bytes()) for p in (base / run).iterdir() if p.name != ".snakemake_timestamp"
        )
        assert after == [item for item in before[run] if item[0] != ".snakemake_timestamp"]


def test_infeasible_batch_stops_larger_ones_and_a_config_change_is_refused(base):
    """Qwen at batch 32 ended infeasible (recorded by the run guard's own writer); batch 64 is then
    recorded infeasible by Snakemake without starting a server. Changing Qwen's server args
    afterwards is refused when the workflow is planned, naming both runs and the key, on every
    invocation, and nothing on disk changes; reverting plans nothing again."""
    config = with_qwen()
    plan(base, config)  # parsing the workflow writes the job specs
    small, large = (f"lm-arena-chat/Qwen--Qwen3-8B/H100/tp1/{b}" for b in (32, 64))
    spec = json.loads((base / "results" / "specs" / f"{small}.json").read_text())
    write_skipped_infeasible(
        spec, base / "results" / "runs" / small, "elsewhere", "CUDA out of memory at start-up"
    )

    execute(base, config, targets=[f"results/runs/{large}"])
    recorded = json.loads((base / "results" / "runs" / large / "run.json").read_text())
    assert recorded["status"] == "infeasible"
    assert f"results/runs/{small}" in recorded["reason"] and "CUDA out of memory" in recorded["reason"]
    assert points_of(plan(base, config), MEASURE_RULES) == set()

    changed = {
        "models": {QWEN: {**QWEN_ENTRY, "server_args": ["--enforce-eager"]}},
        "sweeps": [BASE_SWEEP, QWEN_SWEEP],
    }
    before = {
        b: (base / "results" / "runs" / k / "run.json").read_bytes() for b, k in ((32, small), (64, large))
    }
    for _ in range(3):  # refused every time, not only once
        with pytest.raises(Exception) as info:
            plan(base, changed)
        text = str(info.value)
        assert "2 finished run(s) no longer match the config" in text
        assert f"results/runs/{small}" in text and f"results/runs/{large}" in text
        assert "server_args: run has [" in text and "--enforce-eager" in text
    after = {
        b: (base / "results" / "runs" / k / "run.json").read_bytes() for b, k in ((32, small), (64, large))
    }
    assert after == before
    assert points_of(plan(base, config), MEASURE_RULES) == set()  # reverted: nothing to do


@pytest.mark.parametrize(
    "change, named",
    [
        ({"analysys": {}}, "'analysys' was unexpected"),
        ({"models": {"meta-llama/Llama-3.1-8B-Instruct": {"memroy_gb": 3}}}, "'memroy_gb' was unexpected"),
        ({"sweeps": [{**BASE_SWEEP, "batch_sizes": ["64"]}]}, "sweeps[0].batch_sizes[0]: '64' is not of type 'integer' (e.g. 64)"),
        ({"gpus": {"H100": {"memory_gb": "eighty", "tdp_w": 700}}}, "gpus.H100.memory_gb: 'eighty' is not of type 'number' (e.g. 80)"),
        ({"sweeps": [{**BASE_SWEEP, "batch_sizes": []}]}, "sweeps[0].batch_sizes: [] should be non-empty (e.g. [64, 128, 256])"),
        ({"sweeps": [{**BASE_SWEEP, "models": ["org/unregistered"]}]}, "sweeps[0].models[0]: unknown model"),
        ({"sweeps": [{**BASE_SWEEP, "parallelism": ["tp16"]}]}, "sweeps[0].parallelism: 'tp16' needs 16 GPUs"),
        ({"sweeps": [{**BASE_SWEEP, "batch_sizes": [512]}]}, "bundle has no run lm-arena-chat/"),
        ({"results_dir": ""}, "results_dir: '' should be non-empty (Where the pipeline writes"),
        ({"models": {"../../etc": QWEN_ENTRY}}, "models.../../etc: invalid model id '../../etc' (a '..' segment)"),
        ({"models": {"meta-llama--Llama-3.1-8B-Instruct": QWEN_ENTRY}},
         "models: 'meta-llama--Llama-3.1-8B-Instruct' and 'meta-llama/Llama-3.1-8B-Instruct' both give run "
         "directory name 'meta-llama--Llama-3.1-8B-Instruct'"),
        ({"tasks": {"lm-arena-chat": {"num_requests": 100}}},
         "tasks.lm-arena-chat.num_requests: 100 requests cannot fill batch size 128 (run "
         "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H100/tp1/128"),
        ({"compare": {"precision": {"metrics": ["tokens_per_s"]}}},
         "compare.precision.metrics[0]: 'tokens_per_s' is not one of ['median_itl'"),
        ({"compare": {"gpus": [{"name": "typo", "a": "H100", "b": "H2000", "deadlines": ["10ms"]}]}},
         "compare.gpus[0].b: 'H2000' is not in the config's `gpus` (A100, A100-40GB, B200, H100, H200, L40S)"),
        ({"compare": {"modality": [{"name": "typo", "pairs": {"Qwen/Qwen3-VL-8B-Instruct": "Qwen/Qwen3-8b"}}]}},
         "compare.modality[0].pairs: 'Qwen/Qwen3-8b' is not in the config's `models` (PixArt-alpha/PixArt-Sigma-XL-2-1024-MS, Qwen/Qwen3-30B-A3B-Instruct-2507, "),
    ],
    ids=["unknown-key", "unknown-nested-key", "wrong-type", "wrong-type-gpu", "empty-batches", "no-registry-entry",
         "parallelism-too-wide", "not-bundled", "results-dir-empty", "model-id-escapes",
         "model-ids-collide", "fewer-requests-than-batch", "compare-unknown-metric",
         "compare-unknown-gpu", "compare-unknown-model"],
)  # fmt: skip
def test_bad_config_fails_naming_the_key(tmp_path, change, named):
    workdir = copy_workflow(tmp_path / "wf")
    with pytest.raises(Exception) as info:
        plan(workdir, change)
    assert named in str(info.value)
    assert not (workdir / "results").exists()
