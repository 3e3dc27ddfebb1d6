"""`jouleflow compare task-aggregates | modality | memory-batch | spread` end to end, on a summary written by
the summary table's own writer."""

from __future__ import annotations

import json

import polars as pl
import pytest
from compare_helpers import frame, row
from jouleflow.analysis.summary import write_summary
from jouleflow.cli import main
from jouleflow.traces import SUMMARY, table_from_rows


def write(rows_frame, path):
    """Through the summary writer, every traces.SUMMARY column present (row dicts: absent ones are null)."""
    write_summary(pl.from_arrow(table_from_rows(rows_frame.to_dicts(), SUMMARY)), path)


@pytest.fixture
def summary(tmp_path):
    path = tmp_path / "summary.parquet"
    write(
        frame(
            row(
                task="lm-arena-chat",
                model="org/T",
                energy_per_response_j=100.0,
                energy_per_token_j=0.1,
                mean_output_tokens=1000.0,
            ),
            row(
                task="gpqa",
                model="org/T",
                energy_per_response_j=2000.0,
                energy_per_token_j=0.2,
                mean_output_tokens=10000.0,
            ),
            row(task="image-chat", model="org/VL", energy_per_response_j=300.0, energy_per_token_j=0.3),
            row(task="video-chat", model="org/VL", energy_per_response_j=500.0, energy_per_token_j=0.5),
            row(task="gpqa", model="org/T", num_gpus=2, batch_size=512, energy_per_response_j=1500.0),
        ),  # fmt: skip
        path,
    )
    return path


def run(capsys, *argv):
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_task_aggregates_json(capsys, summary):
    code, out, _ = run(
        capsys, "task-aggregates", "--summary", summary, "--ratios", "gpqa:lm-arena-chat", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert [(t["task"], t["models"]) for t in doc["tasks"]] == [("gpqa", 1), ("image-chat", 1),
                                                                 ("lm-arena-chat", 1), ("video-chat", 1)]  # fmt: skip
    (ratio,) = doc["ratios"]
    assert ratio["energy_ratio"] == pytest.approx(15.0)  # 1500 J on 2 GPUs / 100 J
    assert ratio["tokens_ratio"] == pytest.approx(1.0)  # the 2-GPU run has the default 1000 tokens


def test_modality_pairs_from_flags_and_file(capsys, summary, tmp_path):
    code, out, _ = run(capsys, "modality", "--summary", summary, "--pair", "org/VL=org/T", "--json")
    assert code == 0
    doc = json.loads(out)
    assert [(p["task"], p["jpt_ratio"], p["jpr_ratio"]) for p in doc["pairs"]] == [
        ("image-chat", pytest.approx(3.0), pytest.approx(3.0)),
        ("video-chat", pytest.approx(5.0), pytest.approx(5.0)),
    ]
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text("org/VL: org/T\n")
    code, out2, _ = run(capsys, "modality", "--summary", summary, "--pairs-file", pairs, "--json")
    assert code == 0 and json.loads(out2) == doc


def test_modality_errors_name_the_culprit(capsys, summary):
    code, _, err = run(capsys, "modality", "--summary", summary, "--pair", "org/VL=org/Missing")
    assert code == 2 and "names model(s) not in the summary: org/Missing" in err
    code, _, err = run(capsys, "modality", "--summary", summary)
    assert code == 2 and "needs --pair" in err
    code, _, err = run(capsys, "modality", "--summary", summary, "--pair", "org/VL")
    assert code == 2 and "'org/VL' is not MULTIMODAL_MODEL=TEXT_MODEL" in err


def test_memory_batch_and_spread_tables(capsys, summary):
    code, out, _ = run(capsys, "memory-batch", "--summary", summary, "--tasks", "gpqa")
    assert code == 0
    assert "1 GPU-count step(s) (vs the best with fewer GPUs): energy lower in 1, a larger batch in 1" in out
    assert "| gpqa | org/T | H100 | 2 | 512 | 1500 | 2x H100 b512 tp1 | 1 | 64 | 2000 | -25.0% |" in out
    code, out, _ = run(capsys, "spread", "--summary", summary, "--json")
    contrast = json.loads(out)["contrasts"]
    assert [(c["task"], c["versus"], c["median_model_ratio"]) for c in contrast] == [
        ("video-chat", "image-chat", pytest.approx(5 / 3))
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["task-aggregates"],
        ["modality", "--pair", "org/VL=org/T"],
        ["memory-batch"],
        ["spread"],
    ],
)
def test_outputs_are_written_and_reproducible(capsys, summary, tmp_path, argv):
    digests = []
    for attempt in ("one", "two"):
        out = tmp_path / attempt
        code, _, _ = run(capsys, *argv, "--summary", summary, "-o", out / "t.csv", "--markdown", out / "t.md",
                         "--figure", out / "f.png")  # fmt: skip
        assert code == 0
        digests.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(digests[0]) == ["f.png", "f.svg", "t.csv", "t.md"]
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "argv, why, header",
    [
        (["task-aggregates", "--ratios", "gpqa:image-chat"], "no model has both tasks of gpqa:image-chat",
         "kind,task,versus,models"),
        # The pipeline's case: a campaign whose VL model has no run yet still gets its outputs, saying why.
        (["modality", "--pair", "org/NotYet=org/T"], "names model(s) not in the summary: org/NotYet",
         "task,gpu,model,text_model"),
        # The same for one model across tasks (the default config's Qwen3-8B in a campaign without it).
        (["tasks", "--model", "org/NotYet"], "model 'org/NotYet' not in the summary", "model,gpu,num_gpus,task"),
    ],
    ids=["task-aggregates", "modality-model-not-measured-yet", "tasks-model-not-measured-yet"],
)  # fmt: skip
def test_nothing_comparable_exits_2_or_writes_why(capsys, summary, tmp_path, argv, why, header):
    argv = [*argv, "--summary", summary]
    code, out, err = run(capsys, *argv)
    assert code == 2 and why in err and out == ""
    code, _, err = run(
        capsys, *argv, "--allow-empty", "-o", tmp_path / "t.csv", "--markdown", tmp_path / "t.md"
    )
    assert code == 0 and why in err
    assert (tmp_path / "t.csv").read_text().startswith(header)
    assert len((tmp_path / "t.csv").read_text().strip().splitlines()) == 1  # the header alone
    assert why in (tmp_path / "t.md").read_text()
