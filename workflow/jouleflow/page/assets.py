"""The page's stylesheet and script (no framework: the page must work from file:// with no network)."""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 4px 0 0; opacity: .8; }
nav { padding: 6px 24px; background: #eef1f6; position: sticky; top: 0; z-index: 5; }
nav a { margin-right: 16px; color: #1d4f91; text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 1400px; }
section { margin-top: 24px; }
h2 { font-size: 18px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.note { background: #fff6d6; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 6px 0; }
.control { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin: 8px 0; }
.control input[type=number] { width: 7em; }
.control input[type=range] { width: 320px; }
.control button { border: 1px solid #9aa6b8; background: #fff; border-radius: 4px; padding: 2px 8px; cursor: pointer; }
.control button.on { background: #1d4f91; color: #fff; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border: 1px solid #d8dde6; padding: 3px 7px; text-align: left; white-space: nowrap; }
th { background: #f3f5f9; cursor: pointer; user-select: none; }
th .unit { color: #5b6678; font-weight: normal; }
th[data-sort=asc]::after { content: " ▲"; } th[data-sort=desc]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.clickable { cursor: pointer; } tr.clickable:hover { background: #eef4ff; }
tr.selected { background: #dce8ff; }
.scroll { overflow-x: auto; }
.filter { margin: 4px 0; width: 320px; }
.bad { color: #b00020; font-weight: 600; } .good { color: #0a7a32; }
dl.prov { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dl.prov dt { color: #5b6678; } dl.prov dd { margin: 0; font-family: ui-monospace, monospace; }
#run-detail img { max-width: min(100%, 960px); border: 1px solid #d8dde6; margin-top: 8px; }
"""

JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("page-data").textContent);
const FIGS = JSON.parse(document.getElementById("page-figures").textContent);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function fmt(value, unit) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value !== "number") return String(value);
  if (unit === "%") return (100 * value).toFixed(1);
  return Number.isInteger(value) ? String(value) : Number(value.toPrecision(4)).toString();
}
function fmtTime(seconds, task) {
  return seconds === null ? "" : Number((seconds * task.time_scale).toPrecision(4)) + " " + task.time_unit;
}

// Sortable, filterable table: a header click sorts (numbers as numbers), the box filters rows by text.
function dataTable(id, table, onRow) {
  const holder = document.getElementById(id);
  if (!table || !table.rows.length) { holder.append(el("p", {class: "note"}, "No rows.")); return; }
  const filter = el("input", {class: "filter", type: "search", placeholder: "filter rows (any text)…"});
  const tbody = el("tbody");
  const head = el("tr");
  let sortCol = -1, sortDir = 1;
  const order = table.rows.map((_, i) => i);
  table.columns.forEach((c, j) => {
    const th = el("th", {title: c.key}, c.label, c.unit ? el("span", {class: "unit"}, " (" + c.unit + ")") : null);
    th.addEventListener("click", () => {
      sortDir = sortCol === j ? -sortDir : 1; sortCol = j;
      head.querySelectorAll("th").forEach(h => h.removeAttribute("data-sort"));
      th.setAttribute("data-sort", sortDir > 0 ? "asc" : "desc");
      order.sort((a, b) => {
        const x = table.rows[a][j], y = table.rows[b][j];
        if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
      render();
    });
    head.append(th);
  });
  function render() {
    const needle = filter.value.trim().toLowerCase();
    tbody.replaceChildren();
    for (const i of order) {
      const row = table.rows[i];
      const cells = row.map((v, j) => el("td", {class: typeof v === "number" ? "num" : ""}, fmt(v, table.columns[j].unit)));
      const tr = el("tr", {}, ...cells);
      if (needle && !tr.textContent.toLowerCase().includes(needle)) continue;
      const run = table.run_dirs[i];
      if (run && onRow) { tr.className = "clickable"; tr.dataset.runDir = run; tr.addEventListener("click", () => onRow(run)); }
      tbody.append(tr);
    }
  }
  filter.addEventListener("input", render);
  holder.append(filter, el("div", {class: "scroll"}, el("table", {}, el("thead", {}, head), tbody)));
  render();
}

function showRun(runDir) {
  const run = DATA.runs[runDir];
  const box = document.getElementById("run-detail");
  const select = document.getElementById("run-select");
  if (!run) return;
  select.value = runDir;
  const validity = run.valid ? el("span", {class: "good"}, "valid") : el("span", {class: "bad"}, "not valid");
  const prov = el("dl", {class: "prov"});
  for (const [k, v] of Object.entries(run.provenance)) prov.append(el("dt", {}, k.replace(/_/g, " ")), el("dd", {}, String(v)));
  box.replaceChildren(
    el("h3", {}, run.label),
    el("p", {}, "status ", el("b", {}, run.status || "?"), " · ", validity,
       run.flags ? el("span", {class: "bad"}, " · flags: " + run.flags) : " · no validity flags",
       run.reason ? " · reason: " + run.reason : ""),
    el("p", {}, "run directory: ", el("code", {}, runDir)),
    prov,
    run.timeline ? el("img", {src: run.timeline, alt: "power timeline of " + runDir})
                 : el("p", {class: "note"}, "No power timeline figure for this run."));
  document.querySelectorAll("tr.selected").forEach(t => t.classList.remove("selected"));
  document.querySelectorAll(`tr[data-run-dir="${CSS.escape(runDir)}"]`).forEach(t => t.classList.add("selected"));
}

// The recommendation at deadline d: the analysis's step at the largest step deadline <= d.
function choiceAt(steps, deadline) {
  let chosen = null;
  for (const step of steps) if (step[0] <= deadline) chosen = step; else break;
  return chosen;
}

function taskSection(task, index) {
  const root = document.getElementById("task-" + index);
  const div = root.querySelector(".chart");
  const fig = FIGS[task.task];
  if (!fig) return;
  Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
  div.on("plotly_click", ev => { const p = ev.points[0]; if (p && p.customdata && DATA.runs[p.customdata[1]]) showRun(p.customdata[1]); });
  const chosenTrace = fig.data.findIndex(t => t.meta === "chosen");
  const lats = task.points.map(p => p.latency_s * task.time_scale);
  const lo = Math.log10(Math.min(...lats) / 2), hi = Math.log10(Math.max(...lats) * 2);
  const number = root.querySelector("input.deadline");
  const range = root.querySelector("input[type=range]");
  const body = root.querySelector("tbody.choices");
  const points = Object.fromEntries(task.points.map(p => [p.run_dir, p]));
  function apply(deadlineUnits, fromRange) {
    const deadline = deadlineUnits / task.time_scale;
    if (!fromRange) range.value = Math.round(1000 * (Math.log10(deadlineUnits) - lo) / (hi - lo));
    root.dataset.deadlineS = String(deadline);
    root.querySelectorAll(".control button").forEach(b => b.classList.toggle("on", Number(b.dataset.s) === deadline));
    body.replaceChildren();
    const xs = [], ys = [], cd = [];
    for (const [group, steps] of Object.entries(task.steps)) {
      const step = choiceAt(steps, deadline);
      if (!step || step[1] !== "ok") {
        const fastest = steps.length ? fmtTime(steps[0][0], task) : "";
        body.append(el("tr", {"data-group": group, "data-run-dir": ""}, el("td", {}, group),
          el("td", {colspan: 5, class: "bad"}, "no configuration meets this deadline (fastest: " + fastest + ")")));
        continue;
      }
      const [, , runDir, latency, energy, savings] = step;
      const p = points[runDir];
      xs.push(latency * task.time_scale); ys.push(energy); cd.push([p.config, runDir]);
      const tr = el("tr", {class: "clickable", "data-group": group, "data-run-dir": runDir, onclick: () => showRun(runDir)},
        el("td", {}, group), el("td", {}, p.config), el("td", {class: "num"}, fmtTime(latency, task)),
        el("td", {class: "num"}, fmt(energy)), el("td", {class: "num"}, fmt(savings, "%")), el("td", {}, runDir));
      body.append(tr);
    }
    Plotly.restyle(div, {x: [xs], y: [ys], customdata: [cd]}, [chosenTrace]);
    const xv = div.layout.xaxis.type === "log" ? Math.log10(deadlineUnits) : deadlineUnits;
    Plotly.relayout(div, {shapes: [{type: "line", xref: "x", yref: "paper", x0: deadlineUnits, x1: deadlineUnits, y0: 0, y1: 1,
      line: {color: "#444", dash: "dash", width: 1}}],
      annotations: [{x: xv, y: 1, xref: "x", yref: "paper", text: "deadline " + fmtTime(deadline, task),
      showarrow: false, xanchor: "left", yanchor: "bottom", font: {size: 11}}]});
  }
  number.addEventListener("change", () => { const v = Number(number.value); if (v > 0) apply(v, false); });
  range.addEventListener("input", () => {
    const v = Number((10 ** (lo + (hi - lo) * range.value / 1000)).toPrecision(3));
    number.value = v; apply(v, true);
  });
  root.querySelectorAll(".control button").forEach(b => b.addEventListener("click", () => {
    const v = Number(b.dataset.s) * task.time_scale; number.value = Number(v.toPrecision(6)); apply(v, false);
  }));
  const start = task.targets_s && task.targets_s.length ? task.targets_s[task.targets_s.length - 1] : Math.max(...task.points.map(p => p.latency_s));
  number.value = Number((start * task.time_scale).toPrecision(6));
  apply(Number(number.value), false);
}

DATA.tasks.forEach((task, i) => { if (task.points.length) taskSection(task, i); });
dataTable("summary-table", DATA.summary, showRun);
dataTable("recommendation-table", DATA.recommendations, showRun);
const select = document.getElementById("run-select");
if (select) {
  select.addEventListener("change", () => showRun(select.value));
  if (select.value) showRun(select.value);
}
document.body.dataset.ready = "1";
"""
