"""config/README.md is generated from the schema and cannot drift; the workflow catalog file is valid."""

from __future__ import annotations

from pathlib import Path

import yaml
from jouleflow.plan.config_doc import render, rows

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"


def test_config_readme_is_the_schema_rendered():
    committed = (REPO / "config" / "README.md").read_text()
    assert committed == render(SCHEMA), "regenerate: python -m jouleflow.plan.config_doc > config/README.md"


def test_every_schema_key_is_listed_with_a_meaning():
    root = yaml.safe_load(SCHEMA.read_text())
    table = {path: meaning for path, _, _, meaning in rows(root, root)}
    for key in root["properties"]:  # every top-level key
        assert key in table
    for path in ("validity.min_steady_s", "measurement.load.arrival", "analysis.latency_targets.<name>"):
        assert path in table
    assert all(table.values()), [p for p, m in table.items() if not m]
    assert table["models.<name>.engine"] == "Default vllm for LLMs, xdit for diffusion models."


def test_workflow_catalog_file_has_the_usage_the_catalog_reads():
    doc = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = doc["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    assert set(usage["software-stack-deployment"]) == {"conda", "singularity", "singularity+conda"}
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    # the catalog renders the usage from config/README.md; the report links to it
    assert (REPO / "config" / "README.md").is_file()
    assert "config/README.md" in (REPO / "report" / "workflow.rst").read_text()
