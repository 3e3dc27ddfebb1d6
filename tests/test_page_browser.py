"""The campaign page in a real headless browser (Playwright driving Chromium), from file:// with every
network request refused: no console error, the deadline control picks the configuration that
recommendations.csv names at each target, and the chart holds the campaign's and ML.ENERGY's points.

Skipped without Playwright or a Chromium, unless JOULEFLOW_REQUIRE_BROWSER=1 (CI), which fails instead.
Chromium: $JOULEFLOW_CHROMIUM, else Debian's `chromium` on PATH, else Playwright's own download.
"""

from __future__ import annotations

import os
import shutil

import polars as pl
import pytest
from page_helpers import MODEL, build_campaign, write_page

# slow: a Chromium and a campaign built by the real commands (about a minute); CI runs it.
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _unavailable(reason: str):
    if os.environ.get("JOULEFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"JOULEFLOW_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    return os.environ.get("JOULEFLOW_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        try:
            exe = chromium_path()
            browser = p.chromium.launch(executable_path=exe) if exe else p.chromium.launch()
        except Error as exc:
            _unavailable(f"no Chromium to launch ({str(exc).splitlines()[0]}); apt-get install chromium")
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    paths = build_campaign(root)
    write_page(root, paths)
    return paths


def open_page(browser, path):
    """The page from file://, every http(s) request aborted and recorded; console errors recorded."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: (requests.append(route.request.url), route.abort()))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, errors, requests


def chosen(page) -> dict[str, str]:
    rows = page.locator("#task-0 tbody.choices tr")
    return {r.get_attribute("data-group"): r.get_attribute("data-run-dir") for r in rows.all()}


def set_deadline(page, value: str) -> None:
    page.fill("#task-0 input.deadline", value)
    page.dispatch_event("#task-0 input.deadline", "change")


def test_the_deadline_control_picks_what_the_recommendations_say(browser, campaign):
    page, errors, requests = open_page(browser, campaign["page"])
    recs = pl.read_csv(campaign["recommendations"])
    group = f"{MODEL} (bf16)"
    picked = set()
    for target_s, run_dir in recs.select("latency_target_s", "run_dir").iter_rows():
        set_deadline(page, f"{target_s * 1e3:g}")  # the control is in ms for ITL
        # An unreachable target has no run_dir in the table, and no chosen row on the page.
        assert chosen(page) == {group: run_dir or ""}
        assert page.locator("#task-0").get_attribute("data-deadline-s") == repr(target_s)
        picked.add(run_dir)
        # The chart's star moves to the chosen configuration.
        star = page.evaluate(
            "() => { const d = document.querySelector('#task-0 .chart');"
            " return Array.from(d.data.find(t => t.meta === 'chosen').customdata).map(c => c[1]); }"
        )
        assert star == ([run_dir] if run_dir else [])
    assert len(picked - {None}) == 3  # each reachable target picks another batch size
    assert None in picked
    # The config's target buttons do the same.
    page.click("#task-0 .control button:has-text('15 ms')")
    assert chosen(page) == {group: recs.filter(pl.col("latency_target_s") == 0.015)["run_dir"][0]}
    # Below the fastest configuration nothing meets the deadline, and the page says so.
    set_deadline(page, "1")
    assert chosen(page) == {group: ""}
    assert "no configuration meets this deadline" in page.locator("#task-0 tbody.choices").inner_text()
    # The slider moves the deadline too (log scale): at its right end the slowest, least-energy run.
    page.locator("#task-0 input[type=range]").fill("1000")
    assert chosen(page) == {group: recs.filter(pl.col("latency_target_s") == 0.025)["run_dir"][0]}
    assert errors == [] and requests == []


def test_the_chart_has_the_campaigns_and_ml_energys_points(browser, campaign):
    page, errors, requests = open_page(browser, campaign["page"])
    traces = page.evaluate(
        "() => document.querySelector('#task-0 .chart').data.map("
        " t => ({meta: t.meta, name: t.name, x: Array.from(t.x), runs: (t.customdata || []).map(c => c[1])}))"
    )
    summary = pl.read_parquet(campaign["summary"])
    ours = [t for t in traces if t["meta"] == "campaign"]
    assert {r for t in ours for r in t["runs"]} == set(summary["run_dir"])
    by_run = dict(zip(summary["run_dir"], summary["median_itl_s"], strict=True))
    for t in ours:
        assert t["x"] == pytest.approx([by_run[r] * 1e3 for r in t["runs"]])
    published = [t for t in traces if t["meta"] == "published"]
    assert published and all("ML.ENERGY v3, published" in t["name"] for t in published)
    assert sum(len(t["x"]) for t in published) == 20  # Llama-3.1-8B on lm-arena-chat: B200 and H100
    # Drawn, not only declared: Plotly rendered the markers as SVG paths.
    assert page.locator("#task-0 .scatterlayer .point").count() >= 3 + 20
    assert errors == [] and requests == []


def test_tables_sort_filter_and_open_a_runs_detail(browser, campaign):
    page, errors, _ = open_page(browser, campaign["page"])
    table = page.locator("#summary-table")
    assert table.locator("th").filter(has_text="energy per response").inner_text().endswith("(J)")
    table.locator("th").filter(has_text="batch size").click()
    batches = [int(t) for t in table.locator("tbody tr td:nth-child(7)").all_inner_texts()]
    assert batches == sorted(batches)
    table.locator("th").filter(has_text="batch size").click()
    assert [int(t) for t in table.locator("tbody tr td:nth-child(7)").all_inner_texts()] == sorted(batches)[
        ::-1
    ]
    table.locator("input.filter").fill("256")
    assert table.locator("tbody tr").count() == 1
    table.locator("tbody tr").click()
    detail = page.locator("#run-detail")
    assert "batch 256" in detail.locator("h3").inner_text()
    assert "UTC" in detail.inner_text() and "valid" in detail.inner_text()
    assert detail.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    assert errors == []


def test_a_campaign_without_a_valid_run_loads_and_says_so(browser, tmp_path):
    paths = build_campaign(tmp_path, batches=(64,), energy_args=("--min-window", "1h"), timelines=False)
    write_page(tmp_path, paths)
    page, errors, requests = open_page(browser, paths["page"])
    assert "No usable run" in page.locator("#task-0").inner_text()
    assert page.locator(".chart").count() == 0
    assert errors == [] and requests == []
