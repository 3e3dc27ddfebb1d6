"""Local multi-GPU allocation: disjoint GPUs across concurrent processes, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from jouleflow.measure.gpualloc import (
    AllocatedGpus,
    GpuAllocationError,
    VisibleGpu,
    allocate_gpus,
    gpu_type_matches,
)

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def four_h100() -> list[VisibleGpu]:
    return [VisibleGpu(index=i, device_id=i, name=H100) for i in range(4)]


def allocate_and_release(count: int, gpu_type: str | None, **kwargs: object) -> list[int]:
    with allocate_gpus(count, gpu_type, **kwargs) as gpus:  # type: ignore[arg-type]
        return list(gpus)


@pytest.mark.parametrize(
    ("gpu_type", "name", "expected"),
    [
        ("H100", H100, True),
        ("h100", H100, True),
        ("A100", A100, True),
        ("A100", H100, False),
        ("L4", "NVIDIA L4", True),
        ("L4", "NVIDIA L40S", False),
        ("B200", "NVIDIA GB200", False),
        ("MI300X", "AMD Instinct MI300X", True),
        ("H100", "NVIDIA H100 NVL", True),
    ],
)
def test_gpu_type_matches_whole_tokens(gpu_type: str, name: str, expected: bool) -> None:
    assert gpu_type_matches(gpu_type, name) is expected


def _hold(count: int, lock_dir: str, hold_s: float, out: str, tag: int) -> None:
    with allocate_gpus(count, "H100", lock_dir=lock_dir, poll_interval_s=0.02, inventory=four_h100) as gpus:
        t0 = time.time()
        time.sleep(hold_s)
        t1 = time.time()
    Path(out, f"{tag}.json").write_text(json.dumps({"devices": gpus.device_ids, "t0": t0, "t1": t1}))


def test_concurrent_processes_get_disjoint_gpus(tmp_path: Path) -> None:
    lock_dir, out = tmp_path / "locks", tmp_path / "out"
    out.mkdir()
    ctx = multiprocessing.get_context("fork")
    # 6 jobs of 2 GPUs on a 4-GPU box: at most 2 can run at once, the rest wait.
    procs = [ctx.Process(target=_hold, args=(2, str(lock_dir), 0.4, str(out), i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    records = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    assert len(records) == 6
    for r in records:
        assert len(r["devices"]) == 2 and len(set(r["devices"])) == 2
        assert set(r["devices"]) <= {0, 1, 2, 3}
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            overlap = a["t0"] < b["t1"] and b["t0"] < a["t1"]
            if overlap:
                assert not set(a["devices"]) & set(b["devices"]), (a, b)
    # Some jobs had to wait: 6 x 0.4 s on 2 slots takes at least 1.2 s of wall time.
    span = max(r["t1"] for r in records) - min(r["t0"] for r in records)
    assert span >= 1.2 - 0.05


def test_allocation_in_one_process_excludes_the_next(tmp_path: Path) -> None:
    with allocate_gpus(3, "H100", lock_dir=tmp_path, inventory=four_h100) as first:
        assert first == [0, 1, 2]
        with allocate_gpus(1, "H100", lock_dir=tmp_path, inventory=four_h100) as second:
            assert second == [3]
    # Released: the whole box is free again.
    with allocate_gpus(4, "H100", lock_dir=tmp_path, inventory=four_h100) as again:
        assert again == [0, 1, 2, 3]


def test_waiting_times_out_naming_the_holder(tmp_path: Path) -> None:
    with (
        allocate_gpus(4, "H100", lock_dir=tmp_path, inventory=four_h100),
        pytest.raises(GpuAllocationError) as err,
    ):
        allocate_and_release(
            1, "H100", lock_dir=tmp_path, inventory=four_h100, wait_timeout_s=0.3, poll_interval_s=0.05
        )
    message = str(err.value)
    assert "4 of 4 suitable GPU(s) busy" in message
    assert f"pid={os.getpid()}" in message
    assert str(tmp_path) in message


def _hold_forever(lock_dir: str, holding) -> None:  # noqa: ANN001 - a multiprocessing Event
    with allocate_gpus(4, "H100", lock_dir=lock_dir, inventory=four_h100):
        holding.set()
        time.sleep(600)


def test_a_killed_holder_frees_its_gpus(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    holding = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(str(tmp_path), holding))
    holder.start()
    assert holding.wait(timeout=30)
    try:
        with pytest.raises(GpuAllocationError):
            allocate_and_release(1, "H100", lock_dir=tmp_path, inventory=four_h100, wait_timeout_s=0.2)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    with allocate_gpus(4, "H100", lock_dir=tmp_path, inventory=four_h100, wait_timeout_s=5) as gpus:
        assert gpus == [0, 1, 2, 3]


def test_absent_gpu_type_fails_at_once_naming_both_types(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(GpuAllocationError) as err:
        allocate_and_release(1, "A100", lock_dir=tmp_path, inventory=four_h100, job="measure llama b64")
    assert time.monotonic() - t0 < 2
    message = str(err.value)
    assert "measure llama b64" in message
    assert "'A100'" in message
    assert f"4 x {H100}" in message


def test_more_gpus_than_present_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(GpuAllocationError, match=r"needs 8 H100 GPU\(s\), but only 4 are visible"):
        allocate_and_release(8, "H100", lock_dir=tmp_path, inventory=four_h100)


def test_no_gpu_visible_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GpuAllocationError, match="no GPU is visible"):
        allocate_and_release(1, None, lock_dir=tmp_path, inventory=lambda: [])


def test_mixed_box_allocates_only_the_requested_type(tmp_path: Path) -> None:
    # Visible indices 0..3 map to device ids 4..7 (as under CUDA_VISIBLE_DEVICES=4,5,6,7).
    mixed = [
        VisibleGpu(0, 4, A100),
        VisibleGpu(1, 5, H100),
        VisibleGpu(2, 6, A100),
        VisibleGpu(3, 7, H100),
    ]
    with allocate_gpus(2, "H100", lock_dir=tmp_path, inventory=lambda: mixed) as gpus:
        assert isinstance(gpus, AllocatedGpus)
        assert gpus == [1, 3]
        assert gpus.device_ids == [5, 7]
        assert gpus.cuda_visible_devices == "5,7"
        with allocate_gpus(2, "A100", lock_dir=tmp_path, inventory=lambda: mixed) as others:
            assert others.cuda_visible_devices == "4,6"


def test_zero_gpus_yields_nothing_and_negative_is_rejected(tmp_path: Path) -> None:
    with allocate_gpus(0, "H100", lock_dir=tmp_path, inventory=four_h100) as gpus:
        assert gpus == []
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError), allocate_gpus(-1, "H100", lock_dir=tmp_path, inventory=four_h100):
        pass
