"""The physical GPUs behind each summary row, and the comparisons that say when they compare runs on
different GPUs of one type (docs/method.md, "Hosts"). The bundled H200 runs come from several hosts:
Qwen3-8B's chat points from host C, its gpqa-lengths points and the MoE/dense pair from host D."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from compare_helpers import frame, row
from jouleflow.analysis.compare.common import collapse_repeats, load_summary
from jouleflow.analysis.compare.modality import compare_modality
from jouleflow.analysis.compare.moe import compare_moe
from jouleflow.analysis.compare.precision import compare_precision, parse_buckets
from jouleflow.analysis.compare.tasks import compare_tasks
from jouleflow.analysis.summary import RunEntry, build_summary, write_summary
from jouleflow.cli import main

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "resources" / "reference" / "runs"
HOST_C = "GPU-548859f7-4ea4-78a3-054e-62162184c3e8"
HOST_D = "GPU-a98d4d45-e637-6006-8e44-c3e2418cedab"
POINTS = {
    "lm-arena-chat/Qwen--Qwen3-8B/H200/tp1/64": HOST_C,
    "gpqa-lengths/Qwen--Qwen3-8B/H200/tp1/64": HOST_D,
    "lm-arena-chat/Qwen--Qwen3-30B-A3B-Instruct-2507/H200/tp1/64": HOST_D,
    "lm-arena-chat/Qwen--Qwen3-32B/H200/tp1/64": HOST_D,
}
NOTE = "on different physical GPUs of one type"


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    """The four bundled runs' summary, through `jouleflow energy` and the summary writer; parameter
    counts from the default config's models, as the pipeline's jobs table gives them."""
    models = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]
    work = tmp_path_factory.mktemp("hosts")
    entries = []
    for key in POINTS:
        run = work / key
        shutil.copytree(RUNS / key, run)
        assert main(["energy", str(run), "-o", str(run / "summary.json")]) == 0
        model = models[key.split("/")[1].replace("--", "/")]
        entries.append(RunEntry(run, extras={"total_params_b": model["total_params_b"]}))
    path = work / "summary.parquet"
    write_summary(build_summary(entries), path)
    return load_summary(path)


def test_each_row_names_the_gpu_its_run_recorded(summary):
    got = {r["run_dir"].split("/hosts0/", 1)[1]: r["gpu_uuids"] for r in summary.to_dicts()}
    assert got == POINTS


def test_tasks_measured_on_two_hosts_are_marked(summary):
    result = compare_tasks(summary, "Qwen/Qwen3-8B")
    (group,) = result.groups
    assert group.shared_batch == 64 and group.same_gpus is False
    assert {r["task"]: r["same_gpus"] for r in group.rows} == {"lm-arena-chat": False, "gpqa-lengths": False}
    assert NOTE in result.markdown()


def test_moe_and_dense_on_one_host_are_marked_the_same(summary):
    result = compare_moe(summary)
    (pair,) = result.rows()
    assert (pair["moe_model"], pair["dense_model"]) == ("Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen/Qwen3-32B")
    assert pair["same_gpus"] is True
    text = result.markdown()
    assert "| same GPUs |" in text and "| yes |" in text and NOTE not in text


def test_repeats_on_two_gpus_are_joined_and_differ_from_one():
    rows = frame(
        row(precision="bf16", gpu_uuids="GPU-a"),
        row(precision="fp8", gpu_uuids="GPU-b", energy_per_token_j=0.08),
        row(precision="fp8", gpu_uuids="GPU-a", energy_per_token_j=0.06),
    )
    keys = ["model", "precision", "task", "gpu", "num_gpus", "batch_size", "parallelism"]
    joined = collapse_repeats(rows, keys, ["energy_per_token_j"])
    assert joined.filter(joined["precision"] == "fp8")["gpu_uuids"].to_list() == ["GPU-a + GPU-b"]
    result = compare_precision(rows, parse_buckets("8-512"))
    (pair,) = result.rows()
    assert pair["same_gpus"] is False and pair["fp8"] == pytest.approx(0.07)
    assert "1 of 1 pairs compare runs" + " " + NOTE in result.markdown()


def test_unknown_gpus_leave_the_tables_as_they_were():
    # Published data (ML.ENERGY) has no gpu_uuids: no column, no note.
    rows = frame(row(precision="bf16"), row(precision="fp8", energy_per_token_j=0.08))
    result = compare_precision(rows, parse_buckets("8-512"))
    assert result.rows()[0]["same_gpus"] is None
    assert "same GPUs" not in result.markdown() and NOTE not in result.markdown()


def test_a_modality_pair_on_two_gpus_is_marked():
    rows = frame(
        row(task="image-chat", model="org/VL", gpu_uuids="GPU-a", batch_size=16),
        row(task="chat", model="org/T", gpu_uuids="GPU-b", batch_size=16),
    )
    result = compare_modality(rows, {"org/VL": "org/T"}, ["image-chat"], "chat", batch_sizes="common")
    (pair,) = result.rows()
    assert pair["same_gpus"] is False and NOTE in result.markdown()
