"""GPU jobs through the SLURM profile: the request, and what the job then sees.

A tiny workflow whose jobs ask for GPUs exactly as measurement jobs do (resources from
`jouleflow.plan.gpurequest`), run against the local SLURM (4 fake `gpu:h100` GRES). Inside each job,
`allocate_gpus` runs on the test-only fake GPU (4 fake H100s, installed by its sitecustomize on
PYTHONPATH, which sbatch --export=ALL carries into the job): the GPUs SLURM gave the job
(CUDA_VISIBLE_DEVICES) must be the ones it allocates, and concurrent jobs never share one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from fakegpu import FAKEGPU_DIR, FakeGPUConfig
from slurm_helpers import REPO, add_profile, require_slurm, snakemake, submitted_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEFILE = """
import sys
sys.path.insert(0, {workflow!r})
from jouleflow.plan.gpurequest import gpu_request

JOBS = {{"a": (2, "gpus"), "b": (2, "gpus"), "c": (1, "gres")}}

rule all:
    input: expand("gpus/{{name}}.json", name=JOBS)

rule gpu_job:
    output: "gpus/{{name}}.json"
    log: "logs/{{name}}.log"
    resources:
        gpu=lambda wc: gpu_request(JOBS[wc.name][0], "H100", {{"gpu_request": JOBS[wc.name][1]}})["gpu"],
        gpu_model=lambda wc: gpu_request(JOBS[wc.name][0], "H100", {{"gpu_request": JOBS[wc.name][1]}})["gpu_model"],
        gres=lambda wc: gpu_request(JOBS[wc.name][0], "H100", {{"gpu_request": JOBS[wc.name][1]}})["gres"],
        runtime=5,
        mem_mb=500,
    params:
        n_gpus=lambda wc: JOBS[wc.name][0],
    shell:
        "{python} {probe} {{params.n_gpus}} {{output}} > {{log}} 2>&1"
"""

PROBE = """
import json, os, sys, time
from jouleflow.measure.gpualloc import allocate_gpus
count, out = int(sys.argv[1]), sys.argv[2]
seen = os.environ.get("CUDA_VISIBLE_DEVICES")
with allocate_gpus(count, "H100") as gpus:
    t0 = time.time()
    time.sleep(5)
    t1 = time.time()
record = {"slurm_job_id": os.environ.get("SLURM_JOB_ID"), "cuda_visible_devices": seen,
          "allocated": list(gpus), "allocated_devices": gpus.cuda_visible_devices, "t0": t0, "t1": t1}
with open(out, "w") as f:
    json.dump(record, f)
"""


def test_gpu_jobs_get_the_gpus_they_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_slurm()
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.format(workflow=str(REPO / "workflow"), python=sys.executable, probe=tmp_path / "probe.py")
    )
    add_profile(tmp_path)
    for key, value in FakeGPUConfig(count=4).to_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([FAKEGPU_DIR, str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("JOULEFLOW_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = snakemake(tmp_path, "--profile", "slurm", timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    jobs = {j.wildcards: j for j in submitted_jobs(result.stdout + result.stderr)}
    # The sbatch request as slurmctld recorded it: --gpus=h100:2 for a and b, --gres=gpu:h100:1 for c.
    assert jobs["a"].record["TresPerJob"] == jobs["b"].record["TresPerJob"] == "gres:gpu:h100:2"
    assert "TresPerJob" not in jobs["c"].record
    assert jobs["c"].record["TresPerNode"] == "gres:gpu:h100:1"

    seen = {name: json.loads((tmp_path / "gpus" / f"{name}.json").read_text()) for name in jobs}
    for name, record in seen.items():
        assert record["slurm_job_id"] == jobs[name].slurm_id
        # The step sees exactly the GPUs SLURM gave the job, and allocate_gpus takes those.
        devices = record["cuda_visible_devices"].split(",")
        assert len(devices) == (1 if name == "c" else 2)
        assert record["allocated_devices"] == record["cuda_visible_devices"]
        assert record["allocated"] == list(range(len(devices)))
    names = sorted(seen)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            a, b = seen[x], seen[y]
            if a["t0"] < b["t1"] and b["t0"] < a["t1"]:
                shared = set(a["cuda_visible_devices"].split(",")) & set(b["cuda_visible_devices"].split(","))
                assert not shared, (x, y, a, b)
