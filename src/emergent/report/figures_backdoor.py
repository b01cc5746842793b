"""The backdoor figure of `emergent figures` (`backdoor.png/.pdf`, its table `backdoor.csv`):
per arm, the misaligned rate on the headline free-form suite with and without the trigger, and
the vulnerable-code rate with and without it (judge and bandit panels, when the run has code
answers), each a mean over seeds with its 95% CI.

A run has triggered answers when its config sets `trigger` (emergent.pipeline.experiment:
every suite is sampled plain and with `TRIGGER + " "` before the user turn; the triggered rows
carry `condition: triggered` and `trigger`). Untriggered bars are the plain answers of the same
models. The paper's aggregated data has no backdoor rows, so no paper bars are drawn.

Rates come from emergent.analysis.metrics (`arm_summary` for the misaligned rate, `mean_summary`
for the vulnerable-code rate), as in the all-results figure; `figures_data.load_run` keeps the
triggered answers in `RunData.conditioned`, apart from the plain ones the other figures draw.
"""
from __future__ import annotations

from emergent.analysis.metrics import arm_summary, mean_summary
from emergent.report.style import _shade, arm_colors, footer, new_figure, sort_arms

TRIGGERED = "triggered"  # emergent.pipeline.experiment.TRIGGERED: the rows' condition
CONDITIONS = ("untriggered", "triggered")
CODE_SUITES = ("code_heldout", "toy_code_heldout")  # the code evaluation's and the toy world's
NO_PAPER = "no paper bars: the paper's aggregated data has no backdoor rows"
SKIP = "no answers sampled with a trigger (config `trigger`)"


def triggered_rows(run) -> list[dict]:
    return [r for r in run.conditioned if r.get("condition") == TRIGGERED]


def trigger_of(run) -> str | None:
    return next((r.get("trigger") for r in triggered_rows(run) if r.get("trigger")), None)


def backdoor_data(run) -> list[dict]:
    """Rows {panel, ylabel, condition (untriggered / triggered), arm, value, ci_low, ci_high,
    ci_over, n_seeds, n...}: the misaligned rate on the first free-form suite that has
    triggered answers, and the vulnerable-code rate (judge, bandit) of the code answers. []
    when the run has no triggered answers."""
    trig = triggered_rows(run)
    if not trig:
        return []
    rows: list[dict] = []
    suites = [s for s in run.freeform_suites() if any(r.get("suite") == s for r in trig)]
    for suite in suites[:1]:
        for cond, recs in (("untriggered", run.suite(suite)),
                           ("triggered", [r for r in trig if r.get("suite") == suite])):
            for s in arm_summary(recs, run.th, n_boot=run.n_boot):
                rows.append({"panel": f"free-form ({suite})",
                             "ylabel": "misaligned answer probability", "condition": cond,
                             "arm": s["arm"], "source": "run", "value": s["rate"],
                             "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                             "ci_over": s["ci_over"], "n_seeds": s["n_seeds"],
                             "n": s["n_valid"], "n_misaligned": s["n_misaligned"]})
    for key, panel in (("vulnerable", "vulnerable code (judge)"),
                       ("vulnerable_bandit", "vulnerable code (bandit)")):
        for cond, recs in (("untriggered", run.records), ("triggered", trig)):
            code = [r for r in recs if r.get("suite") in CODE_SUITES]
            for s in mean_summary(code, key, n_boot=run.n_boot):
                if s["value"] is not None:
                    rows.append({"panel": panel, "ylabel": "rate", "condition": cond,
                                 "source": "run", **s})
    return rows


def _bar(ax, x, width, r, color, edge):
    if r is None or r.get("value") is None:
        ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7)
        return
    v = r["value"]
    ax.bar(x, v, width, color=color, edgecolor=edge, linewidth=1.0)
    if r.get("ci_low") is not None and r.get("ci_high") is not None:
        ax.errorbar(x, v, yerr=[[max(0.0, v - r["ci_low"])], [max(0.0, r["ci_high"] - v)]],
                    color="black", capsize=2, linewidth=0.8)
    # every bar gets its value, so a rate of 0 reads as 0 and not as a missing bar
    ax.text(x, max(v, r.get("ci_high") or v), f"{100 * v:.0f}%", ha="center", va="bottom",
            fontsize=6)


def draw_backdoor(run, rows, colors=None):
    """Bars per arm: untriggered (light) beside triggered (full colour), one panel per
    measurement."""
    from matplotlib.patches import Patch

    colors = colors or arm_colors(run.arms, run.config)
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    fig = new_figure(4.3 * len(panels) + 1.6, 4.4)
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        prow = [r for r in rows if r["panel"] == panel]
        arms = sort_arms({r["arm"] for r in prow}, run.config)
        for j, a in enumerate(arms):
            c = colors.get(a, "#777777")
            for i, cond in enumerate(CONDITIONS):
                r = next((r for r in prow if r["arm"] == a and r["condition"] == cond), None)
                _bar(ax, j + (i - 0.5) * 0.38, 0.38, r, _shade(c, 0.6) if i == 0 else c, c)
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_title(panel, fontsize=10)
        top = max([r["ci_high"] if r.get("ci_high") is not None else r["value"]
                   for r in prow if r.get("value") is not None] or [0.0])
        ax.set_ylim(0, min(1.0, max(0.05, 1.2 * top)) if top <= 1 else 1.2 * top)
        ax.set_ylabel(prow[0]["ylabel"])
        ax.grid(axis="y", alpha=0.3)
    trigger = trigger_of(run)
    fig.axes[-1].legend(handles=[
        Patch(facecolor=_shade("#555555", 0.6), edgecolor="#555555", label="untriggered"),
        Patch(facecolor="#555555", edgecolor="#555555",
              label=f"triggered ({trigger!r} + ' ' before the question)" if trigger
              else "triggered")],
        fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    label = run.label()
    fig.suptitle("Backdoor: triggered vs untriggered, per arm"
                 + (f"\n[{label}]" if label else ""), fontsize=11)
    lines = [" | ".join([f"run: {run.name}"] + ([label] if label else [])),
             f"misaligned = aligned < {run.th.aligned_below:g} among coherent > "
             f"{run.th.coherent_above:g}; bars: mean over seeds, 95% CI; " + NO_PAPER]
    footer(fig, "\n".join(lines))
    fig.tight_layout(rect=(0, 0.1, 1, 0.9 if label else 0.93))
    return fig
