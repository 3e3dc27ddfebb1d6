"""The campaign page's data and HTML: the deadline steps give `jouleflow recommend`'s answer at every
deadline, the page is one offline file, and bad campaigns get a note instead of a failure."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import polars as pl
import pytest
from jouleflow.analysis.deadlines import deadline_steps, task_metrics
from jouleflow.analysis.frontier import FrontierError, TargetUnreachableError, recommend
from jouleflow.importers.mlenergy import import_mlenergy
from page_helpers import MODEL, build_campaign, jouleflow, write_page

REPO = Path(__file__).resolve().parents[1]
V2 = REPO / "tests/data/mlenergy-v2"


def page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def step_at(steps: pl.DataFrame, deadline: float) -> dict | None:
    """The page's lookup (its script's choiceAt): the step at the largest step deadline ≤ deadline."""
    earlier = steps.filter(pl.col("latency_target_s") <= deadline)
    return earlier.sort("latency_target_s").row(-1, named=True) if earlier.height else None


@pytest.fixture(scope="module")
def published_v2() -> pl.DataFrame:
    return pl.from_arrow(import_mlenergy(V2))


def test_the_deadline_steps_give_recommends_answer_at_every_deadline(published_v2):
    summary = published_v2
    steps = deadline_steps(summary)
    assert steps.height > 0
    checked = 0
    for task, metric in task_metrics(summary).items():
        latencies = summary.filter(pl.col("task") == task).get_column(metric).drop_nulls()
        low, high = math.log10(latencies.min() / 2), math.log10(latencies.max() * 2)
        deadlines = [10 ** (low + (high - low) * i / 20) for i in range(21)]
        for key in summary.filter(pl.col("task") == task).select("model", "precision").unique().iter_rows():
            group = steps.filter(
                (pl.col("task") == task) & (pl.col("model") == key[0]) & (pl.col("precision") == key[1])
            )
            # The steps' deadlines are the candidates' own latencies: exactly at one, it is met.
            for deadline in deadlines + group.get_column("latency_target_s").to_list():
                step = step_at(group, deadline)
                try:
                    rec = recommend(summary, task, key[0], deadline, metric, precision=key[1])
                except TargetUnreachableError:
                    # Below a group's fastest latency its step says unreachable (or there is none yet).
                    assert step is None or step["status"] == "unreachable", (task, key, deadline)
                    continue
                except FrontierError:  # no usable row in this group
                    assert group.filter(pl.col("status") == "ok").height == 0
                    continue
                assert step is not None and step["status"] == "ok", (task, key, deadline)
                assert step["run_dir"] == rec.config.run_dir
                assert step["energy_per_response_j"] == rec.config.energy
                assert step["savings_fraction"] == pytest.approx(rec.savings_fraction)
                checked += 1
    assert checked > 100


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    paths = build_campaign(root)
    write_page(root, paths)
    return root, paths


def test_the_page_is_one_offline_file_with_the_campaign(campaign):
    root, paths = campaign
    html = paths["page"].read_text()
    # No external resource: Plotly's JS is inlined, nothing is fetched.
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    assert "Plotly" in html and len(html) > 1_000_000
    data = page_data(html)
    summary = pl.read_parquet(paths["summary"])
    (task,) = data["tasks"]
    assert {p["run_dir"] for p in task["points"]} == set(summary["run_dir"])
    assert task["metric"] == "median_itl_s" and task["targets_s"] == [0.01, 0.015, 0.02, 0.025]
    assert task["published"] and {p["source"] for p in task["published"]} == {"mlenergy-v3"}
    assert all(p["model"] == MODEL for p in task["published"])
    runs = data["runs"]
    assert set(runs) == set(summary["run_dir"])
    for run in runs.values():
        assert run["timeline"].startswith("data:image/png;base64,")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", run["provenance"]["started"])
        assert "start_time" not in run["provenance"]
    headers = {c["key"]: c for c in data["recommendations"]["columns"]}
    energy = headers["energy_per_response_j"]
    assert energy["label"] == "Energy per response" and energy["unit"] == "J"  # jouleflow.labels


def test_the_page_regenerates_byte_for_byte(campaign):
    root, paths = campaign
    before = paths["page"].read_bytes()
    write_page(root, paths)
    assert paths["page"].read_bytes() == before


def test_a_campaign_without_a_valid_run_gets_a_note_not_a_chart(tmp_path):
    # The real validity check, with a steady window no run reaches.
    paths = build_campaign(tmp_path, batches=(64, 128), energy_args=("--min-window", "1h"), timelines=False)
    done = write_page(tmp_path, paths)
    data = page_data(paths["page"].read_text())
    assert data["tasks"][0]["points"] == []
    assert any("No usable run" in n for n in data["tasks"][0]["notes"])
    assert any("No run of the campaign is usable" in n for n in data["notes"])
    assert "note:" in done.stderr
    assert data["summary"]["rows"] and data["runs"]  # the tables and run detail are still there


def page_of(campaign, tmp_path: Path, summary: pl.DataFrame) -> dict:
    """The page of a variant of the campaign's real summary (fewer rows, fewer columns)."""
    root, paths = campaign
    summary.write_parquet(tmp_path / "summary.parquet")
    jouleflow(
        "report", "page", "--summary", tmp_path / "summary.parquet", "-o", tmp_path / "p.html", cwd=root
    )
    return page_data((tmp_path / "p.html").read_text())


def test_a_task_with_one_point_says_so(campaign, tmp_path):
    summary = pl.read_parquet(campaign[1]["summary"])
    (task,) = page_of(campaign, tmp_path, summary.head(1))["tasks"]
    assert len(task["points"]) == 1
    assert any("One usable configuration" in n for n in task["notes"])


def test_missing_optional_columns_are_named(campaign, tmp_path):
    summary = pl.read_parquet(campaign[1]["summary"]).drop("tokens_per_s", "median_itl_s", "flags")
    data = page_of(campaign, tmp_path, summary)
    assert any("tokens_per_s" in n and "flags" in n for n in data["notes"])
    assert "tokens_per_s" not in {c["key"] for c in data["summary"]["columns"]}
    # Without median ITL the task falls back to the next latency metric of its preference list.
    (task,) = data["tasks"]
    assert task["metric"] != "median_itl_s" and len(task["points"]) == 3


def test_a_summary_without_its_required_columns_gets_a_page_that_says_so(campaign, tmp_path):
    summary = pl.read_parquet(campaign[1]["summary"]).drop("energy_per_response_j")
    data = page_of(campaign, tmp_path, summary)
    assert data["tasks"] == [] and "energy_per_response_j" in data["notes"][0]
