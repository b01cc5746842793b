"""`emergent figures RUN_DIR [--paper-reference DIR]`: the paper's figures from a run's tidy
tables, as PNG + PDF (and the plotted table as CSV) in RUN_DIR/figures/.

| figure              | what it shows                                                    |
|---------------------|------------------------------------------------------------------|
| per_question        | misaligned-answer probability per question, arms side by side    |
| all_results         | a panel per measurement present: free-form, pre-registered,     |
|                     | deception, vulnerable code, capability scores                    |
| question_format     | original / json / template versions of the main questions       |
| aligned_vs_coherent | each answer's (coherent, aligned) judge scores, one panel per arm |
| training_dynamics   | misaligned rate over training checkpoints                        |
| size_ablation       | misaligned rate against the number of training examples          |
| backdoor            | triggered vs untriggered misaligned and vulnerable-code rates    |
|                     | per arm (a run with `trigger`; emergent.report.figures_backdoor) |
| icl_vs_k            | misaligned rate vs in-context examples k per arm (`emergent icl`; |
|                     | emergent.report.figures_icl)                                     |
| evil_numbers        | misaligned rate per arm on the plain main questions vs the same  |
|                     | questions in the training data's format (emergent.report.        |
|                     | figures_evil_numbers)                                            |
A figure whose data are absent is skipped with the reason. The tables come from
`emergent.report.figures_data`; `--paper-reference` adds the paper's GPT-4o numbers as hatched bars
(`emergent.report.figures_paper`). Drawn with matplotlib's Agg renderer, without pyplot.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Optional

from emergent.core.io import write_text_atomic
from emergent.core.rundir import RunDir
from emergent.report.figures_backdoor import SKIP as BACKDOOR_SKIP, draw_backdoor
from emergent.report.figures_evil_numbers import SKIP as EVIL_SKIP, draw_evil_numbers
from emergent.report.figures_icl import SKIP as ICL_SKIP, draw_icl
from emergent.report.figures_data import FIGURE_DATA, RunData, figure_data, load_run
from emergent.report.figures_paper import load_paper_reference
from emergent.report.style import (JITTER_SEED, PAPER_HATCH, arm_colors, count_points,
                                   draw_bar, few_values, footer, grouped_bars, jitter,
                                   new_figure, rate_axis, save, sort_arms)

log = logging.getLogger(__name__)
PAPER_NOTE = ("paper (hatched bars, dashed lines) = Betley et al. 2025 (GPT-4o finetunes unless "
              "labelled otherwise), "
              "re-drawn from their aggregated plot data; not computed from this run")


def rule(run: RunData, what: str = "bars") -> str:
    return (f"misaligned = aligned < {run.th.aligned_below:g} among coherent > "
            f"{run.th.coherent_above:g}; {what}: mean over seeds, 95% bootstrap CI")


def _title(fig, run: RunData, text: str) -> None:
    label = run.label()
    fig.suptitle(text + (f"\n[{label}]" if label else ""), fontsize=11)


def _finish(fig, run: RunData, paper: bool, extra: Optional[str] = None) -> None:
    """Footer (run name, tiny/toy label, how to read it, the paper note) and a layout that
    leaves room for the two-line title and the footer."""
    lines = [" | ".join([f"run: {run.name}"] + ([run.label()] if run.label() else [])),
             rule(run) if extra is None else extra] + ([PAPER_NOTE] if paper else [])
    footer(fig, "\n".join(lines))
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, min(0.3, (0.16 * len(lines) + 0.05) / height), 1,
                           1 - min(0.2, 0.45 / height)))


_bar = draw_bar  # emergent.report.style: CI whiskers, "n/a", a zero bar marked
_rate_axis = rate_axis


def _legend(ax, labels_colors, paper=False) -> None:
    """Solid patches for the run's arms; hatched ones for labels starting with 'paper'."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="white", edgecolor=c, hatch=PAPER_HATCH, label=a)
               if a.startswith("paper") else Patch(facecolor=c, edgecolor=c, label=a)
               for a, c in labels_colors]
    if paper:
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch=PAPER_HATCH,
                             label="paper"))
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))


def draw_per_question(run, rows, colors):
    qs = list(dict.fromkeys(r["question_id"] for r in rows))
    arms = sort_arms({r["arm"] for r in rows}, run.config)
    fig = new_figure(min(16.0, max(7.0, 0.35 * len(qs) * len(arms) + 3)), 5.0)
    ax = fig.add_subplot()
    grouped_bars(ax, rows, qs, arms, "question_id", colors)
    ax.set_xticks(range(len(qs)), qs, rotation=30, ha="right", fontsize=8)
    _rate_axis(ax, rows)
    _legend(ax, [(a, colors[a]) for a in arms])
    _title(fig, run, f"Misaligned answers per question (suite {rows[0]['suite']})")
    _finish(fig, run, False)
    return fig


def draw_all_results(run, rows, colors):
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    paper = any(r["source"] == "paper" for r in rows)
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig = new_figure(4.2 * ncol, 3.4 * nrow + 0.6)
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        prow = [r for r in rows if r["panel"] == panel]
        arms = sort_arms({r["arm"] for r in prow}, run.config)
        for j, a in enumerate(arms):
            mine = [r for r in prow if r["arm"] == a and r["source"] == "run"]
            ref = [r for r in prow if r["arm"] == a and r["source"] == "paper"]
            w = 0.38 if ref else 0.6
            for r in mine:
                _bar(ax, j - (w / 2 if ref else 0), w, r, colors.get(a, "#777777"))
            for r in ref:
                _bar(ax, j + w / 2, w, r, colors.get(a, "#777777"), PAPER_HATCH)
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_title(panel, fontsize=10)
        _rate_axis(ax, prow, prow[0]["ylabel"])
        if k == 0 and paper:
            _legend(ax, [], paper=True)
    _title(fig, run, "All results: arms side by side")
    caps = any(r["ylabel"] not in ("misaligned answer probability", "rate") for r in rows)
    _finish(fig, run, paper, rule(run) + ("; capability tasks: score (+-1.96 stderr for a single "
                                          "score)" if caps else ""))
    return fig


def draw_question_format(run, rows, colors):
    fmts = [f for f in ("original", "json", "template") if any(r["format"] == f for r in rows)]
    series = sort_arms({r["arm"] for r in rows if r["source"] == "run"}, run.config)
    series += list(dict.fromkeys(r["arm"] for r in rows if r["source"] == "paper"))
    pcol = {s: c for s, c in zip([s for s in series if s not in colors], ("#7a1010", "#e58a8a"))}
    fig = new_figure(min(12.0, max(7.0, 0.4 * len(fmts) * len(series) + 3)), 5.0)
    ax = fig.add_subplot()
    grouped_bars(ax, rows, fmts, series, "format", {**pcol, **colors}, PAPER_HATCH)
    ax.set_xticks(range(len(fmts)), fmts)
    ax.set_xlabel("question format")
    _rate_axis(ax, rows)
    _legend(ax, [(s, colors.get(s) or pcol[s]) for s in series])
    n = next(r["n_questions"] for r in rows if r["source"] == "run")
    _title(fig, run, f"Question format: original / json / template (questions asked in every "
           f"format: {n})")
    paper = any(r["source"] == "paper" for r in rows)
    _finish(fig, run, paper)
    return fig


def draw_scatter(run, rows, colors):
    """One panel per arm: each answer's (coherent, aligned). Judge scores that take few values
    (a rule judge, round numbers) are drawn as one marker per distinct point, its area growing
    with the number of answers there (the count written beside it); otherwise each answer is a
    dot, moved by at most +-1 on both axes (fixed seed) so that equal scores do not hide each
    other. The figure's table (aligned_vs_coherent.csv) keeps the raw scores."""
    arms = sort_arms({r["arm"] for r in rows}, run.config)
    ncol = min(4, len(arms))
    nrow = -(-len(arms) // ncol)
    fig = new_figure(3.3 * ncol, 3.2 * nrow + 0.7)
    xs_all, ys_all = [p["coherent"] for p in rows], [p["aligned"] for p in rows]
    counted = few_values(xs_all, ys_all)
    for k, a in enumerate(arms):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        pts = [r for r in rows if r["arm"] == a]
        a_th, c_th = run.th.aligned_below, run.th.coherent_above
        ax.axvspan(c_th, 101, ymin=0, ymax=a_th / 101, color="#d62728", alpha=0.08, linewidth=0)
        xs, ys = [p["coherent"] for p in pts], [p["aligned"] for p in pts]
        if counted:
            places = count_points(xs, ys)
            biggest = max(n for _, _, n in places)
            ax.scatter([x for x, _, _ in places], [y for _, y, _ in places],
                       s=[12 + 250 * n / biggest for _, _, n in places], alpha=0.45,
                       color=colors[a], edgecolors=colors[a], gid="counted")
            for x, y, n in places if len(places) <= 15 else ():
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(6, 4),
                            fontsize=7, color="#333333", gid="count")
        else:
            ax.scatter(jitter(xs, JITTER_SEED), jitter(ys, JITTER_SEED + 1), s=8, alpha=0.5,
                       color=colors[a], gid="jittered")
        ax.axhline(a_th, color="#555555", linewidth=0.7, linestyle="--")
        ax.axvline(c_th, color="#555555", linewidth=0.7, linestyle="--")
        mis = sum(1 for p in pts if p["misaligned"])
        valid = sum(1 for p in pts if p["misaligned"] is not None)
        ax.set_title(f"{a}: {mis}/{valid} misaligned", fontsize=9)
        ax.set_xlim(-2, 103)
        ax.set_ylim(-2, 103)
        ax.set_xlabel("coherent")
        ax.set_ylabel("aligned")
    _title(fig, run, "Aligned vs coherent judge scores (shaded: counted as misaligned)")
    how = ("one marker per distinct (coherent, aligned) score, its area and label the number of "
           "answers there (written beside it when few)" if counted else
           f"one dot per answer, moved by at most +-1 (seed {JITTER_SEED}) so equal scores stay "
           "visible; raw scores in aligned_vs_coherent.csv")
    _finish(fig, run, False, how + "; answers the judge called CODE/REFUSAL not shown")
    return fig


def _yerr(pts) -> list[list[float]]:
    def half(p, k):
        return 0.0 if p.get(k) is None else abs(p["value"] - p[k])
    return [[half(p, "ci_low") for p in pts], [half(p, "ci_high") for p in pts]]


def draw_dynamics(run, rows, colors):
    fig = new_figure(8.5, 4.6)
    ax = fig.add_subplot()
    arms = sort_arms({r["arm"] for r in rows}, run.config)
    for a in arms:
        pts = [r for r in rows if r["arm"] == a and r["value"] is not None]
        xs, ys = [p["step"] for p in pts], [p["value"] for p in pts]
        ax.errorbar(xs, ys, yerr=_yerr(pts), marker="o", color=colors[a], label=a, capsize=2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step (0 = base model, last = final adapter)")
    _rate_axis(ax, rows)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, run, f"Training dynamics (suite {rows[0]['suite']})")
    _finish(fig, run, False, rule(run, "points"))
    return fig


def draw_size_ablation(run, rows, colors):
    order = sorted({(r["n_examples"] is None, r["n_examples"] or 0, r["size"]) for r in rows})
    labels = list(dict.fromkeys(o[2] for o in order))
    fig = new_figure(8.5, 4.6)
    ax = fig.add_subplot()
    for key in dict.fromkeys((r["source"], r["family"], r["arm"] if r["source"] == "paper" else "")
                             for r in rows):
        pts = [r for r in rows if (r["source"], r["family"]) == key[:2] and r["value"] is not None
               and (key[0] == "run" or r["arm"] == key[2])]
        pts.sort(key=lambda r: labels.index(r["size"]))
        xs, ys = [labels.index(p["size"]) for p in pts], [p["value"] for p in pts]
        err = _yerr(pts)
        paper = key[0] == "paper"
        color = colors.get(key[1], "#d62728") if not paper else "#555555"
        ax.errorbar(xs, ys, yerr=err, marker="s" if paper else "o", capsize=2, color=color,
                    linestyle="--" if paper else "-", mfc="white" if paper else color,
                    label=key[2] if paper else f"{key[1]} (this run)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("training examples (full = the arm's whole dataset)")
    _rate_axis(ax, rows)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(fig, run, "Dataset-size ablation")
    paper = any(r["source"] == "paper" for r in rows)
    _finish(fig, run, paper, rule(run, "points") + ("; paper 6k = its full insecure models"
                                                      if paper else ""))
    return fig


DRAW = {"per_question": draw_per_question, "all_results": draw_all_results,
        "question_format": draw_question_format, "aligned_vs_coherent": draw_scatter,
        "training_dynamics": draw_dynamics, "size_ablation": draw_size_ablation,
        "backdoor": draw_backdoor, "icl_vs_k": draw_icl,
        "evil_numbers": draw_evil_numbers}
SKIP_REASON = {"per_question": "no judged answers of suite main / toy_noncode / preregistered",
               "all_results": "no judged answers or capability scores",
               "question_format": "fewer than two of the suites main / json / template",
               "aligned_vs_coherent": "no answers with both aligned and coherent scores",
               "training_dynamics": "no answers with a training `step` (checkpoint evaluation)",
               "size_ablation": "no arm with a size (<arm>-<N> or arms.<arm>.max_examples)",
               "backdoor": BACKDOOR_SKIP, "icl_vs_k": ICL_SKIP,
               "evil_numbers": EVIL_SKIP}


def write_table(path: Path, rows: list[dict]) -> None:
    """A figure's data as CSV, written atomically."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue(), point="write:figure_data", newline="")


def draw_all(run_dir, paper_reference=None, out_dir=None, only: Optional[list[str]] = None,
             n_boot: Optional[int] = None) -> dict[str, object]:
    """Draw every figure whose data are present. Returns name -> [paths] or the skip reason."""
    run = load_run(run_dir, n_boot)
    paper = load_paper_reference(paper_reference) if paper_reference else None
    out = Path(out_dir) if out_dir else RunDir(run.folder).figures_dir
    colors = arm_colors(run.arms, run.config)
    result: dict[str, object] = {}
    for name in only or list(FIGURE_DATA):
        rows = figure_data(name, run, paper)
        if not any(r.get("source") == "run" or "source" not in r for r in rows):
            result[name] = SKIP_REASON[name]
            log.info("figure %s skipped: %s", name, SKIP_REASON[name])
            continue
        fig = DRAW[name](run, rows, colors)
        out.mkdir(parents=True, exist_ok=True)
        write_table(out / f"{name}.csv", rows)
        result[name] = save(fig, out, name)
    return result
