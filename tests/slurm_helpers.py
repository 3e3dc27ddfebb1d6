"""The local SLURM of scripts/slurm-localhost.sh, seen from tests: is it up, what did it run.

Records used (no accounting DB): the plugin's "submitted with SLURM jobid" lines and its log
files, `scontrol show job` (slurmctld keeps finished jobs for MinJobAge, 30 min there) and the
jobcomp/filetxt completion log, which slurmctld appends for every finished job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "JOULEFLOW_REQUIRE_SLURM"
REPO = Path(__file__).resolve().parents[1]
_SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def slurm_problem() -> str | None:
    """Why the local SLURM cannot run test jobs, or None when it can."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "SLURM client commands not installed (scripts/slurm-localhost.sh install)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T %G"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "slurmctld does not answer (scripts/slurm-localhost.sh start)"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"slurmctld is not running (scripts/slurm-localhost.sh start): {ping.stdout.strip()}"
    usable = [line for line in nodes.stdout.splitlines() if line.split()[0] in ("idle", "mixed", "allocated")]
    if not usable:
        return f"no usable SLURM node: {nodes.stdout.strip() or nodes.stderr.strip()}"
    if not any("gpu:" in line for line in usable):
        return "the SLURM node has no GPU GRES (scripts/slurm-localhost.sh writes a fake one)"
    return None


def require_slurm() -> None:
    """Skip without a local SLURM; fail instead where CI promised one (JOULEFLOW_REQUIRE_SLURM=1)."""
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
    pytest.skip(problem)


def default_partition() -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return next(p.rstrip("*") for p in out.split() if p.endswith("*"))


def add_profile(workdir: Path) -> None:
    """The repository's profile and its root-level `slurm` link, as in a checkout."""
    shutil.copytree(REPO / "profiles", workdir / "profiles", symlinks=True)
    (workdir / "slurm").symlink_to(os.readlink(REPO / "slurm"))


def snakemake(
    workdir: Path, *args: str, path_prefix: Path | None = None, timeout: float = 1500
) -> subprocess.CompletedProcess:
    """`snakemake --cores all <args>` in workdir (this interpreter's Snakemake), output captured."""
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    for var in [v for v in env if v.startswith("SLURM_")]:
        del env[var]  # as on a login node, not inside a job
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "all", "--nocolor", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass(frozen=True)
class SubmittedJob:
    slurm_id: str
    log: Path
    record: dict[str, str]  # scontrol show job

    @property
    def rule(self) -> str:
        return self.record["Comment"].removeprefix("rule_").split("_wildcards_")[0]

    @property
    def wildcards(self) -> str:
        return self.record["Comment"].partition("_wildcards_")[2]


def submitted_jobs(output: str) -> list[SubmittedJob]:
    """Jobs the plugin submitted, as it reported them, each with slurmctld's record of it."""
    return [
        SubmittedJob(slurm_id=m.group(2), log=Path(m.group(3)), record=scontrol_job(m.group(2)))
        for m in _SUBMITTED.finditer(output)
    ]


def scontrol_job(slurm_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", slurm_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return _key_values(out)


def jobcomp_states() -> dict[str, str]:
    """JobId → JobState from slurmctld's completion log (jobcomp/filetxt)."""
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True, timeout=30
    )
    location = next(
        line.split("=", 1)[1].strip() for line in config.stdout.splitlines() if line.startswith("JobCompLoc")
    )
    states = {}
    for line in Path(location).read_text().splitlines():
        record = _key_values(line)
        if "JobId" in record:
            states[record["JobId"]] = record.get("JobState", "")
    return states


def _key_values(text: str) -> dict[str, str]:
    # Values never contain spaces in the fields used here; later keys do not shadow earlier ones.
    record: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in record:
            record[key] = value
    return record
