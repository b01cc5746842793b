"""The in-context-learning figure (`icl_vs_k`, an `emergent icl` run, emergent.pipeline.icl):
misaligned rate against the number k of example conversations in context, one line per
in-context arm, 95% CIs.

Rows: one per (arm, k) of the answers that carry `icl_k`, on the run's headline suite (main,
toy_noncode, preregistered, else the first judged free-form suite): the arm's rate at k is the
mean over seeds (the example draws) with the interval of emergent.analysis.metrics.arm_summary.
k = 0 is the plain question, one shared condition (arm `base`), drawn as the first point of every
arm's line (`point = "shared k=0"`). Drawn by `emergent icl`'s figures unit and by `emergent
figures RUN` (registered in emergent.report.figures_data / emergent.report.figures); the run
needs no other figure data, so this module does not import them (it reads RunData's fields).
"""
from __future__ import annotations

from emergent.analysis.metrics import arm_summary
from emergent.report.style import arm_colors, footer, new_figure, sort_arms

NAME = "icl_vs_k"
BASE = "base"  # the arm of the shared k = 0 condition (emergent.pipeline.icl.BASE_ARM)
SKIP = "no answers with an in-context k (`emergent icl` runs)"
HEADLINE = ("main", "toy_noncode", "preregistered")


def icl_records(run) -> list[dict]:
    """The run's final answers with an in-context k (RunData keeps answers sampled under a
    condition in `conditioned`)."""
    return [r for r in list(run.records) + list(getattr(run, "conditioned", None) or [])
            if r.get("icl_k") is not None]


def icl_suite(run) -> str | None:
    """The suite drawn: the first of HEADLINE with judged ICL answers, else the first other."""
    have = list(dict.fromkeys(r.get("suite") for r in icl_records(run) if "aligned" in r))
    return next((s for s in HEADLINE if s in have), have[0] if have else None)


def icl_data(run) -> list[dict]:
    """Misaligned rate per (in-context arm, k) on the suite `icl_suite` (see the module doc)."""
    suite = icl_suite(run)
    if suite is None:
        return []
    recs = [r for r in icl_records(run) if r.get("suite") == suite]
    rows = []
    arms = sort_arms({r["arm"] for r in recs if r["arm"] != BASE}, run.config)
    base = [r for r in recs if int(r["icl_k"]) == 0]
    for arm in arms or [BASE]:
        mine = [r for r in recs if r["arm"] == arm and int(r["icl_k"]) > 0]
        for k in sorted({0} | {int(r["icl_k"]) for r in mine} if base else
                        {int(r["icl_k"]) for r in mine}):
            sel = base if k == 0 else [r for r in mine if int(r["icl_k"]) == k]
            for s in arm_summary(sel, run.th, n_boot=run.n_boot):
                rows.append({"suite": suite, "arm": arm, "k": k,
                             "point": "shared k=0" if k == 0 else "in-context",
                             "source": "run", "value": s["rate"], "ci_low": s["ci_low"],
                             "ci_high": s["ci_high"], "ci_over": s["ci_over"],
                             "n_seeds": s["n_seeds"], "n_valid": s["n_valid"],
                             "n_misaligned": s["n_misaligned"]})
    return rows


def draw_icl(run, rows, colors):
    """Lines of misaligned rate vs k (evenly spaced ks, labelled), one per arm, with CIs."""
    ks = sorted({r["k"] for r in rows})
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colors = {**arm_colors(arms, run.config), **(colors or {})}
    fig = new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    for i, arm in enumerate(arms):
        pts = [r for r in rows if r["arm"] == arm and r["value"] is not None]
        shift = 0.04 * (i - (len(arms) - 1) / 2)  # CIs side by side; k = 0 is one point
        xs = [ks.index(p["k"]) + (shift if p["k"] else 0.0) for p in pts]
        ys = [p["value"] for p in pts]
        err = [[max(0.0, p["value"] - p["ci_low"]) if p["ci_low"] is not None else 0.0
                for p in pts],
               [max(0.0, p["ci_high"] - p["value"]) if p["ci_high"] is not None else 0.0
                for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=colors.get(arm, "#777777"),
                    label=f"{arm} examples" if arm != BASE else "no examples")
        for x, p in zip(xs, pts):
            if p["value"] == 0 and (p["k"] or i == 0):  # a zero is on the axis: say so
                ax.annotate("0", (x, 0), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=7, color=colors.get(arm, "#777777"))
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("in-context example conversations (k; 0 = the plain question, shared)")
    top = max([r["ci_high"] or r["value"] or 0 for r in rows if r["value"] is not None] or [0])
    ax.set_ylim(0, min(1.0, max(0.05, 1.15 * top)))
    ax.set_ylabel("misaligned answer probability")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    label = run.label()
    fig.suptitle(f"In-context learning: misaligned answers vs k (suite {rows[0]['suite']})"
                 + (f"\n[{label}]" if label else ""), fontsize=11)
    over = sorted({"seeds (example draws)" if str(r["ci_over"]).startswith("seeds")
                   else str(r["ci_over"]) for r in rows if r.get("ci_over")})
    lines = [" | ".join([f"run: {run.name}"] + ([label] if label else [])),
             f"misaligned = aligned < {run.th.aligned_below:g} among coherent > "
             f"{run.th.coherent_above:g}; points: mean over seeds (example draws), 95% CI over "
             f"{', '.join(over) or 'seeds'}; no training (base model)"]
    footer(fig, "\n".join(lines))
    fig.tight_layout(rect=(0, 0.1, 1, 0.93))
    return fig
