"""The H200 verification bundles (resources/verification/h200-modality-tasks, h200-reuse-topup) are run
directories measured on a GPU: the analysis run here on their traces must give what the GPU host's
pipeline wrote, and the diagnosis must say what the latents show (docs/reference.md, docs/attribution.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jouleflow.cli import main

VERIFY = Path(__file__).resolve().parents[1] / "resources/verification"
MODALITY = VERIFY / "h200-modality-tasks"
POINTS = [
    ("lm-arena-chat", "Qwen--Qwen3-8B", 16),
    ("lm-arena-chat", "Qwen--Qwen3-8B", 64),
    ("image-chat", "Qwen--Qwen3-VL-8B-Instruct", 64),
    ("video-chat", "Qwen--Qwen3-VL-8B-Instruct", 64),
    ("gpqa-lengths", "Qwen--Qwen3-8B", 64),
]


def _point(task: str, model: str, batch: int) -> tuple[Path, Path]:
    rel = Path(task, model, "H200", "tp1", str(batch))
    return MODALITY / "runs" / rel, MODALITY / "energy" / rel


@pytest.mark.parametrize(("task", "model", "batch"), POINTS)
def test_the_window_energy_is_what_the_gpu_host_computed(task, model, batch, tmp_path):
    run, stored = _point(task, model, batch)
    out = tmp_path / "summary.json"
    assert main(["energy", str(run), "-o", str(out)]) == 0
    new, old = json.loads(out.read_text()), json.loads((stored / "summary.json").read_text())
    for key in (
        "steady_start",
        "steady_end",
        "steady_energy_j",
        "energy_per_token_j",
        "tokens_per_s",
        "mean_power_w",
    ):
        assert new[key] == pytest.approx(old[key], rel=1e-9), key
    assert new["valid"] == old["valid"] and set(new["flags"]) >= set(old["flags"])


def test_video_at_batch_64_is_frontend_bound_and_text_saturated(tmp_path):
    run, stored = _point("video-chat", "Qwen--Qwen3-VL-8B-Instruct", 64)
    out = tmp_path / "attribution.json"
    assert main(["attribute", str(run), "--summary", str(stored / "summary.json"), "-o", str(out)]) == 0
    diag = json.loads(out.read_text())["diagnosis"]
    load = json.loads((run / "run.json").read_text())["load"]
    assert diag["primary"] == "frontend-bound", diag
    ev = diag["evidence"]
    # The client held the top-up's final count in flight the whole window; the engine ran ~20, none waiting.
    assert load["in_flight_final"] == 128 and ev["mean_client_in_flight"] == pytest.approx(128, abs=1)
    assert ev["mean_running"] < 0.85 * 64 and ev["mean_waiting"] < 0.5
    summary = json.loads((stored / "summary.json").read_text())
    assert "low-batch" in summary["flags"]

    run, stored = _point("lm-arena-chat", "Qwen--Qwen3-8B", 64)
    assert main(["attribute", str(run), "--summary", str(stored / "summary.json"), "-o", str(out)]) == 0
    diag = json.loads(out.read_text())["diagnosis"]
    assert diag["primary"] == "saturated" and "frontend-bound" not in diag["labels"]
    assert diag["evidence"]["mean_waiting"] > 30  # the engine's own queue stayed full


@pytest.mark.parametrize("batch", [8, 256])
def test_the_static_share_comes_from_the_recorded_idle_baseline(batch, tmp_path):
    run = VERIFY / "h200-reuse-topup" / str(batch)
    out = tmp_path / "attribution.json"
    assert main(["attribute", str(run), "--summary", str(run / "summary.json"), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    baseline = json.loads((run / "run.json").read_text())["provenance"]["idle_baseline"]["mean_power_w"]["0"]
    summary = json.loads((run / "summary.json").read_text())
    window_s = summary["steady_end"] - summary["steady_start"]
    assert doc["static_dynamic"]["static_share"] == pytest.approx(
        baseline * window_s / summary["steady_energy_j"], rel=1e-6
    )
    stored = json.loads((run / "attribution.json").read_text())  # written on the GPU host
    assert doc["static_dynamic"]["static_share"] == pytest.approx(
        stored["static_dynamic"]["static_share"], rel=1e-9
    )
