"""The measured path's failures under the repository's SLURM profile (scripts/slurm-localhost.sh).

Two measured models whose engines never serve, through `snakemake --profile slurm` with the
test-only fake GPU: one crashes at start-up, one hangs past the job's time limit (2 min). Each
point ends as a recorded `failed` run with its reason (the hang stopped by the job's own deadline
before SLURM's TIMEOUT), the failure log carries the SLURM job id, and every aggregate is built.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pipeline_helpers import copy_workflow
from slurm_helpers import add_profile, require_slurm, snakemake, submitted_jobs
from test_pipeline_measure_e2e import TASK, campaign_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
KEY = f"{TASK}/test--{{name}}/H100/tp1/2"


def slurm_gpu_count() -> int:
    """GPUs of the local node's GRES (`sinfo -o %G`, e.g. gpu:h100:2)."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, timeout=30).stdout
    counts = [int(m) for m in re.findall(r"gpu:[^:,\s]*:?(\d+)", out)]
    return max(counts, default=1)


def _shadow_transformers(root: Path, body: str) -> Path:
    """A PYTHONPATH entry whose `transformers` stands in for a broken engine."""
    (root / "transformers").mkdir(parents=True)
    (root / "transformers" / "__init__.py").write_text(body)
    return root


@pytest.fixture(scope="module")
def failed_on_slurm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    require_slurm()
    root = tmp_path_factory.mktemp("slurm-measure")
    workdir = copy_workflow(root / "wf")
    add_profile(workdir)
    model = root / "model"  # never loaded: neither engine gets that far
    model.mkdir()
    (model / "config.json").write_text("{}")
    crash = _shadow_transformers(root / "crash", "raise SystemExit('engine crash (injected by the test)')\n")
    hang = _shadow_transformers(root / "hang", "import time\ntime.sleep(3600)\n")
    config = campaign_config(model, crash, tiny_batches=[2])
    entry = config["models"]["test/crashy"]
    config["models"] = {"test/crashy": entry, "test/hangs": {**entry, "env": {"PYTHONPATH": str(hang)}}}
    sweep = config["sweeps"][0]
    config["sweeps"] = [{**sweep, "name": "broken", "models": ["test/crashy", "test/hangs"]}]
    # sized for the 2-core test node; a 2-minute job: the measurement stops itself after 1 min, which
    # leaves a busy node a minute to tear down and record before SLURM's own limit
    config["measurement"].update({"cpus_per_task": 1, "mem_mb": 1000, "runtime_min": 2})
    (workdir / "config" / "e2e.yaml").write_text(yaml.safe_dump(config))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fake = os.pathsep.join([str(TESTS / "fakegpu"), str(workdir / "workflow")])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = fake
    # as many fake GPUs as the node's fake GRES, whose indices SLURM hands out in CUDA_VISIBLE_DEVICES
    os.environ["FAKE_GPU_COUNT"] = str(slurm_gpu_count())
    try:
        result = snakemake(
            workdir,
            "--profile",
            "slurm",
            "--configfile",
            "config/e2e.yaml",
            path_prefix=workdir / ".test-bin",
        )
    finally:
        os.environ.pop("FAKE_GPU_COUNT", None)
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return workdir, output


def test_each_failure_is_recorded_with_its_reason(failed_on_slurm: tuple[Path, str]) -> None:
    workdir, output = failed_on_slurm
    runs = workdir / "results" / "runs"
    crashed = json.loads((runs / KEY.format(name="crashy") / "run.json").read_text())
    assert crashed["status"] == "failed" and "before becoming healthy" in crashed["reason"], crashed["reason"]
    hung = json.loads((runs / KEY.format(name="hangs") / "run.json").read_text())
    assert hung["status"] == "failed" and hung["reason"].startswith("timed out: still running after 1.0 min")
    measured = [j for j in submitted_jobs(output) if j.rule == "measure"]
    assert len(measured) == 2 and all(j.record["JobState"] == "COMPLETED" for j in measured)
    for name in ("crashy", "hangs"):
        (line,) = (
            (workdir / "results" / "failures" / f"{KEY.format(name=name)}.jsonl").read_text().splitlines()
        )
        assert json.loads(line)["slurm_job_id"] in {j.slurm_id for j in measured}


def test_the_aggregates_are_built_and_list_the_failures(failed_on_slurm: tuple[Path, str]) -> None:
    workdir, _ = failed_on_slurm
    rows = pq.read_table(workdir / "results" / "summary" / "summary.parquet").to_pylist()
    assert sorted((r["model"], r["status"]) for r in rows) == [
        ("test/crashy", "failed"),
        ("test/hangs", "failed"),
    ]
    assert all(r["reason"] for r in rows)
    for path in ("tables/frontier.parquet", "tables/recommendations.csv", "figures/task-energy.png"):
        assert (workdir / "results" / path).is_file(), path
