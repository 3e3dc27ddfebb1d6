"""The `snakemake` commands that README.md and docs/*.md show say what they mean.

Options such as --configfile take several values: a target written after them is read as one
more config file (`snakemake --configfile c.yaml compare_all` fails: no file compare_all). Each
documented command is parsed with Snakemake's own argument parser; the ML.ENERGY v3 one is also
dry-run on a copy of the workflow.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import copy_workflow
from snakemake.cli import get_argument_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# `snakemake ...` at the start of a line (code blocks) or in backticks, up to a comment or `&&`.
COMMAND = re.compile(r"(?:^|`)(snakemake [^`#|&;\n]*)", re.MULTILINE)
RULES = {m for f in [REPO / "Snakefile", *(REPO / "rules").glob("*.smk")]
         for m in re.findall(r"^rule (\w+):", f.read_text(), re.MULTILINE)}  # fmt: skip
# One rule per shared-server group, generated from the config (rules/measure.smk): measure_shared_<group>.
GENERATED_RULE = re.compile(r"measure_shared_\w+")


def documented() -> list[str]:
    commands = {m.strip() for doc in DOCS for m in COMMAND.findall(doc.read_text())}
    return sorted(c for c in commands if c != "snakemake --help")  # argparse exits on --help


def test_the_docs_show_snakemake_commands():
    assert "snakemake --cores all compare_all --configfile config/paper/mlenergy-v3.yaml" in documented()


@pytest.mark.parametrize("command", documented())
def test_documented_command_parses_into_config_files_and_targets(command):
    args = get_argument_parser().parse_args(command.split()[1:])
    for path in args.configfile or []:
        assert (REPO / path).is_file(), f"{command}: --configfile {path} is no file"
    for target in args.targets or []:
        assert "/" in target or target in RULES or GENERATED_RULE.fullmatch(target), (
            f"{command}: target {target} is no rule"
        )


def test_the_mlenergy_v3_command_dry_runs(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    argv = ["--cores", "all", "compare_all", "--configfile", "config/paper/mlenergy-v3.yaml"]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *argv], cwd=workdir, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = proc.stdout + proc.stderr
    for rule in ("compare_import_published", "compare_gpus", "compare_precision", "compare_all"):
        assert f"rule {rule}:" in jobs
