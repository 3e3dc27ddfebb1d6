"""Figure of `jouleflow compare longitudinal`: per (task, model, GPU type), J/token of both campaigns
by batch size (top) and the split of its log change into power and throughput terms (bottom).

Drawn with the toolkit of every other figure (plots.style), so equal inputs give identical files.
"""

from __future__ import annotations

from pathlib import Path

from jouleflow.analysis.compare.longitudinal import LongitudinalResult
from jouleflow.plots.compare_figures import BLUE, GREY, ORANGE, _stem
from jouleflow.plots.style import new_figure, save, style, styled


@styled
def longitudinal_figure(result: LongitudinalResult, path: str | Path) -> list[Path]:
    groups = result.groups()
    rows = result.rows()
    fig, axes = new_figure(1.0 + 3.6 * len(groups), 6.0, nrows=2, ncols=len(groups))
    top, bottom = axes[: len(groups)], axes[len(groups) :]
    for ax_e, ax_d, g in zip(top, bottom, groups, strict=True):
        mine = [r for r in rows if (r["task"], r["model"], r["gpu"]) == (g["task"], g["model"], g["gpu"])]
        x = [r["batch_size"] for r in mine]
        for i, (side, label) in enumerate(
            (("baseline", result.baseline_label), ("challenger", result.challenger_label))
        ):
            ax_e.plot(x, [r[f"{side}_energy"] for r in mine], label=label, **style(i))
        ax_e.set_xscale("log", base=2)
        ax_e.set_xticks(x, labels=[str(b) for b in x])
        ax_e.minorticks_off()
        ax_e.set_yscale("log")
        ax_e.set_ylabel("energy per token (J, log)")
        ax_e.set_title(f"{g['model'].split('/')[-1]}\n{g['task']}, {g['gpu']}", fontsize=9)
        ax_e.legend(loc="upper right")

        pos = list(range(len(mine)))
        power = [r["log_power_ratio"] for r in mine]
        throughput = [-r["log_throughput_ratio"] for r in mine]
        residual = [r["log_residual"] for r in mine]
        # Stack positive and negative terms separately so each bar's visible parts add to ln(J ratio).
        for terms, label, color in ((power, "ln power ratio", ORANGE), (throughput, "-ln throughput ratio", BLUE),
                                    (residual, "residual", GREY)):  # fmt: skip
            base = [0.0] * len(pos)
            if terms is throughput:
                base = [p if (p >= 0) == (t >= 0) else 0.0 for p, t in zip(power, terms, strict=True)]
            elif terms is residual:
                base = [
                    sum(v for v in (p, t) if (v >= 0) == (r >= 0))
                    for p, t, r in zip(power, throughput, terms, strict=True)
                ]
            ax_d.bar(pos, terms, 0.6, bottom=base, label=label, color=color)
        ax_d.scatter(pos, [r["log_energy_ratio"] for r in mine], marker="D", color="black", zorder=4,
                     label="ln J/token ratio")  # fmt: skip
        ax_d.axhline(0.0, color="0.4", linewidth=1)
        ax_d.set_xticks(pos)
        ax_d.set_xticklabels([str(b) for b in x])
        ax_d.set_xlabel("batch size")
        ax_d.set_ylabel(f"log ratio, {result.challenger_label} / {result.baseline_label}")
        ax_d.grid(False, axis="x")
    bottom[0].legend(loc="best", fontsize=7)
    fig.suptitle(f"{result.challenger_label} vs {result.baseline_label}: J/token = power / throughput")
    return save(fig, _stem(path))
