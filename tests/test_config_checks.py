"""Bad campaign inputs fail at planning, naming the key: `jouleflow campaign plan` on a copy of the
workflow (the same build_grid as Snakemake's; tests/test_pipeline_plan.py runs some through
Snakemake), plus jouleflow.plan.config_checks' rules one by one."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from jouleflow.plan.config_checks import model_id_problem
from jouleflow.plan.grid import GridError
from pipeline_helpers import QWEN_ENTRY, copy_workflow
from test_campaign_plan import plan_cli
from test_grid import BASE, grid_of

MEASURED = {
    "models": {"org/m": {"total_params_b": 1, "load_format": "dummy"}},
    "tasks": {"short": {"num_requests": 256, "request_set": {"kind": "synthetic", "fixed_output_len": 8}}},
    "sweeps": [{"name": "s1", "source": "measure", "models": ["org/m"], "tasks": ["short"], "gpus": ["H100"],
                "batch_sizes": [64, 128, 256]}],
}  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("checks") / "wf")


def plan_with(workdir, name: str, extra: dict):
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(extra))
    (workdir / "jobs.tsv").unlink(missing_ok=True)
    return plan_cli(workdir, workdir / "config" / "config.yaml", path)


def assert_fails(proc, workdir, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"jouleflow campaign: error: {message}" in proc.stderr
    assert not (workdir / "jobs.tsv").exists()


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "results_dir: '' should be non-empty (Where the pipeline writes"),
        ("/", "results_dir: '/' does not match"),
        ("  ", "results_dir: '  ' does not match"),
        ("/.", "results_dir: '/.' is the filesystem root"),
        ("//", "results_dir: '//' does not match"),
    ],
)
def test_results_dir_is_neither_empty_nor_the_root(workdir, value, message):
    assert_fails(plan_with(workdir, "results-dir", {"results_dir": value}), workdir, message)


def test_relative_and_absolute_results_dirs_plan(workdir, tmp_path):
    for value in ("out/campaign", str(tmp_path / "abs")):
        proc = plan_with(workdir, "results-dir", {"results_dir": value})
        assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "abs").exists()  # planning writes nothing there


@pytest.mark.parametrize(
    "model_id, problem",
    [
        ("../../etc", "a '..' segment"),
        ("org/./m", "a '.' segment"),
        ("/abs", "an absolute path"),
        ("my model", "' ' not allowed"),
        ("org/m@fp8", "'@' not allowed"),
        ("org//m", "an empty segment"),
        ("org/m/", "an empty segment"),
        (".hidden", "starts with '.', not a letter or digit"),
        ("-x", "starts with '-', not a letter or digit"),
    ],
)
def test_model_ids_that_are_no_run_directory_name_are_refused(workdir, model_id, problem):
    proc = plan_with(workdir, "model-id", {"models": {model_id: QWEN_ENTRY}})
    assert_fails(proc, workdir, f"models.{model_id}: invalid model id {model_id!r} ({problem})")


def test_model_ids_that_share_a_run_directory_name_name_both(workdir):
    extra = {"models": {"org/m": QWEN_ENTRY, "org--m": QWEN_ENTRY}}
    message = "models: 'org--m' and 'org/m' both give run directory name 'org--m'"
    assert_fails(plan_with(workdir, "collide", extra), workdir, message)


def test_fewer_requests_than_a_batch_size_names_the_task_and_the_point(workdir):
    extra = copy.deepcopy(MEASURED)
    extra["tasks"]["short"]["num_requests"] = 100
    message = (
        "tasks.short.num_requests: 100 requests cannot fill batch size 128 "
        "(run short/org--m/H100/tp1/128 of sweep s1)"
    )
    assert_fails(plan_with(workdir, "num-requests", extra), workdir, message)
    extra["tasks"]["short"]["num_requests"] = 256  # N = B is full
    assert plan_with(workdir, "num-requests", extra).returncode == 0


def test_a_model_dir_without_config_json_names_the_path_key_and_the_file(workdir, tmp_path):
    extra = copy.deepcopy(MEASURED)
    extra["models"]["org/m"]["path"] = str(tmp_path / "{model_slug}")
    (tmp_path / "org--m").mkdir()
    message = (
        f"models.org/m.path: {tmp_path}/org--m/config.json does not exist, so {tmp_path}/org--m is not "
        "a Hugging Face model directory (needed by run short/org--m/H100/tp1/64)"
    )
    assert_fails(plan_with(workdir, "model-path", extra), workdir, message)
    (tmp_path / "org--m" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert plan_with(workdir, "model-path", extra).returncode == 0
    # A path that is nothing here (an HF id, or a directory only the compute nodes have) plans.
    extra["models"]["org/m"]["path"] = str(tmp_path / "elsewhere")
    assert plan_with(workdir, "model-path", extra).returncode == 0


def test_a_diffusion_model_dir_needs_model_index_json(tmp_path):
    (tmp_path / "pixart").mkdir()
    (tmp_path / "pixart" / "config.json").write_text("{}")  # a transformer's config is not the pipeline's
    models = {"org/pixart": {"modality": "diffusion", "path": str(tmp_path / "pixart"), "precision": "bf16"}}
    tasks = {"t2i": {"modality": "diffusion"}}
    sweeps = [{"models": ["org/pixart"], "tasks": ["t2i"], "gpus": ["H100"], "batch_sizes": [4]}]
    with pytest.raises(
        GridError, match=r"models\.org/pixart\.path: .*/pixart/model_index\.json does not exist"
    ):
        grid_of(models=models, tasks=tasks, sweeps=sweeps)
    (tmp_path / "pixart" / "model_index.json").write_text("{}")
    assert len(grid_of(models=models, tasks=tasks, sweeps=sweeps).points) == 1


def test_a_model_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "weights.safetensors").write_text("")
    models = copy.deepcopy(BASE["models"])
    models["org/small"]["path"] = str(tmp_path / "weights.safetensors")
    with pytest.raises(GridError, match=r"models\.org/small\.path: .*weights\.safetensors is a file"):
        grid_of(models=models)


def test_points_left_out_by_filters_need_no_requests(tmp_path):
    tasks = {"chat": {"num_requests": 8, "request_set": {"kind": "synthetic", "fixed_output_len": 128}}}
    with pytest.raises(GridError, match=r"tasks\.chat\.num_requests: 8 requests cannot fill batch size 16"):
        grid_of(tasks=tasks)
    grid = grid_of(tasks=tasks, filters={"exclude": [{"batch_size": 16}]})
    assert [p.batch_size for p in grid.points] == [8]


@pytest.mark.parametrize(
    "model_id",
    ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B", "org--m", "local_model.v2", "a/b/c", "x"],
)
def test_hugging_face_style_ids_are_accepted(model_id):
    assert model_id_problem(model_id) is None
