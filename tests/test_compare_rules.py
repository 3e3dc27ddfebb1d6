"""rules/compare.smk: the paper config's DAG and shell commands (dry run), lint, and a real run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
V3 = REPO / "resources" / "mlenergy-v3"


def workdir(tmp_path: Path, compare: dict) -> Path:
    """A throwaway workflow: the repo's compare rules and captions, and a config with `compare`."""
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copytree(REPO / "report", tmp_path / "report")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "analysis.yaml").write_text("name: analysis\ndependencies: []\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"compare": compare}))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\ninclude: "rules/constants.smk"\ninclude: "rules/compare.smk"\n'
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "jouleflow"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m jouleflow "$@"\n')
    launcher.chmod(0o755)
    return tmp_path


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{cwd / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def paper_config(published: Path) -> dict:
    compare = yaml.safe_load((REPO / "config" / "paper" / "mlenergy-v3.yaml").read_text())["compare"]
    compare["published"]["path"] = str(published)
    return compare


def test_paper_config_dag_and_commands(tmp_path):
    wd = workdir(tmp_path, paper_config(V3))
    proc = snakemake(wd, "-n", "-p", "compare_all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    commands = re.findall(r"^Shell command: (.*)$", proc.stdout, flags=re.M) or [
        line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("jouleflow ")
    ]
    by_rule = {}
    for rule in re.findall(r"^rule (compare_\w+):", proc.stdout, flags=re.M):
        by_rule[rule] = by_rule.get(rule, 0) + 1
    assert by_rule == {"compare_import_published": 1, "compare_gpus": 4, "compare_precision": 2,
                       "compare_scaling": 1, "compare_tasks": 1, "compare_moe": 1, "compare_tdp": 1,
                       "compare_recommend_all": 2, "compare_budget": 2, "compare_task_aggregates": 2,
                       "compare_modality": 1, "compare_memory_batch": 1, "compare_spread": 1,
                       "compare_all": 1}  # fmt: skip
    summary = "results/compare/published/summary.parquet"
    assert f"jouleflow import mlenergy {V3} -o {summary} > logs/compare/import-published.log 2>&1" in commands
    assert (
        f"jouleflow compare gpus --summary {summary} --a H100 --b B200 --latency median_itl "
        "--deadlines 50ms,100ms,250ms --energy energy_per_token --tasks gpqa,lm-arena-chat --allow-empty "
        "-o results/compare/gpus-llm.csv --markdown results/compare/gpus-llm.md "
        "--figure results/compare/gpus-llm.png > logs/compare/gpus-llm.log 2>&1"
    ) in commands
    assert any("--model Qwen/Qwen3-32B --gpu B200 --num-gpus 1" in c for c in commands)
    assert any(re.search(r"--tdp (H100=700,B200=1000|B200=1000,H100=700) ", c) for c in commands)
    assert any(
        "compare task-aggregates" in c and "--gpu B200 --select energy_per_token" in c for c in commands
    )
    assert any(
        "compare modality" in c and "--pair Qwen/Qwen3-Omni-30B-A3B-Instruct=Qwen/Qwen3-30B-A3B-Instruct-2507," in c
        and ",Qwen/Qwen3-VL-8B-Instruct=Qwen/Qwen3-8B," in c
        and "-o results/compare/modality-b200.csv" in c
        for c in commands
    )  # fmt: skip
    assert any("compare spread" in c and "--contrasts video-chat:image-chat,text-to-video:text-to-image" in c
               for c in commands)  # fmt: skip
    assert (
        f"(jouleflow recommend --all --summary {summary} --gpu H100 --num-gpus 1 "
        "-o results/compare/recommend-h100-1gpu.csv --markdown results/compare/recommend-h100-1gpu.md "
        "--figure results/compare/recommend-h100-1gpu.png --json > results/compare/recommend-h100-1gpu.json) 2> logs/compare/recommend-h100-1gpu.log"
    ) in commands
    assert (
        f"(jouleflow plan budget --summary {summary} --power 1MW --pue 1.2 --deadline 50ms --gpu B200 "
        "--allow-empty --task lm-arena-chat -o results/compare/budget-1mw-chat-b200.csv "
        "--markdown results/compare/budget-1mw-chat-b200.md --figure results/compare/budget-1mw-chat-b200.png "
        "--json > results/compare/budget-1mw-chat-b200.json) 2> logs/compare/budget-1mw-chat-b200.log"
    ) in commands


def test_an_empty_section_runs_with_defaults_on_the_given_summary(tmp_path):
    wd = workdir(tmp_path, {"summary": "campaign.parquet", "tdp": {}, "precision": {}})
    (wd / "campaign.parquet").write_bytes(b"")
    proc = snakemake(wd, "-n", "-p", "compare_all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = sorted(re.findall(r"^rule (compare_\w+):", proc.stdout, flags=re.M))
    assert rules == ["compare_all", "compare_precision", "compare_precision", "compare_tdp"]
    assert (
        "jouleflow compare tdp --summary campaign.parquet --allow-empty -o results/compare/tdp.csv"
        in proc.stdout
    )


def test_rules_lint_clean(tmp_path):
    wd = workdir(tmp_path, paper_config(V3))
    proc = snakemake(wd, "--lint")
    assert "compare.smk" not in proc.stdout + proc.stderr
    assert "compare_functions.smk" not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_compare_rules_run_and_rerun_only_on_a_changed_setting(tmp_path):
    compare = paper_config(V3)  # imports the published data with `jouleflow import mlenergy`
    compare["gpus"] = compare["gpus"][:1]
    compare["precision"]["metrics"] = ["energy_per_token"]
    wd = workdir(tmp_path / "wf", compare)
    proc = snakemake(wd, "compare_all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = sorted(p.name for p in (wd / "results" / "compare").iterdir() if p.is_file())
    assert (wd / "results" / "compare" / "published" / "summary.parquet").is_file()
    stems = ["gpus-llm", "moe", "precision-energy_per_token", "scaling-llm", "tasks-Qwen--Qwen3-32B", "tdp",
             "task-aggregates-b200", "task-aggregates-all", "modality-b200", "memory-batch", "spread"]  # fmt: skip
    recs, budgets = (
        ["recommend-h100-1gpu", "recommend-b200-1gpu"],
        ["budget-1mw-chat-h100", "budget-1mw-chat-b200"],
    )
    assert outputs == sorted(
        [f"{s}.{e}" for s in stems for e in ("csv", "md", "png", "svg")]
        + [f"{s}.{e}" for s in recs for e in ("csv", "md", "json", "png", "svg")]
        + [f"{s}.{e}" for s in budgets for e in ("csv", "md", "json", "png", "svg")]
    )
    assert "| all | 63 | 72 | -34.7% |" in (wd / "results" / "compare" / "gpus-llm.md").read_text()
    compare["moe"]["tolerance"] = 0.1
    (wd / "config.yaml").write_text(yaml.safe_dump({"compare": compare}))
    proc = snakemake(wd, "-n", "compare_all")
    rerun = sorted(re.findall(r"^rule (compare_\w+):", proc.stdout, flags=re.M))
    assert rerun == ["compare_all", "compare_moe"]
