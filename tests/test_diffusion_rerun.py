"""A measured diffusion point whose config leaves the generation to the pipeline family plans nothing
when the campaign is run again (the H200 campaign's PixArt-Sigma runs once stopped the next `snakemake`
with "steps: run has 20, config asks None").

Through Snakemake, as a user runs it: a copy of the workflow measures two PixArt-Sigma points (one
model names its pipeline, one leaves it to detection) with the xDiT worker imitation as the models'
`launcher` (tests/xdit_worker_imitation.py) and the test-only fake GPU as the energy sensor; the
task leaves steps, size and guidance unset. Then the run guard itself, on a run made by
`jouleflow measure diffusion`, and the run rules' rerun trigger (jobspec.identity_of).
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from fakegpu import FAKEGPU_DIR, FakeGPUConfig
from jouleflow.diffusion_pipelines import FAMILIES, PipelineFamily, generation_defaults
from jouleflow.measure.engines import xdit
from jouleflow.plan import runguard
from jouleflow.plan.jobspec import identity_of
from jouleflow.plan.runguard import StaleRunError, decide
from pipeline_helpers import MEASURE_RULES, copy_workflow, execute, plan, points_of
from test_measure_diffusion_session import GPU_VARS, IMITATION, PIXART, measure

# Two PixArt-Sigma models, not config/config.yaml's entry: one names its xDiT pipeline (as the H200
# campaign's does), the other leaves it to be detected from the id.
NAMED, DETECTED = "test/pixart-named", "test/PixArt-Sigma-detected"
POINTS = {m: f"text-to-image/{m.replace('/', '--')}/H100/uly1-ring1/2" for m in (NAMED, DETECTED)}
RUNS = {m: f"results/runs/{p}" for m, p in POINTS.items()}
LAUNCHER = [sys.executable, str(IMITATION), "--nproc={nproc}"]  # in place of `torchrun ... --module <worker>`
DEFAULTS = {"steps": 20, "height": 1024, "width": 1024, "guidance_scale": 4.5}  # PixArt-Sigma's


def campaign(**generation) -> dict:
    """Config overrides: the two measured points, generation left to the family unless given."""
    model = {"modality": "diffusion", "memory_gb": 12, "launcher": LAUNCHER}
    return {
        "models": {NAMED: {**model, "pipeline": "pixart-sigma"}, DETECTED: model},
        "tasks": {
            "text-to-image": {
                "modality": "diffusion",
                "generation": {"num_batches": 2, "warmup_batches": 1, **generation},
            }
        },
        "sweeps": [
            {
                "name": "pixart",
                "source": "measure",
                "models": [NAMED, DETECTED],
                "tasks": ["text-to-image"],
                "gpus": ["H100"],
                "parallelism": ["uly1-ring1"],
                "batch_sizes": [2],
            }
        ],
        # config/config.yaml's vLLM arguments and environment are not for xDiT
        "measurement": {"server_args": [], "env": {}},
    }


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The workflow copy after `snakemake <the two run dirs>` measured them (rule measure)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("diffusion-rerun") / "wf")
    with pytest.MonkeyPatch.context() as mp:
        for var in GPU_VARS:
            mp.delenv(var, raising=False)
        for var, value in FakeGPUConfig(power_w="200").to_env().items():
            mp.setenv(var, value)
        # The rules' `jouleflow` puts the copied package first; the fake GPU comes before it.
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [FAKEGPU_DIR, os.environ.get("PYTHONPATH")])))
        mp.setenv("HF_HUB_CACHE", str(workdir / "hf-cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        assert points_of(plan(workdir, campaign()), ["measure"]) == set(POINTS.values())
        execute(workdir, campaign(), targets=RUNS.values())
    return workdir


@pytest.mark.parametrize("model", [NAMED, DETECTED])
def test_the_points_are_measured_with_the_launcher_and_the_family_defaults(measured, model):
    spec = json.loads((measured / f"results/specs/{POINTS[model]}.json").read_text())
    assert spec["launcher"] == LAUNCHER
    assert spec["pipeline"] == ("pixart-sigma" if model == NAMED else None)
    assert {k: spec[k] for k in DEFAULTS} == dict.fromkeys(DEFAULTS)
    doc = json.loads((measured / RUNS[model] / "run.json").read_text())
    assert doc["status"] == "ok", doc.get("reason")
    assert doc["provenance"]["energy_source"] == "nvml-via-zeus"
    assert doc["provenance"]["worker"]["versions"] == {"xfuser": "imitation"}
    assert LAUNCHER[1] in doc["worker"]["argv"]
    config = doc["config"]
    assert config["modality"] == "diffusion" and config["pipeline"] == "pixart-sigma"
    resolved = {k: config[k] for k in ("steps", "height", "width", "guidance_scale", "num_frames")}
    assert resolved == generation_defaults("pixart-sigma") == {**DEFAULTS, "num_frames": None}


def test_a_second_run_plans_nothing_for_the_points(measured):
    before = {m: (measured / run / "run.json").read_bytes() for m, run in RUNS.items()}
    for _ in range(2):
        jobs = plan(measured, campaign())
        assert points_of(jobs, MEASURE_RULES) == set()
        assert set(POINTS.values()) <= points_of(jobs, ["energy"])  # the analysis still to do
    assert {m: (measured / run / "run.json").read_bytes() for m, run in RUNS.items()} == before


def test_other_steps_are_refused_and_the_default_given_explicitly_is_not(measured):
    with pytest.raises(Exception) as info:
        plan(measured, campaign(steps=25))
    text = str(info.value)
    assert "2 finished run(s) no longer match the config" in text
    for run in RUNS.values():
        assert f"{run}: finished run differs from the config (steps: run has 20, config asks 25)" in text
    # Named explicitly, the default is what the runs made: nothing to do where the model names its
    # pipeline. Where it is detected, planning cannot tell the family: the changed spec reruns the
    # point's job, whose guard keeps the run (the guard at planning already accepts it).
    jobs = plan(measured, campaign(**DEFAULTS))
    assert points_of(jobs, MEASURE_RULES) == {POINTS[DETECTED]}


# --- the guard on runs of `jouleflow measure diffusion` (the worker imitation) --------------------

GUARD_SPEC = {
    "task": "text-to-image", "model": PIXART, "gpu": "H100", "num_gpus": 1, "batch_size": 1,
    "precision": "bf16", "pipeline": None, "ulysses_degree": 1, "ring_degree": 1, "cfg_parallel": False,
    "pipefusion_degree": 1, "load_format": "real", "steps": None, "height": None, "width": None,
    "num_frames": None, "guidance_scale": None, "seed": 0, "num_batches": 2, "warmup_batches": 1,
    "prompts": None, "cycle_prompts": False, "xfuser_args": [], "env": {},
}  # fmt: skip


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A run of `jouleflow measure diffusion` (on the fake H100) with the family's defaults."""
    tmp = tmp_path_factory.mktemp("cli-run")
    out = tmp / "run"
    done = measure(tmp, out, "-b", "1", "--num-batches", "2", "--warmup-batches", "1", fake=FakeGPUConfig())
    assert done.returncode == 0, done.stderr
    return out


def test_nulls_are_the_recorded_family_and_its_defaults(cli_run):
    assert decide(GUARD_SPEC, cli_run, "measure").action == "keep"
    explicit = {**GUARD_SPEC, "pipeline": "pixart-sigma", "steps": 20, "height": 1024, "guidance_scale": 4.5}
    assert decide(explicit, cli_run, "measure").action == "keep"


@pytest.mark.parametrize(
    "change, shown",
    [
        ({"steps": 30}, "steps: run has 20, config asks 30"),
        ({"width": 512}, "width: run has 1024, config asks 512"),
        ({"guidance_scale": 7.0}, "guidance_scale: run has 4.5, config asks 7.0"),
        ({"pipeline": "pixart-alpha"}, "pipeline: run has 'pixart-sigma', config asks 'pixart-alpha'"),
    ],
)
def test_an_explicit_value_must_equal_the_runs(cli_run, change, shown):
    with pytest.raises(
        StaleRunError, match=re.escape(f"{cli_run}: finished run differs from the config ({shown})")
    ):
        decide({**GUARD_SPEC, **change}, cli_run, "measure")


def test_a_run_made_under_an_older_default_differs(cli_run, monkeypatch):
    newer = {**generation_defaults("pixart-sigma"), "steps": 28}
    monkeypatch.setattr(runguard, "generation_defaults", lambda name: newer)
    shown = "steps: run has 20, config asks 28 (the pixart-sigma default)"
    with pytest.raises(
        StaleRunError, match=re.escape(f"{cli_run}: finished run differs from the config ({shown})")
    ):
        decide(GUARD_SPEC, cli_run, "measure")


def test_an_llm_run_or_an_unknown_family_is_compared_as_the_spec_says():
    llm = {"task": "chat", "steps": None}
    assert runguard.with_family_defaults(llm, {"task": "chat"}) == (llm, {})
    unknown, newer = {"pipeline": None, "steps": None}, {"modality": "diffusion", "pipeline": "wan"}
    assert "wan" not in FAMILIES and runguard.with_family_defaults(unknown, newer) == (unknown, {})


def test_naming_the_default_is_the_same_rerun_trigger_as_leaving_it_unset():
    spec = {**GUARD_SPEC, "pipeline": "pixart-sigma"}
    unset = identity_of(spec, "measure")
    assert identity_of({**spec, **DEFAULTS}, "measure") == unset and unset["steps"] is None
    assert identity_of({**spec, "steps": 25}, "measure")["steps"] == 25
    # detected pipeline: planning cannot tell the family, the spec's values are the trigger
    assert identity_of({**GUARD_SPEC, "steps": 20}, "measure")["steps"] == 20


def test_the_engine_module_still_gives_the_shared_families():
    assert xdit.FAMILIES is FAMILIES and xdit.PipelineFamily is PipelineFamily
