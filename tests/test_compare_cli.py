"""`jouleflow compare ...` end to end: JSON shapes, outputs, determinism and error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from compare_helpers import frame, row
from jouleflow.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def summary(tmp_path):
    m = {"task": "chat", "model": "org/M"}
    path = tmp_path / "summary.parquet"
    frame(
        row(**m, gpu="H100", batch_size=8, median_itl_s=0.02, energy_per_response_j=200.0),
        row(**m, gpu="H100", batch_size=64, median_itl_s=0.09, energy_per_response_j=100.0),
        row(**m, gpu="B200", batch_size=64, median_itl_s=0.04, energy_per_response_j=150.0),
        row(**m, gpu="B200", batch_size=256, median_itl_s=0.08, energy_per_response_j=80.0),
        row(task="gpqa", model="org/M-FP8", precision="fp8", batch_size=16, energy_per_token_j=0.12),
        row(task="gpqa", model="org/M", precision="bf16", batch_size=16, energy_per_token_j=0.1),
    ).write_parquet(path)
    return path


def run(capsys, *argv):
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_gpus_json(capsys, summary):
    code, out, _ = run(capsys, "gpus", "--summary", summary, "--a", "H100", "--b", "B200", "--latency",
                       "median_itl", "--deadlines", "50ms,100ms", "--json")  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert {"comparisons", "wins_b", "total", "median_change", "min_change", "max_change"} <= set(doc)
    # 50 ms: 200 J vs 150 J -> -25%; 100 ms: 100 J vs 80 J -> -20%
    assert [round(c["change"], 6) for c in doc["comparisons"]] == [-0.25, -0.2]
    assert (doc["wins_b"], doc["total"]) == (2, 2)
    assert doc["median_change"] == pytest.approx(-0.225)


def test_precision_json(capsys, summary):
    code, out, _ = run(capsys, "precision", "--summary", summary, "--buckets", "8-16,17-64", "--json")
    assert code == 0
    buckets = json.loads(out)["buckets"]
    assert [(b["range"], b["wins"], b["total"]) for b in buckets] == [("8-16", 0, 1), ("17-64", 0, 0)]
    assert buckets[0]["median_change"] == pytest.approx(0.2)
    assert {"min_change", "max_change"} <= set(buckets[1])


def test_table_to_stdout_by_default(capsys, summary):
    code, out, _ = run(
        capsys, "gpus", "--summary", summary, "--a", "H100", "--b", "B200", "--deadlines", "50ms"
    )
    assert code == 0
    assert "| 50ms | 1 | 1 | -25.0% |" in out


def test_outputs_are_written_and_reproducible(capsys, summary, tmp_path):
    digests = []
    for attempt in ("one", "two"):
        out = tmp_path / attempt
        code, _, _ = run(capsys, "gpus", "--summary", summary, "--a", "H100", "--b", "B200", "--deadlines",
                         "50ms,100ms", "-o", out / "t.csv", "--markdown", out / "t.md", "--figure", out / "f.png")  # fmt: skip
        assert code == 0
        digests.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(digests[0]) == ["f.png", "f.svg", "t.csv", "t.md"]
    assert digests[0] == digests[1]
    header = digests[0]["t.csv"].decode().splitlines()[0]
    assert header.startswith("task,model,precision,deadline_s,a_gpu")


def test_figures_use_the_plot_toolkit(capsys, summary, tmp_path):
    """Compare figures are written like every other figure (plots.style): 200 dpi, tagged jouleflow."""
    from PIL import Image

    base = ["gpus", "--summary", summary, "--a", "H100", "--b", "B200"]
    assert run(capsys, *base, "--deadlines", "50ms", "--figure", tmp_path / "f.png")[0] == 0
    assert run(capsys, *base, "--deadlines", "1ms", "--allow-empty", "--figure", tmp_path / "e.png")[0] == 0
    for name in ("f", "e"):
        with Image.open(tmp_path / f"{name}.png") as png:
            assert png.info["dpi"] == pytest.approx((200, 200), abs=0.01)
            assert png.info["Software"] == "jouleflow"
        assert "jouleflow" in (tmp_path / f"{name}.svg").read_text()  # the SVG's creator


def test_bad_deadline_names_the_item(capsys, summary):
    code, _, err = run(
        capsys, "gpus", "--summary", summary, "--a", "H100", "--b", "B200", "--deadlines", "50ms,soon"
    )
    assert code == 2
    assert "deadline list '50ms,soon': 'soon' is not a duration" in err


def test_unknown_gpu_lists_present_types(capsys, summary):
    code, _, err = run(
        capsys, "gpus", "--summary", summary, "--a", "A100", "--b", "B200", "--deadlines", "50ms"
    )
    assert code == 2
    assert "A100 not in the summary; present: B200, H100" in err


def test_a_gpu_type_not_measured_yet_is_nothing_to_compare_with_allow_empty(capsys, summary, tmp_path):
    """The pipeline's case: a campaign whose B GPU has no run yet still gets its outputs, saying why."""
    code, _, err = run(
        capsys, "gpus", "--summary", summary, "--a", "H100", "--b", "H200", "--deadlines", "50ms",
        "--allow-empty", "-o", tmp_path / "g.csv", "--markdown", tmp_path / "g.md",
    )  # fmt: skip
    assert code == 0 and "GPU type(s) H200 not in the summary; present: B200, H100" in err
    assert "GPU type(s) H200 not in the summary" in (tmp_path / "g.md").read_text()
    assert (tmp_path / "g.csv").read_text().startswith("task,")  # the header alone


def test_missing_column_is_named(capsys, tmp_path):
    path = tmp_path / "s.parquet"
    frame(row()).drop("median_itl_s").write_parquet(path)
    code, _, err = run(capsys, "scaling", "--summary", path)
    assert code == 2
    assert "median_itl_s" in err and str(path) in err


def test_nothing_comparable_fails_or_writes_the_reason(capsys, summary, tmp_path):
    argv = ["gpus", "--summary", summary, "--a", "H100", "--b", "B200", "--deadlines", "1ms"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "no comparable pairs" in err and out == ""
    code, _, err = run(capsys, *argv, "--allow-empty", "-o", tmp_path / "t.csv", "--markdown", tmp_path / "t.md",
                       "--figure", tmp_path / "f.png")  # fmt: skip
    assert code == 0 and "no comparable pairs" in err
    assert (tmp_path / "t.csv").read_text().strip().startswith("task,model,precision")
    assert len((tmp_path / "t.csv").read_text().strip().splitlines()) == 1
    assert "No comparable pairs" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.svg").stat().st_size > 0


def test_every_analysis_runs_through_the_console_entry(summary, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "jouleflow", "compare", "tdp", "--summary", str(summary), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tdp"]["H100"] == {"tdp_w": 700.0, "source": "gpu table"}
    help_text = subprocess.run(
        [*cmd[:4], "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    for name in ("gpus", "precision", "scaling", "tasks", "moe", "tdp"):
        assert name in help_text


def test_outputs_get_the_usual_file_mode(capsys, summary, tmp_path):
    old = os.umask(0o022)
    try:
        run(capsys, "scaling", "--summary", summary, "-o", tmp_path / "t.csv", "--allow-empty")
    finally:
        os.umask(old)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o644
