"""The literal `snakemake --cores all --profile slurm` against a real local SLURM.

Needs the single-node SLURM of scripts/slurm-localhost.sh (skipped without it; a failure
where JOULEFLOW_REQUIRE_SLURM=1, as in CI). Each test runs the workflow in a tmp copy of the
repository (pipeline_helpers.copy_workflow: the bundled-reference fixture as resources/reference)
with the repository's profile and its root-level `slurm` link, on the default campaign cut to a few
of its sweeps (SUBSET_SWEEPS).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from slurm_helpers import SubmittedJob, add_profile, jobcomp_states, require_slurm, snakemake, submitted_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The pipeline's own test helpers (workflow copy with the reference fixture, the added model).
from pipeline_helpers import QWEN, QWEN_ENTRY, QWEN_SWEEP, copy_workflow  # noqa: E402

LLAMA_SLUG = "meta-llama--Llama-3.1-8B-Instruct"
QWEN_SLUG = QWEN.replace("/", "--")
# Rules that work on one grid point (their wildcards name a model); the rest are aggregates.
POINT_RULES = {
    "job_spec", "fetch_reference", "measure", "energy", "plot_timeline", "attribute", "plot_request_energy",
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _slurm_up() -> None:
    require_slurm()


def _check(result, what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


def _outputs(workdir: Path) -> dict[str, object]:
    """What the pipeline computed: per-run summaries, the summary table, the analysis tables."""
    results = workdir / "results"
    found: dict[str, object] = {}
    for path in sorted((results / "energy").rglob("summary.json")):
        found[str(path.relative_to(workdir))] = json.loads(path.read_text())
    found["summary"] = pl.read_parquet(results / "summary" / "summary.parquet").sort(pl.all()).to_dicts()
    for path in sorted((results / "tables").glob("*.csv")):
        found[str(path.relative_to(workdir))] = path.read_text()
    return found


# The default campaign cut to three of its sweeps, some batch sizes each: every kind of job (LLM and
# diffusion points, attribution, frontiers, comparisons, the page) at a tenth of its SLURM jobs. Each
# job is a Snakemake process of its own; the whole campaign took 19 minutes of a 2-core CI machine.
SUBSET_SWEEPS = {"llama-3.1-8b-h100": None, "llama-3.1-8b-h200": [64, 256], "pixart-sigma-h200": [1, 16]}
SUBSET_POINTS = {
    *(f"lm-arena-chat/{LLAMA_SLUG}{p}/H200/tp1/{b}" for p in ("", "@fp8") for b in (64, 256)),
    *(f"text-to-image/PixArt-alpha--PixArt-Sigma-XL-2-1024-MS/H200/uly1-ring1/{b}" for b in (1, 16)),
}


def _subset_config(workdir: Path) -> list[str]:
    """`--configfile` arguments of the cut campaign (a file in workdir), taken from config/config.yaml."""
    sweeps = yaml.safe_load((workdir / "config" / "config.yaml").read_text())["sweeps"]
    kept = []
    for sweep in sweeps:
        if sweep["name"] in SUBSET_SWEEPS:
            batches = SUBSET_SWEEPS[sweep["name"]]
            kept.append({**sweep, "batch_sizes": batches or sweep["batch_sizes"]})
    assert [s["name"] for s in kept] == list(SUBSET_SWEEPS), "config/config.yaml's sweeps were renamed"
    (workdir / "subset.yaml").write_text(yaml.safe_dump({"sweeps": kept, "compare": {"allow_empty": True}}))
    return ["--configfile", "subset.yaml"]


@pytest.fixture(scope="module")
def reference_on_slurm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The cut default campaign run through the profile; (workdir, Snakemake's output)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "repo")
    add_profile(workdir)
    result = snakemake(
        workdir, "--profile", "slurm", *_subset_config(workdir), path_prefix=workdir / ".test-bin"
    )
    _check(result, "snakemake --cores all --profile slurm")
    return workdir, result.stdout + result.stderr


@pytest.fixture(scope="module")
def reference_locally(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cut campaign run by `snakemake --cores all` on a fresh copy, without SLURM."""
    workdir = copy_workflow(tmp_path_factory.mktemp("local") / "repo")
    _check(snakemake(workdir, *_subset_config(workdir), path_prefix=workdir / ".test-bin"), "local snakemake")
    return workdir


def test_reference_pipeline_jobs_went_through_sbatch(reference_on_slurm: tuple[Path, str]) -> None:
    workdir, output = reference_on_slurm
    jobs = submitted_jobs(output)
    assert jobs, "the plugin reported no SLURM submission"
    completed = jobcomp_states()
    for job in jobs:
        # slurmctld's own records: the job ran under the workflow's run name and completed.
        assert job.record["JobName"].startswith("jouleflow_"), job.record
        assert job.record["JobState"] == "COMPLETED", job.record
        assert completed.get(job.slurm_id) == "COMPLETED", (
            f"job {job.slurm_id} not in the jobcomp log as COMPLETED"
        )
        assert job.record["WorkDir"] == str(workdir)
        assert job.log.is_file() and job.log.is_relative_to(workdir / ".snakemake" / "slurm_logs")
    by_rule: dict[str, list[SubmittedJob]] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job)
    # One energy job per bundled run, each its own SLURM job; the summary too.
    # (GPU, batch) of each: the wildcards' values joined with "_" (task, model, gpu, parallelism, batch)
    points = sorted((j.wildcards.split("_")[-3], int(j.wildcards.split("_")[-1])) for j in by_rule["energy"])
    h200 = [int(point.rsplit("/", 1)[1]) for point in SUBSET_POINTS]
    assert points == [("H100", b) for b in (64, 128, 256)] + sorted(("H200", b) for b in h200)
    assert len(by_rule["summary"]) == 1
    # Analysis jobs are small CPU jobs: no GPU asked for.
    for job in jobs:
        assert "gpu" not in job.record.get("TresPerJob", "") + job.record.get("TresPerNode", ""), job.record


def test_reference_pipeline_on_slurm_equals_a_local_run(
    reference_on_slurm: tuple[Path, str], reference_locally: Path
) -> None:
    slurm_dir, _ = reference_on_slurm
    local, on_slurm = _outputs(reference_locally), _outputs(slurm_dir)
    # 3 H100 (fixture) + the bundle's H200 runs of the cut campaign
    assert len([k for k in local if k.endswith("summary.json")]) == 3 + len(SUBSET_POINTS)
    assert local.keys() == on_slurm.keys()
    for key in local:
        assert on_slurm[key] == local[key], key


@pytest.fixture(scope="module")
def qwen_added_on_slurm(reference_on_slurm: tuple[Path, str]) -> list[SubmittedJob]:
    """Add a model (measured, on H100) to the finished reference campaign; rerun through SLURM.

    There is no inference engine here, so its measurement fails, and is retried once (the
    profile's `retries: 1`) with more time and memory. What matters is what is submitted, and how.
    """
    workdir, _ = reference_on_slurm
    subset = yaml.safe_load((workdir / "subset.yaml").read_text())
    extra = {**subset, "models": {QWEN: QWEN_ENTRY}, "sweeps": [*subset["sweeps"], QWEN_SWEEP]}
    # Measurement jobs sized for the 2-core test node.
    extra["measurement"] = {"cpus_per_task": 1, "mem_mb": 1000, "runtime_min": 10}
    (workdir / "qwen.yaml").write_text(yaml.safe_dump(extra))
    result = snakemake(
        workdir, "--profile", "slurm", "--configfile", "qwen.yaml", path_prefix=workdir / ".test-bin"
    )
    jobs = submitted_jobs(result.stdout + result.stderr)
    assert jobs, f"nothing was submitted:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return jobs


def test_adding_a_model_submits_only_its_jobs(qwen_added_on_slurm: list[SubmittedJob]) -> None:
    for job in qwen_added_on_slurm:
        if job.rule in POINT_RULES:
            assert QWEN_SLUG in job.wildcards and LLAMA_SLUG not in job.wildcards, job.record["Comment"]
    measured = [j for j in qwen_added_on_slurm if j.rule == "measure"]
    # The smallest batch first (larger ones wait for it): its first attempt and the retry.
    assert [j.wildcards for j in measured] == [f"lm-arena-chat_{QWEN_SLUG}_H100_tp1_32"] * 2


def test_gpu_job_requests_gpus_of_its_type_and_more_on_retry(qwen_added_on_slurm: list[SubmittedJob]) -> None:
    first, retry = [j for j in qwen_added_on_slurm if j.rule == "measure"]
    for job in (first, retry):
        # The sbatch request as slurmctld recorded it: --gpus=h100:1 (the node's GRES type), never --gres.
        assert job.record["TresPerJob"] == "gres:gpu:h100:1", job.record
        assert "gpu" not in job.record.get("TresPerNode", "")
        assert job.record["NumCPUs"] == "1"
    # Attempt-aware resources: time and memory double on the retry.
    assert (first.record["TimeLimit"], first.record["MinMemoryNode"]) == ("00:10:00", "1000M")
    assert (retry.record["TimeLimit"], retry.record["MinMemoryNode"]) == ("00:20:00", "2000M")
