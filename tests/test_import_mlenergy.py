"""`jouleflow import mlenergy` on the published v2/v3 slices. Expectations are read from the raw JSON here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from jouleflow import traces
from jouleflow.importers.common import PublishedDataError
from jouleflow.importers.mlenergy import detect_layout, import_mlenergy

REPO = Path(__file__).resolve().parents[1]
V2 = REPO / "tests" / "data" / "mlenergy-v2"
V3 = REPO / "tests" / "data" / "mlenergy-v3"


@pytest.fixture(scope="module")
def v2() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(V2))


@pytest.fixture(scope="module")
def v3() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(V3))


def _row(df: pl.DataFrame, run_dir: str) -> dict:
    rows = df.filter(pl.col("run_dir") == run_dir)
    assert rows.height == 1, run_dir
    return rows.row(0, named=True)


def test_detects_layouts() -> None:
    assert detect_layout(V2) == "v2"
    assert detect_layout(V3) == "v3"
    assert detect_layout(V2 / "diffusion" / "text-to-image") == "v2"


def test_v2_one_row_per_configuration_file(v2: pl.DataFrame) -> None:
    files = [p for p in V2.rglob("*.json") if p.name.startswith("bs")]
    assert v2.height == len(files)
    assert set(v2.get_column("run_dir")) == {p.relative_to(V2).as_posix() for p in files}
    assert set(v2.get_column("source")) == {"mlenergy-v2"}
    assert v2.get_column("valid").all() and set(v2.get_column("status")) == {"ok"}
    assert set(v2.get_column("load_format")) == {"real"}


def test_v2_llm_fields(v2: pl.DataFrame) -> None:
    rel = "llm_text_generation/chat/H100 80GB HBM3/meta-llama/Meta-Llama-3.1-8B-Instruct/bs64+tp1+pp1.json"
    raw = json.loads((V2 / rel).read_text())
    row = _row(v2, rel)
    assert row["task"] == "chat" and row["modality"] == "llm" and row["model"] == raw["Model"]
    assert row["gpu"] == "H100" and row["gpu_tdp_w"] == 700.0
    assert (row["num_gpus"], row["batch_size"], row["parallelism"]) == (1, 64, "tp1")
    assert row["precision"] == "bf16"
    assert row["energy_per_response_j"] == raw["Energy/req (J)"]
    assert row["energy_per_token_j"] == pytest.approx(raw["Energy/req (J)"] / raw["Avg Output Tokens"])
    assert row["mean_output_tokens"] == raw["Avg Output Tokens"]
    assert row["tokens_per_s"] == raw["Token tput (tok/s)"]
    assert row["median_tpot_s"] == raw["Avg TPOT (s)"]
    assert row["median_itl_s"] is None  # v2 has no ITL
    expected_power = raw["Energy/req (J)"] / raw["Avg Output Tokens"] * raw["Token tput (tok/s)"]
    assert row["mean_power_w"] == pytest.approx(expected_power)
    assert row["mean_batch_size"] == raw["Avg BS (reqs)"]
    models = json.loads((V2 / "llm_text_generation/chat/models.json").read_text())
    assert row["total_params_b"] == models[raw["Model"]]["params"]


def test_v2_pipeline_parallel_row(v2: pl.DataFrame) -> None:
    rel = "llm_text_generation/chat/H100 80GB HBM3/meta-llama/Meta-Llama-3.1-405B-Instruct/bs128+tp8+pp2.json"
    row = _row(v2, rel)
    assert (row["num_gpus"], row["batch_size"], row["parallelism"]) == (16, 128, "tp8-pp2")


def test_v2_diffusion_fields(v2: pl.DataFrame) -> None:
    rel = "diffusion/text-to-image/A100-SXM4-40GB/stabilityai/stable-diffusion-2-1/bs8+steps25.json"
    raw = json.loads((V2 / rel).read_text())
    row = _row(v2, rel)
    assert row["task"] == "text-to-image" and row["modality"] == "diffusion"
    assert row["gpu"] == "A100" and row["gpu_tdp_w"] == 400.0
    assert (row["num_gpus"], row["batch_size"], row["parallelism"], row["precision"]) == (
        1,
        8,
        "uly1-ring1",
        "fp16",
    )
    assert row["energy_per_response_j"] == raw["Energy/image (J)"]
    assert row["batch_latency_s"] == raw["Batch latency (s)"]
    assert row["mean_power_w"] == pytest.approx(raw["Energy/image (J)"] * 8 / raw["Batch latency (s)"])
    assert row["energy_per_token_j"] is None


def test_v2_video_energy(v2: pl.DataFrame) -> None:
    rel = next(p for p in (V2 / "diffusion" / "text-to-video").rglob("bs*.json")).relative_to(V2).as_posix()
    raw = json.loads((V2 / rel).read_text())
    assert _row(v2, rel)["energy_per_response_j"] == raw["Energy/video (J)"]


def test_v3_one_row_per_configuration(v3: pl.DataFrame) -> None:
    expected = 0
    for path in sorted((V3 / "tasks").glob("*.json")):
        doc = json.loads(path.read_text())
        expected += len(doc["configurations"])
        assert v3.filter(pl.col("task") == doc["task"]).height == len(doc["configurations"])
    assert v3.height == expected == 1858


def test_v3_llm_fields(v3: pl.DataFrame) -> None:
    raw = json.loads((V3 / "tasks" / "gpqa.json").read_text())["configurations"][0]
    index = json.loads((V3 / "index.json").read_text())["models"][raw["model_id"]]
    row = _row(v3, "tasks/gpqa.json#/configurations/0")
    assert row["model"] == raw["model_id"] and row["task"] == "gpqa" and row["modality"] == "llm"
    assert row["gpu"] == raw["gpu_model"] and row["num_gpus"] == raw["num_gpus"]
    assert row["batch_size"] == raw["max_num_seqs"]
    assert row["energy_per_token_j"] == raw["energy_per_token_joules"]
    assert row["energy_per_response_j"] == raw["energy_per_request_joules"]
    assert row["median_itl_s"] == pytest.approx(raw["median_itl_ms"] / 1000)
    assert row["p99_itl_s"] == pytest.approx(raw["p99_itl_ms"] / 1000)
    assert row["tokens_per_s"] == raw["output_throughput_tokens_per_sec"]
    assert row["mean_power_w"] == raw["avg_power_watts"]
    assert row["mean_output_tokens"] == raw["avg_output_len"]
    assert row["total_params_b"] == index["total_params_billions"]
    assert row["active_params_b"] == index["activated_params_billions"]
    assert row["precision"] == {"bfloat16": "bf16", "fp8": "fp8", "mxfp4": "mxfp4"}[index["weight_precision"]]
    assert row["gpu_tdp_w"] == {"H100": 700.0, "B200": 1000.0}[raw["gpu_model"]]


def test_v3_parallelism_spelling(v3: pl.DataFrame) -> None:
    for path in sorted((V3 / "tasks").glob("*.json")):
        for i, raw in enumerate(json.loads(path.read_text())["configurations"]):
            row = _row(v3, f"tasks/{path.name}#/configurations/{i}")
            if "ulysses_degree" in raw:
                expected = f"uly{raw['ulysses_degree']}-ring{raw['ring_degree']}"
            elif raw["expert_parallel"] > 1 and raw["data_parallel"] > 1:
                expected = f"dp{raw['data_parallel']}-ep"
            elif raw["expert_parallel"] > 1:
                expected = f"tp{raw['num_gpus']}-ep"
            else:
                expected = f"tp{raw['tensor_parallel']}"
            assert row["parallelism"] == expected, (path.name, i)


def test_v3_diffusion_fields(v3: pl.DataFrame) -> None:
    raw = json.loads((V3 / "tasks" / "text-to-video.json").read_text())["configurations"][3]
    row = _row(v3, "tasks/text-to-video.json#/configurations/3")
    assert row["modality"] == "diffusion"
    assert row["energy_per_response_j"] == raw["energy_per_video_joules"]
    assert row["batch_latency_s"] == raw["batch_latency_s"]
    assert row["batch_size"] == raw["batch_size"]
    assert row["median_itl_s"] is None


def test_unknown_layout_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "something.json").write_text("{}")
    with pytest.raises(PublishedDataError, match=re.escape(str(tmp_path))):
        import_mlenergy(tmp_path)
    with pytest.raises(PublishedDataError, match="no such file"):
        import_mlenergy(tmp_path / "missing")


def _copy_task(tmp_path: Path) -> Path:
    src = V2 / "diffusion" / "text-to-video"
    dst = tmp_path / "diffusion" / "text-to-video"
    shutil.copytree(src, dst)
    return dst


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    task = _copy_task(tmp_path)
    victim = sorted(task.rglob("bs*.json"))[0]
    victim.write_text('{"Model": ')
    with pytest.raises(PublishedDataError, match=re.escape(victim.name) + ".*invalid JSON"):
        import_mlenergy(tmp_path)


def test_missing_key_is_named(tmp_path: Path) -> None:
    task = _copy_task(tmp_path)
    victim = sorted(task.rglob("bs*.json"))[0]
    raw = json.loads(victim.read_text())
    del raw["Batch latency (s)"]
    victim.write_text(json.dumps(raw))
    with pytest.raises(PublishedDataError, match=r"missing key 'Batch latency \(s\)'"):
        import_mlenergy(tmp_path)


def test_unexpected_file_name_is_named(tmp_path: Path) -> None:
    task = _copy_task(tmp_path)
    victim = sorted(task.rglob("bs*.json"))[0]
    victim.rename(victim.with_name("config-7.json"))
    with pytest.raises(PublishedDataError, match="config-7.json"):
        import_mlenergy(tmp_path)


def test_v3_bad_precision_is_named(tmp_path: Path) -> None:
    shutil.copytree(V3, tmp_path / "v3")
    path = tmp_path / "v3" / "tasks" / "sourcegraph-fim.json"
    doc = json.loads(path.read_text())
    model = doc["configurations"][2]["model_id"]
    index_path = tmp_path / "v3" / "index.json"
    index = json.loads(index_path.read_text())
    index["models"][model]["weight_precision"] = "int3"
    index_path.write_text(json.dumps(index))
    with pytest.raises(PublishedDataError, match="sourcegraph-fim.json configurations.*'int3'"):
        import_mlenergy(tmp_path / "v3")


def test_cli_writes_summary_parquet(tmp_path: Path) -> None:
    out = tmp_path / "summary.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    cmd = [sys.executable, "-m", "jouleflow", "import", "mlenergy", str(V3), "-o", str(out)]
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    table = traces.read_table(out, traces.SUMMARY)  # validates every SUMMARY column and type
    assert table.num_rows == 1858
    bad = subprocess.run(
        [*cmd[:4], str(tmp_path / "nope"), "-o", str(out)], env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_unknown_gpu_is_named(tmp_path: Path) -> None:
    task = _copy_task(tmp_path)
    victim = sorted(task.rglob("bs*.json"))[0]
    raw = json.loads(victim.read_text())
    raw["GPU"] = "Tesla T4"
    victim.write_text(json.dumps(raw))
    with pytest.raises(PublishedDataError, match=re.escape(victim.name) + ".*'Tesla T4'"):
        import_mlenergy(tmp_path)
