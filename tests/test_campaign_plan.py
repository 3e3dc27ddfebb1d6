"""`jouleflow campaign plan` and the shipped configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jouleflow.plan.config import ConfigSchemaError, load_config
from jouleflow.plan.grid import build_grid
from jouleflow.plan.gridtable import sync_planned_config, write_grid_tables
from jouleflow.plan.localgpu import resolve_local
from pipeline_helpers import H200_POINTS, copy_workflow

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"


def campaign_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(workdir / "workflow")}
    return subprocess.run(
        [sys.executable, "-m", "jouleflow", "campaign", *args],
        cwd=workdir, capture_output=True, text=True, env=env,
    )  # fmt: skip


def plan_cli(workdir: Path, *configfiles: Path) -> subprocess.CompletedProcess:
    args = [a for f in configfiles for a in ("--configfile", str(f))]
    return campaign_cli(workdir, "plan", *args, "--jobs", "jobs.tsv")


def test_plan_lists_runs_and_skipped_points(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    default = plan_cli(workdir, workdir / "config" / "config.yaml")
    assert default.returncode == 0, default.stderr
    runs = 3 + len(H200_POINTS)  # the fixture's H100 runs and the bundle's H200 runs
    assert default.stdout.splitlines()[0] == f"{runs} run(s) ({runs} reference); 0 skipped"
    assert len((workdir / "jobs.tsv").read_text().splitlines()) == 1 + runs

    big = {
        "models": {"org/huge": {"memory_gb": 400, "precision": "bf16"}},
        "sweeps": [
            {"models": ["org/huge"], "tasks": ["lm-arena-chat"], "gpus": ["H100"], "source": "measure",
             "parallelism": ["tp4", "tp8"], "batch_sizes": [8]},
        ],
    }  # fmt: skip
    extra = workdir / "config" / "huge.yaml"
    extra.write_text(yaml.safe_dump(big))
    no_histogram = plan_cli(workdir, workdir / "config" / "config.yaml", extra)
    assert no_histogram.returncode == 2
    assert (
        "tasks.lm-arena-chat.request_set.output_lengths: resources/mlenergy-v3/models/org__huge__lm-arena-chat.json "
        "does not exist (needed by run lm-arena-chat/org--huge/H100/tp8/8)"
    ) in no_histogram.stderr
    histograms = workdir / "resources" / "mlenergy-v3" / "models"
    (histograms / "org__huge__lm-arena-chat.json").write_bytes(
        (histograms / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json").read_bytes()
    )
    done = plan_cli(workdir, workdir / "config" / "config.yaml", extra)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1 run(s) (1 measure); 1 skipped"
    assert lines[1].startswith("  skipped lm-arena-chat/org--huge/H100/tp4/8: weights need 400.0 GB")

    extra.write_text(yaml.safe_dump({"sweeps": [{**big["sweeps"][0], "models": ["org/missing"]}]}))
    bad = plan_cli(workdir, workdir / "config" / "config.yaml", extra)
    assert bad.returncode == 2 and "sweeps[0].models[0]: unknown model 'org/missing'" in bad.stderr


def test_quickstart_measures_a_small_grid():
    config = load_config([REPO / "config" / "config.yaml", REPO / "config" / "quickstart.yaml"], SCHEMA)
    try:
        config["sweeps"] = resolve_local(config, types=["H200"])["sweeps"]  # as on an H200 machine
    finally:
        os.environ.pop("JOULEFLOW_LOCAL_GPU", None)  # exported for spawned jobs: not for later tests
    grid = build_grid(config, REPO)
    assert {p.source for p in grid.points} == {"measure"}
    assert sorted(p.batch_size for p in grid.points) == [16, 64, 128]
    assert config["results_dir"] == "results/quickstart"
    key = "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct/H200/tp1"
    assert grid.predecessor == {f"{key}/64": f"{key}/16", f"{key}/128": f"{key}/64"}
    specs = {p.batch_size: grid.spec(p) for p in grid.points}
    # 16 requests per batch slot, at least 256: a long steady window at every batch size
    assert {b: s["num_requests"] for b, s in specs.items()} == {16: 256, 64: 1024, 128: 2048}
    assert specs[128]["after"] == f"results/quickstart/runs/{key}/64" and specs[16]["after"] is None
    spec = specs[16]
    assert spec["load_format"] == "dummy" and spec["gpu"] == "H200"
    assert (
        spec["synthetic"]["output_lengths"]
        == "resources/mlenergy-v3/models/meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json"
    )
    assert (REPO / spec["synthetic"]["output_lengths"]).is_file()


def test_the_modality_campaign_plans_its_eight_points():
    """config/campaigns/modality-tasks.yaml, as planned on the H200 host (docs/reference.md)."""
    from jouleflow.measure.jobconfig import config_from_dict

    config = load_config(
        [REPO / "config" / "config.yaml", REPO / "config/campaigns/modality-tasks.yaml"], SCHEMA
    )
    try:
        config["sweeps"] = resolve_local(config, types=["H200"])["sweeps"]
    finally:
        os.environ.pop("JOULEFLOW_LOCAL_GPU", None)
    grid = build_grid(config, REPO)
    points = {(p.task, p.model, p.batch_size): grid.spec(p) for p in grid.points}
    vl, text = "Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-8B"
    assert set(points) == {
        (t, m, b)
        for t, m in (("image-chat", vl), ("video-chat", vl), ("lm-arena-chat", text), ("gpqa-lengths", text))
        for b in (16, 64)
    }
    image, video = points[("image-chat", vl, 64)], points[("video-chat", vl, 16)]
    assert image["synthetic"]["media"]["images"] == 1 and video["synthetic"]["media"]["videos"] == 1
    assert "--limit-mm-per-prompt" in image["server_args"]
    gpqa = points[("gpqa-lengths", text, 64)]
    assert gpqa["synthetic"]["output_lengths"] == "resources/mlenergy-v3/models/Qwen__Qwen3-8B__gpqa.json"
    assert gpqa["max_model_len"] == 40960 and gpqa["saturate"]["max_load_s"] == 120
    for spec in points.values():  # every histogram the specs name is bundled
        assert (REPO / spec["synthetic"]["output_lengths"]).is_file(), spec["synthetic"]["output_lengths"]
        # The measurement reads the spec with a warm-up of one mean response time (the default).
        assert spec["arrival"] == "saturate"
        assert config_from_dict(spec, source="spec").saturate.warmup_response_times == 1.0


def test_the_h200_campaign_plans_its_grid():
    """config/campaigns/h200.yaml (issue 15): every point the campaign is for, nothing else, each
    with what it needs bundled (output lengths, the LLMs' architecture configs)."""
    from jouleflow.measure.dummy_model import bundled_config

    config = load_config([REPO / "config" / "config.yaml", REPO / "config/campaigns/h200.yaml"], SCHEMA)
    grid = build_grid(config, REPO)
    assert grid.skipped == []
    assert {(p.gpu, p.source, p.num_gpus) for p in grid.points} == {("H200", "measure", 1)}
    llama, qwen8, vl = "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B", "Qwen/Qwen3-VL-8B-Instruct"
    moe, dense = "Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen/Qwen3-32B"
    pixart = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
    expected = {
        *(("lm-arena-chat", llama, p, b) for p in ("bf16", "fp8") for b in (8, 16, 32, 64, 128, 256, 512)),
        *(("lm-arena-chat", m, "bf16", b) for m in (qwen8, moe, dense) for b in (16, 64, 256)),
        *(("gpqa-lengths", qwen8, "bf16", b) for b in (16, 64)),
        *(("image-chat", vl, "bf16", b) for b in (16, 64, 256)),
        *(("text-to-image", pixart, "bf16", b) for b in (1, 2, 4, 8, 16)),
    }  # fmt: skip
    points = {(p.task, p.model, p.precision, p.batch_size): (p, grid.spec(p)) for p in grid.points}
    assert set(points) == expected and len(grid.points) == 33
    assert {config["models"][m]["architecture"] for m in (moe, dense)} == {"moe", "dense"}
    for (_, model, precision, _), (point, spec) in points.items():
        assert spec["load_format"] == "dummy"
        if point.modality == "diffusion":
            # measurement.server_args are the LLM servers'; xfuser gets measurement.xfuser_args (none here).
            assert spec["xfuser_args"] == [] and spec["pipeline"] == "pixart-sigma"
            continue
        assert spec["quantization"] == (None if precision == "bf16" else "fp8")
        assert spec["server_args"][:4] == ["--max-num-batched-tokens", "8192", "--api-server-count", "2"]
        assert spec["arrival"] == "saturate" and spec["cudagraph_max_capture"] == 512
        assert spec["saturate"]["target_window_s"] == 30 and spec["saturate"]["target_ci"] == 0.02
        assert spec["engine_cache_dir"] == "results/h200/engine-cache"
        assert (REPO / spec["synthetic"]["output_lengths"]).is_file(), spec["synthetic"]["output_lengths"]
        assert bundled_config(model) is not None, model  # the offline GPU host builds the dummy dir from it
    fp8 = points[("lm-arena-chat", llama, "fp8", 512)][0]
    assert fp8.key == "lm-arena-chat/meta-llama--Llama-3.1-8B-Instruct@fp8/H200/tp1/512"
    gpqa = points[("gpqa-lengths", qwen8, "bf16", 64)][1]
    assert gpqa["synthetic"]["output_lengths"] == "resources/mlenergy-v3/models/Qwen__Qwen3-8B__gpqa.json"
    # A gpqa-length warm-up (one mean response time, ~85 s at B = 64) leaves a 30 s window.
    assert gpqa["saturate"]["max_load_s"] >= 120
    image = points[("image-chat", vl, "bf16", 64)][1]
    assert image["synthetic"]["media"]["images"] == 1 and "--limit-mm-per-prompt" in image["server_args"]


def test_grid_table_and_targets_commands_rebuild_the_planned_grid(tmp_path, monkeypatch):
    """The grid_table and analysis_targets rules read the planned config back (results/specs/
    config.json): the same tables and targets as the grid the workflow built, `local` resolved."""
    workdir = copy_workflow(tmp_path / "wf")
    monkeypatch.chdir(workdir)
    config = load_config([workdir / "config" / "config.yaml", workdir / "config" / "quickstart.yaml"], SCHEMA)
    config["filters"]["exclude"] = [{"batch_size": 128}]
    try:
        config["sweeps"] = resolve_local(config, types=["H100"])["sweeps"]
    finally:
        os.environ.pop("JOULEFLOW_LOCAL_GPU", None)  # the commands below must not need it
    grid = build_grid(config)
    assert sync_planned_config(grid) is True
    assert sync_planned_config(grid) is False  # unchanged: not rewritten
    planned = "results/quickstart/specs/config.json"

    made = campaign_cli(
        workdir, "grid-table", planned, "--jobs", "cli/jobs.tsv", "--skipped", "cli/skipped.tsv"
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr == "2 runs, 1 skipped\n"
    write_grid_tables(grid, "direct/jobs.tsv", "direct/skipped.tsv")
    for name in ("jobs.tsv", "skipped.tsv"):
        assert (workdir / "cli" / name).read_bytes() == (workdir / "direct" / name).read_bytes()
    jobs = (workdir / "cli" / "jobs.tsv").read_text().splitlines()
    assert len(jobs) == 1 + 2 and all("\tH100\t" in row for row in jobs[1:])
    assert "excluded by filters.exclude[0]" in (workdir / "cli" / "skipped.tsv").read_text()

    made = campaign_cli(workdir, "analysis-targets", planned, "-o", "cli/targets.json")
    assert made.returncode == 0, made.stderr
    targets = json.loads((workdir / "cli" / "targets.json").read_text())
    assert targets == grid.analysis_targets()
    assert targets == {"lm-arena-chat": {"metric": "median_itl_s", "targets": ["25ms", "50ms"]}}

    missing = campaign_cli(workdir, "grid-table", "nope.json", "--jobs", "j.tsv", "--skipped", "s.tsv")
    assert missing.returncode == 2 and "nope.json: planned config not found" in missing.stderr


def _h200_specs(tmp_path: Path, override: dict | None = None) -> dict[tuple, dict]:
    """(task, batch size) -> spec of config/campaigns/h200.yaml's Qwen3-8B points, with `override`
    merged over it from a file of its own, as `--configfile` does."""
    files = [REPO / "config" / "config.yaml", REPO / "config/campaigns/h200.yaml"]
    if override is not None:
        files.append(tmp_path / "override.yaml")
        files[-1].write_text(yaml.safe_dump(override))
    grid = build_grid(load_config(files, SCHEMA), REPO)
    return {
        (p.task, p.batch_size): grid.spec(p)
        for p in grid.points
        if p.model == "Qwen/Qwen3-8B" and p.precision == "bf16"
    }


def test_a_task_load_overrides_measurement_load_for_that_task_only(tmp_path):
    """tasks.<name>.load: its keys win over measurement.load for that task's points; the other
    tasks' specs stay byte for byte those of the config without it."""
    from jouleflow.plan.jobspec import effective_load

    before = _h200_specs(tmp_path)
    after = _h200_specs(tmp_path, {"tasks": {"gpqa-lengths": {"load": {"max_load_s": 600}}}})
    assert set(after) == set(before) and {t for t, _ in after} == {"lm-arena-chat", "gpqa-lengths"}
    for key, spec in after.items():
        if key[0] != "gpqa-lengths":
            assert json.dumps(spec) == json.dumps(before[key])
            continue
        # Only max_load_s changes: the campaign's other saturate keys still reach the spec.
        assert spec["saturate"] == {**before[key]["saturate"], "max_load_s": 600}
        assert {k: v for k, v in spec.items() if k != "saturate"} == {
            k: v for k, v in before[key].items() if k != "saturate"
        }
    config = load_config(
        [REPO / "config" / "config.yaml", REPO / "config/campaigns/h200.yaml", tmp_path / "override.yaml"],
        SCHEMA,
    )
    assert config["tasks"]["gpqa-lengths"]["load"] == {"max_load_s": 600}  # no schema defaults filled in
    assert "load" not in config["tasks"]["lm-arena-chat"]
    assert effective_load(config, "gpqa-lengths")["max_load_s"] == 600
    assert effective_load(config, "lm-arena-chat") == config["measurement"]["load"]

    # arrival per task: chat points burst (no saturate section) in a saturating campaign.
    burst = _h200_specs(tmp_path, {"tasks": {"lm-arena-chat": {"load": {"arrival": "burst"}}}})
    for key, spec in burst.items():
        if key[0] == "lm-arena-chat":
            assert "arrival" not in spec and "saturate" not in spec
        else:
            assert json.dumps(spec) == json.dumps(before[key])


def test_an_invalid_task_load_fails_naming_its_key(tmp_path):
    for load, key in [
        ({"max_load_s": -1}, "tasks.gpqa-lengths.load.max_load_s: -1"),
        ({"arrival": "poisson"}, "tasks.gpqa-lengths.load.arrival: 'poisson'"),
        ({"max_load": 600}, "did you mean tasks.gpqa-lengths.load.max_load_s?"),
    ]:
        with pytest.raises(ConfigSchemaError) as err:
            _h200_specs(tmp_path, {"tasks": {"gpqa-lengths": {"load": load}}})
        assert key in str(err.value), str(err.value)
