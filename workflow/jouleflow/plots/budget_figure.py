"""Figure of a power-budget plan (`jouleflow plan budget --figure FIG.png`): per model, the
throughput the budget serves (log scale), labelled with the GPUs it takes."""

from __future__ import annotations

from pathlib import Path

from jouleflow.analysis.budget import BudgetPlan, format_power
from jouleflow.plots.style import PALETTE, new_figure, placeholder, save, styled
from jouleflow.units import format_duration


@styled
def budget_figure(plan: BudgetPlan, path: str | Path) -> list[Path]:
    stem = Path(path).with_suffix("")
    title = (
        f"{format_power(plan.power_w)} (PUE {plan.pue:g}), latency ≤ {format_duration(plan.latency_target_s)}"
    )
    rows = plan.ok_rows().sort(["task", "total_throughput"], descending=[False, True]).to_dicts()
    if not rows:
        return placeholder(title, f"no plan: {plan.empty_reason}", stem)
    fig, (ax,) = new_figure(7.5, 1.2 + 0.32 * len(rows))
    tasks = sorted({r["task"] for r in rows})
    y = list(range(len(rows)))[::-1]
    colors = [PALETTE[tasks.index(r["task"]) % len(PALETTE)] for r in rows]
    ax.barh(y, [r["total_throughput"] for r in rows], color=colors)
    for yi, r in zip(y, rows, strict=True):
        label = f" {r['total_gpus']:,} × {r['gpu']} ({r['num_gpus']}/replica, batch {r['batch_size']})"
        ax.text(r["total_throughput"], yi, label, va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['model']} [{r['task']}]" for r in rows], fontsize=7)
    ax.set_xscale("log")
    units = sorted({r["throughput_unit"] for r in rows})
    ax.set_xlabel(f"throughput the budget serves ({', '.join(units)}, log)")
    ax.set_title(title)
    ax.margins(x=0.6)
    ax.grid(False, axis="y")
    return save(fig, stem)
