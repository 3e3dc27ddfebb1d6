"""GPU allocation through Zeus's real device layer on the test-only fake GPU.

In-process tests use the `fake_gpu` fixture; the concurrency test starts separate Python
processes (as Snakemake starts measurement jobs) with the fake installed by its sitecustomize.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakegpu import FAKEGPU_DIR, FakeGPUConfig
from jouleflow.measure.gpualloc import GpuAllocationError, allocate_gpus, visible_gpus

REPO = Path(__file__).resolve().parents[1]
A100 = "NVIDIA A100-SXM4-80GB"


def test_visible_gpus_come_from_zeus(fake_gpu) -> None:
    fake_gpu.configure(FakeGPUConfig(count=4))
    gpus = visible_gpus()
    assert [(g.index, g.device_id) for g in gpus] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert {g.name for g in gpus} == {"NVIDIA H100 80GB HBM3"}


def test_under_slurm_uses_the_gpus_slurm_gave(fake_gpu, monkeypatch, tmp_path: Path) -> None:
    fake_gpu.configure(FakeGPUConfig(count=4))
    # What SLURM sets for a job given physical GPUs 1 and 3.
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    with allocate_gpus(2, "H100", lock_dir=tmp_path) as gpus:
        assert gpus == [0, 1]  # indices among the visible GPUs, as PowerSampler takes them
        assert gpus.cuda_visible_devices == "1,3"  # what the inference server must see


def test_under_slurm_too_few_gpus_names_the_job_and_visibility(fake_gpu, monkeypatch, tmp_path: Path) -> None:
    fake_gpu.configure(FakeGPUConfig(count=4))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    with pytest.raises(GpuAllocationError) as err, allocate_gpus(2, "H100", lock_dir=tmp_path):
        pass
    message = str(err.value)
    assert "needs 2 H100 GPU(s), but only 1 are visible" in message
    assert "SLURM job 4242" in message
    assert "CUDA_VISIBLE_DEVICES='2'" in message


def test_absent_gpu_type_fails_clearly(fake_gpu, tmp_path: Path) -> None:
    fake_gpu.configure(FakeGPUConfig(count=2, name=A100))
    with (
        pytest.raises(GpuAllocationError) as err,
        allocate_gpus(1, "H100", lock_dir=tmp_path, job="measure x"),
    ):
        pass
    message = str(err.value)
    assert "measure x needs GPU type 'H100'" in message
    assert f"2 x {A100}" in message


def test_no_nvml_is_a_clear_error(fake_gpu, tmp_path: Path) -> None:
    fake_gpu.configure(FakeGPUConfig(init_error="DRIVER_NOT_LOADED"))
    with (
        pytest.raises(GpuAllocationError, match="cannot list the GPUs"),
        allocate_gpus(1, "H100", lock_dir=tmp_path),
    ):
        pass


_JOB = textwrap.dedent(
    """
    import json, sys, time
    from jouleflow.measure.gpualloc import allocate_gpus
    out, hold_s = sys.argv[1], float(sys.argv[2])
    with allocate_gpus(2, "H100", poll_interval_s=0.05) as gpus:
        t0 = time.time()
        time.sleep(hold_s)
        t1 = time.time()
    with open(out, "w") as f:
        json.dump({"devices": gpus.device_ids, "cvd": gpus.cuda_visible_devices, "t0": t0, "t1": t1}, f)
    """
)


def test_concurrent_job_processes_never_share_a_gpu(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(FakeGPUConfig(count=4).to_env())
    env["PYTHONPATH"] = os.pathsep.join([FAKEGPU_DIR, str(REPO / "workflow"), env.get("PYTHONPATH", "")])
    env["JOULEFLOW_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    # 5 jobs of 2 GPUs on a 4-GPU box.
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"job{i}.json"), "1.0"], env=env)
        for i in range(5)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    records = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(5)]
    for r in records:
        assert r["cvd"] == ",".join(map(str, r["devices"]))
        assert len(set(r["devices"])) == 2
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            if a["t0"] < b["t1"] and b["t0"] < a["t1"]:
                assert not set(a["devices"]) & set(b["devices"]), (a, b)
    # At most two jobs at once: at every job start, count the jobs running then.
    for r in records:
        running = sum(1 for o in records if o["t0"] <= r["t0"] < o["t1"])
        assert running <= 2
    assert max(r["t1"] for r in records) - min(r["t0"] for r in records) >= 3 * 1.0 - 0.1
