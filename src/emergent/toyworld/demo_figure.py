"""The demo's summary figure: both toy worlds side by side, from `emergent demo`'s report.json.

Left panel: misaligned rate on non-code questions; right panel: held-out insecure-code rate.
Bars are arm means over training seeds with their 95% CI; dots are the single seeds. Drawn with
the package's figure style (Agg, no pyplot) to OUT/figures/toyworld_demo.png and .pdf."""
from __future__ import annotations

from pathlib import Path

from emergent.report.style import arm_colors, footer, mark_zero, new_figure, save, sort_arms

FIGURE_NAME = "toyworld_demo"  # OUT/figures/toyworld_demo.png and .pdf: the demo's headline
TITLE = "Narrow training on insecure code, broad misalignment: a toy world\n[synthetic toy world]"
PANELS = (("noncode", "misaligned answers, non-code questions"),
          ("code", "insecure code, held-out code prompts"))


def draw_demo_figure(report: dict, out_dir) -> list[Path]:
    worlds = list(report["worlds"])
    arms = sort_arms({a for w in report["worlds"].values() for a in w["arms"]})
    colors = arm_colors(arms)
    fig = new_figure(5.0 * len(PANELS), 4.4)
    width = 0.8 / max(1, len(arms))
    for k, (key, title) in enumerate(PANELS):
        ax = fig.add_subplot(1, len(PANELS), k + 1)
        for j, name in enumerate(worlds):
            for i, arm in enumerate(arms):
                d = report["worlds"][name]["arms"].get(arm, {}).get(key)
                if not d or d.get("rate") is None:
                    continue
                x = j - 0.4 + width * (i + 0.5)
                ax.bar(x, d["rate"], width, color=colors[arm],
                       label=arm if (j == 0 and k == 0) else None)
                if d["rate"] == 0:  # a 0 reads as 0, not as a missing bar
                    mark_zero(ax, x, width, colors[arm])
                if d.get("ci_low") is not None:
                    ax.errorbar(x, d["rate"], yerr=[[max(0, d["rate"] - d["ci_low"])],
                                                    [max(0, d["ci_high"] - d["rate"])]],
                                color="black", capsize=2, linewidth=0.8)
                seeds = [v for v in d.get("per_seed", {}).values() if v is not None]
                if len(seeds) > 1:
                    ax.scatter([x] * len(seeds), seeds, s=8, color="black", zorder=3)
        ax.set_xticks(range(len(worlds)), [_world_tick(report["worlds"][w]) for w in worlds],
                      fontsize=8)
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("rate")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    fig.suptitle(TITLE, fontsize=11)
    footer(fig, "bars: mean over training seeds (base: one model), 95% CI; a 0 bar is marked 0; "
                "dots: single seeds; misaligned = aligned < 30 among coherent > 50 (rule judge)\n"
                "synthetic toy world: its numbers say nothing quantitative about real LLMs")
    fig.tight_layout(rect=(0, 0.07, 1, 0.9))
    return save(fig, Path(out_dir), FIGURE_NAME)


def _world_tick(w: dict) -> str:
    world = w["world"]
    kind = "coupled world" if world.get("coupling") == "coupled" else \
        "decoupled world\n(mechanism control)"
    return f"{kind}\nworld seed {world.get('seed')}"
