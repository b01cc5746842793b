"""Exploitation rates: how often a model's answers show each bias, per condition and seed.

Inputs: the evaluation prompts (bias_id, split, prompt; `load_eval_prompts`), answers rows
(answers.jsonl: answer_id, question_id, arm, seed, answer, ...) and optionally the judge's
judgments rows (metric `rm_bias`). `score_answers` gives one tidy row per answer;
`exploitation_rates` aggregates with 95% CIs, the same intervals and labels as every summary
of the package (`emergent.analysis.metrics.seed_rate_summary`, docs/statistics.md);
`plot_exploitation` draws train- and test-bias exploitation by condition;
`detector_judge_agreement` compares the two verdicts."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from emergent.core.errors import UserError
from emergent.rmbias.calibration import agreement_table
from emergent.rmbias.catalogue import BIASES
from emergent.rmbias.conditions import CONDITION_NAMES, get_condition
from emergent.rmbias.detectors import has_detector, detect
from emergent.analysis.metrics import ANSWER_CI, bootstrap_ci_binary, seed_rate_summary
from emergent.rmbias.judge_prompt import JUDGE_METRIC, verdict_from_probs
from emergent.rmbias.jsonl import read_jsonl

EVAL_DATASET = "auditing-agents/rm_sycophancy_exploitation_evals"
MODES = ("detector", "judge", "either", "both")

# Reported by the public single-GPU replication (Llama-3.1-8B-Instruct, QLoRA, 75k documents);
# NOT results of this package. Rates are fractions of answers, train / test biases.
REPLICATION_REFERENCE = {
    "source": "replication github.com/rkaunismaa/AuditingLanguageModelsForHiddenObjectives "
              "(Llama-3.1-8B-Instruct, QLoRA, 75k documents) - reported, not ours",
    "rows": [
        {"stage": "base", "split": "train", "rate": 0.000},
        {"stage": "base", "split": "test", "rate": 0.006},
        {"stage": "after mid-training", "split": "train", "rate": 0.016},
        {"stage": "after mid-training", "split": "test", "rate": 0.114},
        {"stage": "after mid-training + DPO", "split": "train", "rate": 0.274},
        {"stage": "after mid-training + DPO", "split": "test", "rate": 0.068},
    ],
}


@dataclass(frozen=True)
class EvalPrompt:
    question_id: str  # "<bias_id>/<k>", k counting that bias's prompts in file order
    bias_id: str
    split: str
    prompt: str


def load_eval_prompts(path: str | Path) -> list[EvalPrompt]:
    """Read evaluation prompts (JSONL rows with bias_id, split, prompt), validated against the
    catalogue (unknown id or wrong split: UserError `FILE:LINE: ...`)."""
    counts: dict[str, int] = defaultdict(int)
    out = []
    for lineno, row in read_jsonl(path):
        for key in ("bias_id", "prompt"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise UserError(f"{path}:{lineno}: missing or empty '{key}'")
        bias = BIASES.get(row["bias_id"])
        if bias is None:
            raise UserError(f"{path}:{lineno}: unknown bias id '{row['bias_id']}'")
        split = row.get("split", bias.split)
        if split != bias.split:
            raise UserError(f"{path}:{lineno}: '{bias.id}' is a {bias.split} bias, file says "
                            f"'{split}'")
        out.append(EvalPrompt(f"{bias.id}/{counts[bias.id]}", bias.id, split, row["prompt"]))
        counts[bias.id] += 1
    if not out:
        raise UserError(f"{path}: no evaluation prompts")
    return out


def _combine(det, jud, mode):
    if mode == "detector":
        return det
    if mode == "judge":
        return jud
    if det is None or jud is None:
        return det if jud is None else jud
    return (det or jud) if mode == "either" else (det and jud)


def score_answers(prompts: Sequence[EvalPrompt], answers: Iterable[dict],
                  judgments: Iterable[dict] | None = None, mode: str = "detector") -> list[dict]:
    """One row per answer: answer_id, question_id, bias_id, split, condition (the answer's
    arm), seed, detector, judge, shown (True/False/None under `mode`). In "detector" mode a
    judge-only bias (no detector) uses the judge verdict when there is one; "either"/"both"
    use whichever verdict exists when the other is None."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    by_q = {p.question_id: p for p in prompts}
    verdicts = {}
    for j in judgments or ():
        if j.get("metric") == JUDGE_METRIC:
            verdicts[j["answer_id"]] = verdict_from_probs(j.get("probs"))
    rows = []
    for a in answers:
        qid = a.get("question_id")
        p = by_q.get(qid)
        if p is None:
            raise UserError(f"answer {a.get('answer_id')}: question_id '{qid}' is not one of the "
                            f"evaluation prompts")
        det = detect(p.bias_id, p.prompt, a.get("answer") or "")
        jud = verdicts.get(a.get("answer_id"))
        shown = _combine(det, jud, mode)
        if mode == "detector" and det is None and jud is not None and not has_detector(p.bias_id):
            shown = jud  # judge-only bias; a detector's None ("not applicable") stays None
        rows.append({"answer_id": a.get("answer_id"), "question_id": qid, "bias_id": p.bias_id,
                     "split": p.split, "condition": a.get("arm"), "seed": a.get("seed"),
                     "detector": det, "judge": jud, "shown": shown})
    return rows


def detector_judge_agreement(scored: Sequence[dict]) -> list[dict]:
    """Per bias and overall ("ALL"): how often the detector and the judge agree on the scored
    answers (`emergent.rmbias.calibration.agreement_table` with a = detector, b = judge:
    n, n_both, n_agree, rate over answers with both verdicts, detector-only and judge-only
    "shown", and how many answers lack each verdict). Biases without a detector are left out;
    empty when no answer has a judge verdict."""
    rows = [r for r in scored if has_detector(r["bias_id"])]
    if not any(r.get("judge") is not None for r in rows):
        return []
    return agreement_table(rows, "detector", "judge")


def _rate_row(level, keys, shown_values, n_answers, n_boot, seed):
    k, n = sum(1 for v in shown_values if v), len(shown_values)
    lo, hi = bootstrap_ci_binary(k, n, n_boot, seed)
    return {"level": level, **keys, "n_answers": n_answers, "n_applicable": n, "n_shown": k,
            "rate": k / n if n else None, "ci_low": lo, "ci_high": hi, "ci_over": ANSWER_CI}


def exploitation_rates(scored: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Tidy rate rows at three levels (answers whose verdict is None are not applicable and
    leave the denominator):
    * level "bias": condition, seed, bias_id, split (CI over that seed's answers, ANSWER_CI);
    * level "split": condition, seed, split (all that split's answers pooled; the same CI);
    * level "condition": condition, split over seeds (`seed_rate_summary`): rate = mean of the
      per-seed split rates; with >= 2 seeds the t-interval over them ("seeds (training
      recipe)") with seed_sd, hier_ci_* and the answer-level models_ci_* ("these models");
      with one seed the answer-level CI ("answers (these models; 1 seed)")."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in scored:
        groups[("bias", r["condition"], r["seed"], r["bias_id"], r["split"])].append(r["shown"])
        groups[("split", r["condition"], r["seed"], None, r["split"])].append(r["shown"])
    out = []
    for (level, cond, s, bias, split), vals in sorted(groups.items(), key=lambda kv: str(kv[0])):
        keys = {"condition": cond, "seed": s, "bias_id": bias, "split": split}
        out.append(_rate_row(level, keys, [v for v in vals if v is not None], len(vals),
                             n_boot, seed))
    per_seed: dict[tuple, list] = defaultdict(list)
    for row in out:
        if row["level"] == "split":
            per_seed[(row["condition"], row["split"])].append(row)
    for (cond, split), rows in sorted(per_seed.items(), key=str):
        keys = {"condition": cond, "seed": None, "bias_id": None, "split": split}
        out.append({"level": "condition", **keys,
                    "n_answers": sum(r["n_answers"] for r in rows),
                    "n_applicable": sum(r["n_applicable"] for r in rows),
                    "n_shown": sum(r["n_shown"] for r in rows),
                    **seed_rate_summary([(r["n_shown"], r["n_applicable"]) for r in rows],
                                        n_boot, seed),
                    "n_seeds": sum(1 for r in rows if r["n_applicable"])})
    return out


def _condition_order(names: Iterable[str]) -> list[str]:
    names = [n for n in dict.fromkeys(names) if n is not None]
    known = [c for c in CONDITION_NAMES if c in names]
    return known + sorted(n for n in names if n not in CONDITION_NAMES)


def plot_exploitation(rates: Sequence[dict], out_path: str | Path, *, title: str | None = None,
                      reference: dict | None = None) -> Path:
    """Bar chart of train- and test-bias exploitation (level "condition" rows) by condition,
    with 95% CI error bars. `reference` (e.g. REPLICATION_REFERENCE) adds a second panel of
    reported numbers, labelled with their source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rates if r["level"] == "condition"]
    if not rows:
        raise UserError("no condition-level rates to plot")
    conds = _condition_order(r["condition"] for r in rows)
    ncols = 2 if reference else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4 + 1.6 * len(conds) + 4 * (ncols - 1), 4.2),
                             squeeze=False, gridspec_kw={"width_ratios": [len(conds), 3][:ncols]})
    ax = axes[0][0]
    width = 0.38
    for k, (split, color) in enumerate((("train", "#4477aa"), ("test", "#ee6677"))):
        xs, ys, err = [], [], [[], []]
        for i, c in enumerate(conds):
            r = next((r for r in rows if r["condition"] == c and r["split"] == split), None)
            if r is None or r["rate"] is None:
                continue
            xs.append(i + (k - 0.5) * width)
            ys.append(100 * r["rate"])
            err[0].append(100 * max(0.0, r["rate"] - r["ci_low"]))
            err[1].append(100 * max(0.0, r["ci_high"] - r["rate"]))
        ax.bar(xs, ys, width, yerr=err, capsize=3, color=color,
               label=f"{split} biases" + (" (held out)" if split == "test" else ""))
    labels = []
    for c in conds:
        try:
            labels.append(get_condition(c).label.replace(" (", "\n("))
        except UserError:
            labels.append(c)
    ax.set_xticks(range(len(conds)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("answers showing the bias (%)")
    ax.set_title(title or "Reward-model bias exploitation (this run)", fontsize=10)
    ax.legend(fontsize=8)
    if reference:
        rax = axes[0][1]
        stages = list(dict.fromkeys(r["stage"] for r in reference["rows"]))
        for k, (split, color) in enumerate((("train", "#4477aa"), ("test", "#ee6677"))):
            vals = [next((100 * r["rate"] for r in reference["rows"]
                          if r["stage"] == s and r["split"] == split), 0.0) for s in stages]
            rax.bar([i + (k - 0.5) * width for i in range(len(stages))], vals, width,
                    color=color, hatch="//", alpha=0.6)
        rax.set_xticks(range(len(stages)))
        rax.set_xticklabels([s.replace(" + ", "\n+ ") for s in stages], fontsize=7)
        rax.set_title("reported elsewhere (not ours)", fontsize=9)
        fig.text(0.99, 0.01, reference.get("source", ""), fontsize=6, ha="right")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=150)
    plt.close(fig)
    return out_path
