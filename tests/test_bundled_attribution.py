"""The bundled runs' attribution.json (resources/reference/attribution/) are what the current code
computes from the bundled runs: recomputed here, so a change to the analysis cannot leave them stale.
Regenerate them with the command in docs/reference.md ("Attribution of the bundled runs")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from jouleflow import traces
from jouleflow.analysis.attribution import attribute
from jouleflow.attribution_record import AttributionRecord
from jouleflow.records import read_run

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "resources" / "reference"
ALL_RUNS = sorted(p.parent.relative_to(BUNDLE / "runs") for p in (BUNDLE / "runs").rglob(traces.RUN_JSON))
# The attribution is for LLM runs; the diffusion runs (xDiT) have none.
DIFFUSION = [r for r in ALL_RUNS if read_run(BUNDLE / "runs" / r).config.get("modality") == "diffusion"]
RUNS = [r for r in ALL_RUNS if r not in DIFFUSION]
STORED = sorted(p.parent.relative_to(BUNDLE / "attribution") for p in BUNDLE.rglob("attribution.json"))


def same(stored: Any, fresh: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (a least-squares solve may round differently on another BLAS)."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        assert sorted(stored) == sorted(fresh), f"{where}: keys differ"
        for key in stored:
            same(stored[key], fresh[key], f"{where}.{key}")
    elif isinstance(stored, list) and isinstance(fresh, list):
        assert len(stored) == len(fresh), f"{where}: lengths differ"
        for i, (s, f) in enumerate(zip(stored, fresh, strict=True)):
            same(s, f, f"{where}[{i}]")
    elif isinstance(stored, float) and isinstance(fresh, float):
        assert math.isclose(stored, fresh, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {stored} != {fresh}"
    else:
        assert stored == fresh, f"{where}: {stored!r} != {fresh!r}"


def test_every_bundled_run_has_its_attribution():
    # 3 H100 runs (measured by hand) and 28 H200 LLM runs (measured by snakemake, shared servers):
    # Llama-3.1-8B BF16 and FP8 at 7 batch sizes each, Qwen3-8B chat at 3 and gpqa-lengths at 2,
    # Qwen3-VL-8B image-chat at 3, Qwen3-30B-A3B and Qwen3-32B chat at 3 each; and PixArt-Sigma at 5
    assert len(RUNS) == 31 and STORED == RUNS
    assert [r.parts[0] for r in DIFFUSION] == ["text-to-image"] * 5
    assert sorted({run.parts[2] for run in RUNS}) == ["H100", "H200"]


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_the_bundled_attribution_is_what_the_code_computes(run, monkeypatch):
    stored = json.loads((BUNDLE / "attribution" / run / "attribution.json").read_text())
    monkeypatch.chdir(REPO)  # the stored run_dir is the path relative to the repository, as generated
    doc, _ = attribute(Path(stored["run_dir"]))
    assert Path(stored["run_dir"]) == Path("resources/reference/runs") / run
    # The file as `jouleflow attribute` writes it: the document through its record (versioned).
    same(stored, json.loads(traces.json_text(AttributionRecord.from_dict(doc).to_dict())))
    if run.parts[2] == "H100":
        # what the H100 runs (measured before these were recorded) lack is said, not guessed
        assert stored["static_dynamic"]["static_share"] is None
        assert "idle_baseline" in stored["static_dynamic"]["reason"]
        assert set(stored["missing"]) == {"idle_baseline", "gpu_metrics", "prefill_tokens_counter"}
    else:
        # the H200 runs carry the idle baseline, the prompt-token counter and gpu_metrics.parquet
        assert stored["missing"] == {}
        assert 0 < stored["static_dynamic"]["static_share"] < 1
