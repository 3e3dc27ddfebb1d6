"""`gpus: [local]`: the type of this machine's GPUs, detected through NVML (the fake GPU here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jouleflow.plan.localgpu import LOCAL_ENV, LocalGpuError, resolve_local

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def _config(gpus):
    return {
        "gpus": {"H100": {"memory_gb": 80, "tdp_w": 700}, "H200": {"memory_gb": 141, "tdp_w": 700}},
        "sweeps": [{"name": "a", "gpus": gpus}, {"name": "b", "gpus": ["H100"]}],
    }


@pytest.fixture(autouse=True)
def _no_planned_type():
    """resolve_local exports the type it planned for the jobs it spawns: undone after each test
    (monkeypatch.delenv of an unset variable records nothing to undo)."""
    before = os.environ.pop(LOCAL_ENV, None)
    yield
    os.environ.pop(LOCAL_ENV, None)
    if before is not None:
        os.environ[LOCAL_ENV] = before


def test_local_becomes_the_detected_type_and_nothing_else_changes():
    config = _config(["local", "H100"])
    out = resolve_local(config, types=["H200", "H200"])
    assert [s["gpus"] for s in out["sweeps"]] == [["H200", "H100"], ["H100"]]
    assert config["sweeps"][0]["gpus"] == ["local", "H100"]  # the input is not modified
    assert os.environ[LOCAL_ENV] == "H200"  # what jobs that parse the workflow again will plan
    assert resolve_local(_config(["local", "H100"]), types=["H100"])["sweeps"][0]["gpus"] == ["H100"]


@pytest.mark.parametrize(
    "types, message",
    [
        ([], "`local` found no GPU"),
        (["H100", "H200"], "several GPU types (H100, H200)"),
        (["RTX4090"], "gpus.RTX4090: this machine's GPUs are RTX4090, which has no entry under `gpus:`"),
    ],
)
def test_local_errors_name_the_key(types, message):
    with pytest.raises(LocalGpuError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_local(_config(["local"]), types=types)


def test_a_config_without_local_never_touches_nvml():
    config = _config(["H100"])
    assert resolve_local(config, types=None) == config  # would raise if NVML were asked (no GPU here)


def _plan(tmp_path, env):
    cfg = tmp_path / "c.yaml"
    quick = yaml.safe_load((REPO / "config" / "quickstart.yaml").read_text())
    quick["results_dir"] = str(tmp_path / "results")
    cfg.write_text(yaml.safe_dump(quick))
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", "campaign", "plan", "--configfile", str(REPO / "config/config.yaml"),
         "--configfile", str(cfg), "--jobs", str(tmp_path / "jobs.tsv")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS / "fakegpu"), str(REPO / "workflow")]), **env},
    )  # fmt: skip


def test_quickstart_plans_on_whatever_gpu_the_machine_has(tmp_path):
    r = _plan(tmp_path, {"FAKE_GPU_NAME": "NVIDIA H200", "FAKE_GPU_COUNT": "2"})
    assert r.returncode == 0, r.stderr
    jobs = (tmp_path / "jobs.tsv").read_text()
    assert "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H200/tp1/16" in jobs and "H100" not in jobs
    r = _plan(tmp_path, {"FAKE_GPU_INIT_ERROR": "DRIVER_NOT_LOADED"})
    assert r.returncode == 2 and "`local` needs an NVIDIA GPU on this machine" in r.stderr


def test_local_can_be_planned_without_the_gpu(tmp_path):
    r = _plan(tmp_path, {"FAKE_GPU_INIT_ERROR": "DRIVER_NOT_LOADED", "JOULEFLOW_LOCAL_GPU": "B200"})
    assert r.returncode == 0, r.stderr
    assert (
        "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/B200/tp1/128" in (tmp_path / "jobs.tsv").read_text()
    )
