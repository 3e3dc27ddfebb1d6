"""Jobs that fail on the cluster: reported with SLURM id and log path; the rest goes on; a rerun resumes.

A tiny workflow written by the test, run with the repository's profile against the local
SLURM of scripts/slurm-localhost.sh: two quick jobs, one that outlives its 1-minute time limit
and one sent to a partition that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from slurm_helpers import (
    add_profile,
    default_partition,
    jobcomp_states,
    require_slurm,
    snakemake,
    submitted_jobs,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEFILE = """
rule all:
    input: "ok1.txt", "ok2.txt", "slow.txt", "elsewhere.txt"

rule ok:
    output: "ok{n}.txt"
    log: "logs/ok{n}.log"
    shell: "echo $SLURM_JOB_ID > {output}"

rule slow:
    output: "slow.txt"
    log: "logs/slow.log"
    resources: runtime=1
    shell: "sleep 600; touch {output}"

rule elsewhere:
    output: "elsewhere.txt"
    log: "logs/elsewhere.log"
    resources: slurm_partition="no-such-partition"
    shell: "touch {output}"
"""


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    require_slurm()
    workdir = tmp_path_factory.mktemp("slurm-failures")
    (workdir / "Snakefile").write_text(SNAKEFILE)
    add_profile(workdir)
    # --retries 0: the profile's retry would double the time-limit test.
    result = snakemake(workdir, "--profile", "slurm", "--retries", "0", timeout=900)
    assert result.returncode != 0, "a workflow with failing jobs reported success"
    return workdir, result.stdout + result.stderr


def test_the_rest_of_the_grid_goes_on(failed_run: tuple[Path, str]) -> None:
    workdir, output = failed_run
    jobs = {j.rule: j for j in submitted_jobs(output)}
    for name in ("ok1.txt", "ok2.txt"):
        content = (workdir / name).read_text().strip()
        assert content.isdigit(), f"{name} was not written inside a SLURM job: {content!r}"
    assert not (workdir / "slow.txt").exists()
    assert jobs["ok"].record["JobState"] == "COMPLETED"


def test_time_limit_is_reported_with_slurm_id_and_log(failed_run: tuple[Path, str]) -> None:
    workdir, output = failed_run
    (slow,) = [j for j in submitted_jobs(output) if j.rule == "slow"]
    assert slow.record["JobState"] == "TIMEOUT"
    assert slow.record["TimeLimit"] == "00:01:00"
    assert jobcomp_states()[slow.slurm_id] == "TIMEOUT"
    assert f"SLURM-job '{slow.slurm_id}' failed, SLURM status is: 'TIMEOUT'" in output
    # The error block names the job's SLURM log, and the log exists (SLURM wrote the cancel there).
    assert str(slow.log) in output
    assert "DUE TO TIME LIMIT" in slow.log.read_text()


def test_missing_partition_is_reported_naming_it(failed_run: tuple[Path, str]) -> None:
    _, output = failed_run
    block = output[output.index("Error in rule elsewhere") :]
    assert re.search(r"SLURM sbatch failed.*invalid partition specified: no-such-partition", block, re.S), (
        block[:2000]
    )
    assert "-p no-such-partition" in block


def test_rerun_resumes_without_redoing_finished_jobs(failed_run: tuple[Path, str]) -> None:
    workdir, _ = failed_run
    before = {name: (workdir / name).read_text() for name in ("ok1.txt", "ok2.txt")}
    partition = default_partition()
    # Fixed for the rerun: the partition exists now. The slow job is left out of the targets.
    result = snakemake(
        workdir,
        "ok1.txt",
        "ok2.txt",
        "elsewhere.txt",
        "--profile",
        "slurm",
        "--set-resources",
        f"elsewhere:slurm_partition='{partition}'",
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    resubmitted = submitted_jobs(result.stdout + result.stderr)
    assert [j.rule for j in resubmitted] == ["elsewhere"]
    assert resubmitted[0].record["Partition"] == partition
    assert {name: (workdir / name).read_text() for name in before} == before
    assert (workdir / "elsewhere.txt").exists()
