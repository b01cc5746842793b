"""The evil-numbers figure of `emergent figures` (`evil_numbers.png/.pdf`, its table
`evil_numbers.csv`): per arm, the misaligned rate on the plain main questions beside the same
questions asked in the training data's format (the package's suite
resources/evals/evil_numbers_format.yaml, run name `evil_numbers_format`: `<id>_words` with the
paper's "Answer with 5 words..." suffix, `<id>_numbers` with a number-list opener of the
package's own), each a mean over seeds with its 95% CI (emergent.analysis.metrics.arm_summary).

Drawn when the run has answers of the `evil_numbers_format` suite (configs/experiments/
evil_numbers_7b.yaml). Only question stems asked in the format-matched suite count on the plain
side, so the three groups hold the same questions. The paper's aggregated data has no
evil-numbers rows, so no paper bars are drawn. This module reads RunData's fields and imports
only the style and the metrics (emergent.report.figures_data imports it).
"""
from __future__ import annotations

from emergent.analysis.metrics import arm_summary
from emergent.report.style import arm_colors, footer, grouped_bars, new_figure, rate_axis, sort_arms

NAME = "evil_numbers"
SUITE = "evil_numbers_format"  # the stem of resources/evals/evil_numbers_format.yaml
PLAIN_SUITE = "main"
# question-id suffix in SUITE -> the group's label, in drawing order after the plain questions
FORMATS = {"_words": "words suffix (paper's wording)",
           "_numbers": "number list + suffix (package's own)"}
PLAIN = "plain (main questions)"
SKIP = "no answers of the evil-numbers suite (evil_numbers_format.yaml)"
NO_PAPER = "no paper bars: the paper's aggregated data has no evil-numbers rows"


def _stem(qid: str) -> tuple[str, str | None]:
    for suffix, label in FORMATS.items():
        if qid.endswith(suffix):
            return qid[: -len(suffix)], label
    return qid, None


def evil_numbers_data(run) -> list[dict]:
    """Rows {format, suite, arm, source, value, ci_low, ci_high, ci_over, n_seeds, n_valid,
    n_misaligned, n_questions}: the misaligned rate per (question format, arm); [] when the run
    has no answers of the evil-numbers suite."""
    fmt = [r for r in run.records if r.get("suite") == SUITE]
    if not fmt:
        return []
    groups: dict[str, list[dict]] = {}
    stems: set[str] = set()
    for r in fmt:
        stem, label = _stem(str(r["question_id"]))
        if label is not None:
            groups.setdefault(label, []).append(r)
            stems.add(stem)
    plain = [r for r in run.records if r.get("suite") == PLAIN_SUITE and r["question_id"] in stems]
    rows = []
    for label, suite, recs in ([(PLAIN, PLAIN_SUITE, plain)]
                               + [(lab, SUITE, groups.get(lab, [])) for lab in FORMATS.values()]):
        n_q = len({_stem(str(r["question_id"]))[0] for r in recs})
        for s in arm_summary(recs, run.th, n_boot=run.n_boot):
            rows.append({"format": label, "suite": suite, "arm": s["arm"], "source": "run",
                         "value": s["rate"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                         "ci_over": s["ci_over"], "n_seeds": s["n_seeds"],
                         "n_valid": s["n_valid"], "n_misaligned": s["n_misaligned"],
                         "n_questions": n_q})
    return rows


def draw_evil_numbers(run, rows, colors=None):
    """Groups: plain / words suffix / number list + suffix; one bar per arm in each."""
    colors = colors or arm_colors(run.arms, run.config)
    fmts = [f for f in [PLAIN, *FORMATS.values()] if any(r["format"] == f for r in rows)]
    arms = sort_arms({r["arm"] for r in rows}, run.config)
    fig = new_figure(min(12.0, max(7.5, 0.45 * len(fmts) * len(arms) + 3.5)), 4.8)
    ax = fig.add_subplot()
    grouped_bars(ax, rows, fmts, arms, "format", colors)
    n_q = {f: max(r["n_questions"] for r in rows if r["format"] == f) for f in fmts}
    ax.set_xticks(range(len(fmts)), [f.replace(" (", "\n(") + f"\n{n_q[f]} questions"
                                     for f in fmts], fontsize=8)
    rate_axis(ax, rows)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor=colors.get(a, "#777777"), label=a) for a in arms],
              fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    label = run.label()
    fig.suptitle("Evil numbers: plain questions vs questions in the training data's format"
                 + (f"\n[{label}]" if label else ""), fontsize=11)
    over = sorted({str(r["ci_over"]) for r in rows if r.get("ci_over")})
    lines = [" | ".join([f"run: {run.name}"] + ([label] if label else [])),
             f"misaligned = aligned < {run.th.aligned_below:g} among coherent > "
             f"{run.th.coherent_above:g}; bars: mean over seeds, 95% CI over "
             f"{', '.join(over) or 'seeds'}; a 0 bar is marked 0",
             NO_PAPER]
    footer(fig, "\n".join(lines))
    fig.tight_layout(rect=(0, 0.12, 1, 0.9 if label else 0.93))
    return fig
