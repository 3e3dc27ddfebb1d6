"""compare longitudinal end to end: slices of ML.ENERGY v2 and v3 through the importer, the CLI, the rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from compare_helpers import frame, row
from jouleflow.cli import main
from jouleflow.importers.mlenergy import import_to_parquet
from pipeline_helpers import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SLICES = REPO / "tests" / "data" / "mlenergy-longitudinal"  # provenance: PROVENANCE.md there

# From the slices' files, by hand. v2 publishes J/request and mean output tokens; J/token is their ratio
# and its power is J/token x tokens/s. v3 publishes J/token, tokens/s and power directly.
V2 = {
    64: (82.58581692374547 / 482.798, 1784.7186737216616),
    128: (63.122728432700505 / 483.135, 2152.5157219742528),
}
V3 = {64: (0.11857964835952284, 5147.153245011704, 610.3476218460647),
      128: (0.09510991243206074, 7036.531577937304, 669.2439022030471)}  # fmt: skip


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    out = tmp_path_factory.mktemp("published")
    import_to_parquet(SLICES / "v2", out / "v2.parquet")
    import_to_parquet(SLICES / "v3", out / "v3.parquet")
    return out / "v2.parquet", out / "v3.parquet"


def run(capsys, *argv):
    code = main(["compare", "longitudinal", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_published_v2_and_v3_slices_pair_through_the_bundled_aliases(capsys, summaries):
    v2, v3 = summaries
    code, out, _ = run(capsys, "--baseline", v2, "--challenger", v3, "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["baseline"], doc["challenger"]) == ("v2", "v3")
    assert doc["aliases"]["source"] == "bundled:longitudinal_aliases.yaml"
    pairs = {p["batch_size"]: p for p in doc["pairs"]}
    assert sorted(pairs) == [64, 128]
    for batch, p in pairs.items():
        (e2, t2), (e3, t3, p3) = V2[batch], V3[batch]
        assert (p["task"], p["model"], p["gpu"]) == (
            "lm-arena-chat",
            "meta-llama/Llama-3.1-8B-Instruct",
            "H100",
        )
        assert p["baseline_model_id"] == "meta-llama/Meta-Llama-3.1-8B-Instruct"
        assert p["energy_change"] == pytest.approx(e3 / e2 - 1)
        assert p["throughput_ratio"] == pytest.approx(t3 / t2)
        assert p["power_ratio"] == pytest.approx(p3 / (e2 * t2))
        assert p["log_residual"] == pytest.approx(0.0, abs=1e-9)
    # Batch 64: 0.1711 -> 0.1186 J/token (-30.7%); throughput x2.88, power x2.00.
    assert round(pairs[64]["energy_change"], 3) == -0.307
    assert (round(pairs[64]["throughput_ratio"], 2), round(pairs[64]["power_ratio"], 2)) == (2.88, 2.0)
    assert pairs[64]["driver"] == "throughput"
    assert doc["unpaired"] == [
        {"task": "lm-arena-chat", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "H100", "side": "baseline",
         "batch_sizes": [1024]},
        {"task": "lm-arena-chat", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "H100", "side": "challenger",
         "batch_sizes": [16]},
    ]  # fmt: skip


def test_outputs_are_written_and_reproducible(capsys, summaries, tmp_path):
    v2, v3 = summaries
    paths = {}
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        code, out, _ = run(capsys, "--baseline", v2, "--challenger", v3, "-o", d / "t.csv",
                           "--markdown", d / "t.md", "--figure", d / "f.png")  # fmt: skip
        assert code == 0 and "# v3 vs v2 at matched batch size" in out
        paths[name] = d
    for f in ("t.csv", "t.md", "f.png", "f.svg"):
        assert (paths["a"] / f).read_bytes() == (paths["b"] / f).read_bytes(), f
    header = (paths["a"] / "t.csv").read_text().splitlines()[0]
    assert header.startswith("task,model,gpu,batch_size,baseline_model_id,")
    assert "log_residual" in header


def test_nothing_in_common_fails_or_writes_the_reason(capsys, summaries, tmp_path):
    v2, _ = summaries
    other = tmp_path / "other.parquet"
    frame(row(task="gpqa", model="org/M")).write_parquet(other)
    code, _, err = run(capsys, "--baseline", v2, "--challenger", other)
    assert code == 2
    assert "no comparable pairs: no task in common: baseline has lm-arena-chat; challenger has gpqa" in err
    code, _, err = run(capsys, "--baseline", v2, "--challenger", other, "--allow-empty", "-o", tmp_path / "t.csv",
                       "--markdown", tmp_path / "t.md", "--figure", tmp_path / "f.png")  # fmt: skip
    assert code == 0 and "no task in common" in err
    assert "No comparable pairs." in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.csv").read_text().startswith("task,model,gpu,batch_size")
    assert (tmp_path / "f.png").is_file() and (tmp_path / "f.svg").is_file()


def test_a_bad_alias_file_is_named(capsys, summaries, tmp_path):
    v2, v3 = summaries
    bad = tmp_path / "aliases.yaml"
    bad.write_text("tasks: [chat, lm-arena-chat]\n")
    code, _, err = run(capsys, "--baseline", v2, "--challenger", v3, "--aliases", bad)
    assert code == 2
    assert f"alias file {bad}: section 'tasks' should map alias -> canonical name, got list" in err


def test_paper_config_dry_runs_with_one_command(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "resources" / "mlenergy-v2", workdir / "resources" / "mlenergy-v2")
    argv = ["--cores", "all", "compare_all", "--configfile", "config/paper/mlenergy-longitudinal.yaml"]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", *argv], cwd=workdir, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = proc.stdout + proc.stderr
    assert jobs.count("rule compare_import_longitudinal:") == 2  # v2 and v3, imported once each
    assert jobs.count("rule compare_longitudinal:") == 2
    v2 = "results/compare/imported/resources--mlenergy-v2/summary.parquet"
    v3 = "results/compare/imported/resources--mlenergy-v3/summary.parquet"
    assert f"jouleflow import mlenergy resources/mlenergy-v2 -o {v2}" in jobs
    assert (
        f"jouleflow compare longitudinal --baseline {v2} --challenger {v3} --ignore precision,num_gpus,parallelism "
        "--tasks lm-arena-chat --models meta-llama/Llama-3.1-405B-Instruct --gpus H100 --baseline-label v2 "
        "--challenger-label v3 --allow-empty -o results/compare/longitudinal-llama-3.1-405b-h100.csv"
    ) in jobs


def test_paper_config_lints_clean(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "resources" / "mlenergy-v2", workdir / "resources" / "mlenergy-v2")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--lint",
        "--configfile",
        "config/paper/mlenergy-longitudinal.yaml",
    ]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_published_imports_rerun_on_new_content_not_on_touched_directories(tmp_path):
    """The imports take the published directories' files as input: a copy or checkout that moves the
    directories' mtimes reruns nothing (it did when the directory itself was the input), a changed file
    reruns its own import and what reads it, and a missing directory is named."""
    workdir = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "resources" / "mlenergy-v2", workdir / "resources" / "mlenergy-v2")
    v2 = "results/compare/imported/resources--mlenergy-v2/summary.parquet"
    v3 = "results/compare/imported/resources--mlenergy-v3/summary.parquet"
    config = ["--configfile", "config/paper/mlenergy-longitudinal.yaml"]

    def snakemake(*argv: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *argv, *config]
        return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)

    done = snakemake(v2, v3)
    assert done.returncode == 0, done.stderr[-2000:]
    later = (workdir / v2).stat().st_mtime + 3600
    for d in (workdir / "resources").rglob("*"):
        if d.is_dir():
            os.utime(d, (later, later))
    again = snakemake("-n", v2, v3)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-2000:]

    changed = next((workdir / "resources" / "mlenergy-v2").rglob("*.json"))
    changed.write_text(changed.read_text() + "\n")  # new bytes, same data
    plan = snakemake("-n", v2, v3)
    jobs = plan.stdout + plan.stderr
    assert plan.returncode == 0 and "rule compare_import_longitudinal:" in jobs, jobs[-2000:]
    assert jobs.count("rule compare_import_longitudinal:") == 1
    assert f"output: {v2}" in jobs and f"output: {v3}" not in jobs

    shutil.rmtree(workdir / "resources" / "mlenergy-v2")
    (workdir / v2).unlink()
    missing = snakemake("-n", v2)
    assert missing.returncode != 0 and "resources/mlenergy-v2" in missing.stdout + missing.stderr
