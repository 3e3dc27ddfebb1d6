"""The GPU verification runs bundled under resources/diffusion-verification (real xfuser 0.4.5).

Cross-checks what the parent recorded against what the worker reported from inside xDiT and
against the raw traces, so a regression in either side of the protocol shows here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from jouleflow import traces
from jouleflow.records import read_run

RUNS = Path(__file__).resolve().parents[1] / "resources" / "diffusion-verification" / "runs"
RUN_DIRS = sorted(p.parent for p in RUNS.rglob("run.json"))


def test_the_verification_runs_are_there():
    labels = {(p.parents[1].name, p.parent.name, p.name) for p in RUN_DIRS}
    assert ("H100", "uly1-ring1", "b8") in labels
    assert {
        ("H200", par, "b4") for par in ("uly2-ring1", "uly1-ring2", "uly1-ring1-cfg2", "uly1-ring1-pf2")
    } <= labels


@pytest.mark.parametrize("run", RUN_DIRS, ids=lambda p: "/".join(p.parts[-3:]))
def test_recorded_config_matches_what_xdit_reported(run):
    doc = read_run(run).to_dict()
    cfg, worker = doc["config"], doc["provenance"]["worker"]
    assert (doc["status"], cfg["modality"], cfg["load_format"]) == ("ok", "diffusion", "dummy")
    # The run directory's path is the grid point: .../<gpu>/<parallelism>/b<batch>.
    assert (run.parents[1].name, run.parent.name, run.name) == (
        cfg["gpu"],
        cfg["parallelism"],
        f"b{cfg['batch_size']}",
    )
    par = worker["parallel"]
    assert par["world_size"] == cfg["num_gpus"]
    assert (par["ulysses"], par["ring"], par["cfg"], par["pipefusion"]) == (
        cfg["ulysses_degree"], cfg["ring_degree"], cfg["cfg_degree"], cfg["pipefusion_degree"],
    )  # fmt: skip
    assert worker["versions"]["xfuser"] == "0.4.5" and worker["pipeline_class"] == "xFuserPixArtSigmaPipeline"
    assert cfg["gpu"] in worker["device_name"]

    batches = traces.read_table(run / "batches.parquet").to_pylist()
    assert [b["batch_index"] for b in batches] == list(range(cfg["num_batches"]))
    assert all(b["ok"] and b["batch_size"] == cfg["batch_size"] for b in batches)
    power = pq.read_table(run / "power.parquet").to_pylist()
    assert {r["gpu"] for r in power} == set(range(cfg["num_gpus"]))
    # Every batch lies inside the sampled span, so each window's energy is interpolated, never extrapolated.
    assert (
        min(r["t"] for r in power) < batches[0]["t_start"]
        and max(r["t"] for r in power) > batches[-1]["t_end"]
    )
    events = [json.loads(line) for line in (run / "worker_events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "done"
