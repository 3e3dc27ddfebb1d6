"""Screenshots of the campaign page for the docs, taken with the browser the tests use.

    snakemake --cores all                       # the bundled campaign, results/report/campaign.html
    python scripts/page-screenshots.py          # docs/images/campaign-page-*.png

Chromium: $JOULEFLOW_CHROMIUM, else `chromium` on PATH, else Playwright's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", type=Path, default=Path("results/report/campaign.html"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--deadline", default="15", help="deadline typed into the first task's control")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exe = os.environ.get("JOULEFLOW_CHROMIUM") or shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe) if exe else p.chromium.launch()
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.route("http*://**", lambda route: route.abort())  # as a reader offline sees it
        page.goto(args.page.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#task-0 input.deadline", args.deadline)
        page.dispatch_event("#task-0 input.deadline", "change")
        page.screenshot(path=args.out / "campaign-page-deadline.png")
        # The tables and a run's detail, the run picked from the recommendation table.
        page.locator("#recommendation-table tbody tr").nth(1).click()
        page.locator("#recommendations").scroll_into_view_if_needed()
        page.evaluate("document.getElementById('summary').scrollIntoView()")
        page.screenshot(path=args.out / "campaign-page-tables.png")
        page.evaluate("document.getElementById('runs').scrollIntoView()")
        page.screenshot(path=args.out / "campaign-page-run.png")
        browser.close()
    for name in sorted(args.out.glob("campaign-page-*.png")):
        print(f"wrote {name} ({name.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
