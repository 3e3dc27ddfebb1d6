"""Write the campaign page: one HTML file with Plotly's JS, the data and the figures inlined."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from jouleflow import traces
from jouleflow.page.assets import CSS, JS
from jouleflow.page.charts import task_figure
from jouleflow.units import format_duration


def _json_script(element_id: str, value: Any) -> str:
    # "</" inside a <script> would end it early; JSON allows the escaped form.
    text = json.dumps(
        value, allow_nan=False, default=str
    )  # key order kept: the provenance's is shown.replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _notes(notes: list[str]) -> str:
    return "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)


def _task_html(task: dict[str, Any], index: int) -> str:
    title = html.escape(task["task"])
    parts = [
        f'<section id="task-{index}" class="task" data-task="{title}"><h2>{title}</h2>',
        _notes(task["notes"]),
    ]
    if not task["points"]:
        parts.append("<p>No chart: see the note above.</p></section>")
        return "".join(parts)
    unit, scale = task["time_unit"], task["time_scale"]
    buttons = "".join(
        f'<button type="button" data-s="{t!r}">{html.escape(format_duration(t))}</button>'
        for t in task.get("targets_s", [])
    )
    metric = html.escape(task["metric_label"])
    parts.append(
        f'<div class="control"><label>latency deadline ({metric} ≤) '
        f'<input class="deadline" type="number" min="0" step="any" aria-label="deadline in {unit}"> {unit}</label>'
        f'<input type="range" min="0" max="1000" aria-label="deadline slider (log scale)">'
        f"<span>config targets: {buttons or 'none'}</span></div>"
        "<p>Each model's minimum-energy configuration whose "
        f"{metric} meets the deadline (the rule of <code>jouleflow recommend</code>), and its savings against "
        "the minimum-latency configuration. Click a row or a point for the run's detail.</p>"
        '<div class="scroll"><table class="choices-table"><thead><tr><th>model (precision)</th><th>chosen configuration</th>'
        f'<th>{metric} <span class="unit">({unit})</span></th><th>energy per response <span class="unit">(J)</span></th>'
        '<th>savings <span class="unit">(%)</span></th><th>run</th></tr></thead>'
        '<tbody class="choices"></tbody></table></div>'
        f'<div class="chart" data-time-scale="{scale!r}"></div></section>'
    )
    return "".join(parts)


def render(page: dict[str, Any]) -> str:
    figures = {t["task"]: task_figure(t) for t in page["tasks"] if t["points"]}
    runs = page["runs"]
    options = "".join(
        f'<option value="{html.escape(r)}">{html.escape(v["label"])}</option>'
        for r, v in sorted(runs.items())
    )
    has_published = any(t["published"] for t in page["tasks"])
    published = (
        "<p>Open diamonds: ML.ENERGY's published measurements of the same model and task "
        "(the bundled ML.ENERGY v3 data), for comparison; they are not candidates of the deadline control.</p>"
        if has_published
        else ""
    )
    body = [
        f"<header><h1>{html.escape(page['title'])}</h1>"
        "<p>Energy per response against latency for every configuration of the campaign; pick a deadline "
        "to see each model's minimum-energy configuration. Works offline: everything is in this file.</p></header>",
        '<nav><a href="#tasks">deadline &amp; chart</a><a href="#summary">summary</a>'
        '<a href="#recommendations">recommendations</a><a href="#runs">run detail</a></nav><main>',
        _notes(page["notes"]),
        '<section id="tasks">',
        published,
        *(_task_html(t, i) for i, t in enumerate(page["tasks"])),
        "</section>",
        '<section id="summary"><h2>Summary: one row per run</h2>'
        "<p>Click a header to sort, type to filter; click a row for the run's detail.</p>"
        '<div id="summary-table"></div></section>',
        '<section id="recommendations"><h2>Recommendations at the configured deadlines</h2>'
        "<p>As in <code>recommendations.csv</code>; energy is per response.</p>"
        '<div id="recommendation-table"></div></section>',
        f'<section id="runs"><h2>Run detail</h2><select id="run-select">{options}</select>'
        '<div id="run-detail"></div></section></main>',
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(page['title'])}</title><style>{CSS}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head><body>",
            *body,
            _json_script("page-data", page),
            _json_script("page-figures", figures),
            f"<script>{JS}</script>",
            "</body></html>",
        ]
    )


def write_page(page: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    traces.write_text(render(page), out)
    return out
