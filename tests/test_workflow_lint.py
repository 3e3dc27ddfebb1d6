"""The workflow's own lint: `snakefmt --check` (formatting) and `snakemake --lint` (rule style)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEFILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def test_snakefiles_are_snakefmt_clean():
    # pyproject.toml's [tool.snakefmt] sets the line length, as [tool.ruff] does for the package.
    cmd = [sys.executable, "-m", "snakefmt", "--check", *map(str, SNAKEFILES)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("configfiles", [[], ["config/paper/mlenergy-v3.yaml"]], ids=["default", "paper"])
def test_snakemake_lint_is_clean(tmp_path, configfiles):
    # A copy: parsing the workflow writes the job specs under its results directory.
    workdir = copy_workflow(tmp_path / "wf")
    env = {**os.environ, "PYTHONPATH": str(workdir / "workflow")}
    args = ["--configfile", *configfiles] if configfiles else []
    cmd = [sys.executable, "-m", "snakemake", "--lint", *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
