"""The worker's torch-free parts: its spec, the batch schedule and each pipeline's call arguments."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from jouleflow.measure.engines import xdit
from jouleflow.measure.engines.xdit_worker import SpecError, call_kwargs, is_oom, load_spec, schedule

INPUT = SimpleNamespace(
    height=768,
    width=1360,
    num_inference_steps=50,
    guidance_scale=6.0,
    num_frames=81,
    use_resolution_binning=True,
)


def spec(**over):
    base = {
        "pipeline": xdit.FAMILIES["pixart-sigma"].worker_spec(),
        "dtype": "bfloat16",
        "batches": [["a", "b"], ["c", "d"]],
        "warmup_batches": 1,
        "events_path": "worker_events.jsonl",
        "output_type": "pil",
    }
    return {**base, **over}


def test_load_spec_checks_keys_and_batches(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec()))
    assert load_spec(path)["batches"] == [["a", "b"], ["c", "d"]]
    path.write_text(json.dumps({k: v for k, v in spec().items() if k not in ("dtype", "events_path")}))
    with pytest.raises(SpecError, match=r"s\.json: missing key\(s\) dtype, events_path"):
        load_spec(path)
    path.write_text(json.dumps(spec(batches=[["a"], []])))
    with pytest.raises(SpecError, match="batches must be a non-empty list of non-empty lists"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read the worker spec"):
        load_spec(tmp_path / "missing.json")


def test_schedule_warms_up_on_the_timed_prompts_then_runs_every_batch():
    batches = [["a"], ["b"]]
    assert list(schedule(batches, 3)) == [
        ("warmup", 0, ["a"]), ("warmup", 1, ["b"]), ("warmup", 2, ["a"]),
        ("timed", 0, ["a"]), ("timed", 1, ["b"]),
    ]  # fmt: skip
    assert list(schedule(batches, 0)) == [("timed", 0, ["a"]), ("timed", 1, ["b"])]


def test_call_arguments_per_family():
    common = {
        "height": 768,
        "width": 1360,
        "num_inference_steps": 50,
        "guidance_scale": 6.0,
        "output_type": "pil",
    }
    cog = call_kwargs(xdit.FAMILIES["cogvideox"].worker_spec(), INPUT, ["p"])
    assert cog == {"prompt": ["p"], **common, "num_frames": 81}
    latte = call_kwargs(xdit.FAMILIES["latte"].worker_spec(), INPUT, ["p"], "pt")
    assert latte == {"prompt": ["p"], **common, "output_type": "pt", "video_length": 81}
    flux = call_kwargs(xdit.FAMILIES["flux"].worker_spec(), INPUT, ["p", "q"])
    assert flux == {"prompt": ["p", "q"], **common, "max_sequence_length": 256}
    pixart = call_kwargs(xdit.FAMILIES["pixart-sigma"].worker_spec(), INPUT, ["p"])
    assert pixart == {"prompt": ["p"], **common, "use_resolution_binning": True, "clean_caption": False}
    sd3 = call_kwargs(xdit.FAMILIES["sd3"].worker_spec(), INPUT, ["p"])
    assert sd3 == {"prompt": ["p"], **common}


def test_out_of_memory_recognised_from_the_exception():
    class OutOfMemoryError(RuntimeError):
        pass

    assert is_oom(OutOfMemoryError("Tried to allocate 2 GiB"))
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_oom(RuntimeError("Sequence parallelism is not supported by the model"))
