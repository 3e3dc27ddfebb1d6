"""The SLURM profile without a cluster: its options exist in the installed plugin, Snakemake accepts it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake_executor_plugin_slurm import ExecutorSettings

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"


def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_root_link_makes_profile_slurm_resolve() -> None:
    link = REPO / "slurm"
    assert link.is_symlink() and os.readlink(link) == "profiles/slurm"
    assert (link / "config.yaml").resolve() == PROFILE.resolve()
    # A profiles/default/ would be applied after --profile and override whole keys.
    assert not (REPO / "profiles" / "default").exists()


def test_every_plugin_option_in_the_profile_exists() -> None:
    fields = {f.name for f in dataclasses.fields(ExecutorSettings)}
    options = [key for key in profile() if key.startswith("slurm-")]
    assert options
    for key in options:
        assert key.removeprefix("slurm-").replace("-", "_") in fields, (
            f"{key} is not an option of the installed plugin"
        )


def test_profile_avoids_the_plugin_traps() -> None:
    p = profile()
    assert p["executor"] == "slurm"
    assert p["slurm-status-command"] == "squeue"  # sacct without an accounting DB hangs the plugin
    # squeue keeps a finished job for MinJobAge (>= 300 s by default); the plugin switches to
    # sacct unless that exceeds 3 x the first-check delay.
    assert 3 * p["slurm-init-seconds-before-status-checks"] < 300
    assert p["slurm-keep-successful-logs"] is True
    assert p["slurm-delete-logfiles-older-than"] == 0
    defaults = p["default-resources"]
    # Analysis jobs: small, attempt-aware; no GPU resource by default (gpu and gres never both).
    assert "attempt" in str(defaults["mem_mb"]) and "attempt" in str(defaults["runtime"])
    assert not {"gpu", "gres", "gpu_model"} & set(defaults)
    assert p["retries"] >= 1 and p["keep-going"] is True and p["rerun-incomplete"] is True


def test_snakemake_accepts_the_profile(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    log: "a.log"\n    shell: "touch {output}"\n'
    )
    (tmp_path / "slurm").symlink_to(REPO / "profiles" / "slurm")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "--dry-run", "a.txt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Using profile slurm" in result.stdout + result.stderr
