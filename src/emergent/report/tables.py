"""The tables of `emergent report FILES_OR_RUN_DIR ...` (and of a run's metrics stage):
misalignment rates per arm (and per question), with 95% CIs over seeds ("this training
recipe") and over answers ("these models"), and tests of the treatment arm against each control,
each with the smallest p-value its design can reach; summary.csv and per_question.csv. The
statistics are those of `emergent.analysis.metrics` (docs/statistics.md).

Inputs, mixed freely:
* a run directory: every answers.jsonl below it, joined with the judgments.jsonl beside it
  (plus judged-answer CSVs in the upstream layout found below it);
* an answers.jsonl or judgments.jsonl file (its partner is read from the same folder);
* a judged-answer CSV in the upstream layout: question_id (or question), answer or response,
  aligned, coherent, optional model / group (arm = group, seed = model; else arm = model;
  else the file name). Empty, "nan" or "None" scores are None (CODE/REFUSAL).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from emergent.analysis.metrics import Thresholds, arm_summary, compare, rates
from emergent.core.errors import UserError
from emergent.core.input_files import decode_utf8
from emergent.core.io import iter_jsonl, read_jsonl, write_text_atomic
from emergent.core.rundir import ANSWERS, FIGURES, JUDGMENTS, PER_QUESTION, SUMMARY, join_scores

UPSTREAM_COLUMNS = ("aligned", "coherent")
ANSWER_KEYS = ("answer_id", "arm", "suite", "question_id")  # every answers row has them
JUDGMENT_KEYS = ("answer_id", "metric", "score")  # score: a number or null
# the scores a judgment of each kind can have (emergent.judge.scoring); aligned and coherent
# are 0-100 scores in every table
SCORE_RANGES = {"0_100": (0.0, 100.0), "binary": (0.0, 1.0), "categorical": (0.0, 1.0)}
_METRIC_KIND = {"aligned": "0_100", "coherent": "0_100"}


def _score(value, path: Path, line: int, col: str):
    if value is None or str(value).strip().lower() in ("", "nan", "none", "null"):
        return None
    try:
        x = float(value)
    except ValueError:
        raise UserError(f"{path}:{line}: column '{col}' must be a number or empty, "
                        f"got {value!r}") from None
    if math.isnan(x):
        return None
    problem = score_problem(x, "0_100")
    if problem:
        raise UserError(f"{path}:{line}: column '{col}' {problem}")
    return x


def score_problem(score, kind) -> str | None:
    """Why `score` cannot be a judgment's score of `kind` (None when it can: a finite number in
    the kind's range, or None for no score)."""
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return f"score must be a number or null, got {score!r}"
    if not math.isfinite(score):
        return f"score must be finite, got {score!r}"
    low, high = SCORE_RANGES.get(kind, (-math.inf, math.inf))
    if not low <= score <= high:
        return f"score {score!r} is outside {low:g}..{high:g} (a {kind} score)"
    return None


def read_answers(path: Path) -> list[dict]:
    """The rows of an answers table, each checked for ANSWER_KEYS (`FILE:LINE: problem`)."""
    rows = []
    for line, r in iter_jsonl(path, skip_torn_tail=True):
        missing = [k for k in ANSWER_KEYS if r.get(k) is None]
        if missing:
            raise UserError(f"{path}:{line}: an answer needs {', '.join(missing)}")
        rows.append(r)
    if not rows:
        raise UserError(f"{path}: no answers")
    return rows


def read_judgments(path: Path) -> list[dict]:
    """The rows of a judgments table, each checked for JUDGMENT_KEYS and its score's range
    (`FILE:LINE: problem`)."""
    rows = []
    for line, r in iter_jsonl(path, skip_torn_tail=True):
        missing = [k for k in JUDGMENT_KEYS if k not in r or (k != "score" and r[k] is None)]
        if missing:
            raise UserError(f"{path}:{line}: a judgment needs {', '.join(missing)}")
        problem = score_problem(r["score"], r.get("kind") or _METRIC_KIND.get(r["metric"]))
        if problem:
            raise UserError(f"{path}:{line}: {problem}")
        rows.append(r)
    if not rows:
        raise UserError(f"{path}: no judgments")
    return rows


def _csv_text(path: Path) -> str:
    try:
        return decode_utf8(path.read_bytes(), path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def is_upstream_csv(path: Path) -> bool:
    header = next(csv.reader(io.StringIO(_csv_text(path), newline="")), [])
    return all(c in header for c in UPSTREAM_COLUMNS) and ("answer" in header or "response" in header)


def read_upstream_csv(path: Path) -> list[dict]:
    """Judged answers in the upstream layout -> records (arm, seed, question_id, aligned,
    coherent, answer)."""
    out = []
    with io.StringIO(_csv_text(path), newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in UPSTREAM_COLUMNS if c not in cols]
        if missing or not ({"question_id", "question"} & set(cols)) or not (
                {"answer", "response"} & set(cols)):
            raise UserError(f"{path}:1: a judged-answer CSV needs question_id (or question), "
                            f"answer (or response), aligned and coherent columns; has "
                            f"{', '.join(cols)}")
        for row in reader:
            line = reader.line_num
            group, model = row.get("group") or None, row.get("model") or None
            out.append({
                "arm": group or model or path.stem,
                "seed": model if group and model else 0,
                "question_id": row.get("question_id") or row.get("question"),
                "answer": row.get("answer") if row.get("answer") is not None else row.get("response"),
                "aligned": _score(row.get("aligned"), path, line, "aligned"),
                "coherent": _score(row.get("coherent"), path, line, "coherent"),
                "source": str(path)})
    if not out:
        raise UserError(f"{path}: no rows (a header and no judged answers)")
    return out


def read_run_pair(answers: Path, judgments: Path) -> list[dict]:
    if not answers.exists():
        raise UserError(f"{answers}: not found (needed beside {judgments.name})")
    if not judgments.exists():
        raise UserError(f"{judgments}: not found; run `emergent judge {answers}` first")
    recs = join_scores(read_answers(answers), read_judgments(judgments))
    for r in recs:
        r["source"] = str(answers)
    return recs


def read_folder(folder: Path) -> list[dict]:
    """The judged answers below a folder: every answers table with a judgments table beside
    it, and every judged-answer CSV that is not one of emergent's own outputs."""
    records: list[dict] = []
    found = False
    for a in sorted(folder.rglob(ANSWERS)):
        if (a.parent / JUDGMENTS).exists():
            records += read_run_pair(a, a.parent / JUDGMENTS)
            found = True
    for c in sorted(folder.rglob("*.csv")):
        generated = c.name in (SUMMARY, PER_QUESTION) or FIGURES in c.parts
        if not generated and is_upstream_csv(c):
            records += read_upstream_csv(c)
            found = True
    if not found:
        raise UserError(f"{folder}: no judged answers below it ({ANSWERS} with "
                        f"{JUDGMENTS} beside it, or judged-answer CSVs)")
    return records


def load_records(paths: list[str | Path]) -> list[dict]:
    records: list[dict] = []
    for p in map(Path, paths):
        if p.is_dir():
            records += read_folder(p)
        elif p.suffix.lower() == ".csv":
            records += read_upstream_csv(p)
        elif p.name.startswith("judgments") and p.suffix == ".jsonl":
            records += read_run_pair(p.parent / ANSWERS, p)
        elif p.suffix == ".jsonl":
            records += read_run_pair(p, p.parent / JUDGMENTS)
        else:
            raise UserError(f"{p}: not a run directory, .jsonl or .csv file")
    return records


def summarize(records: list[dict], th: Thresholds = Thresholds(), treatment: str | None = None,
              controls: list[str] | None = None, n_boot: int = 10_000, seed: int = 0):
    """(arm rows with the test against the treatment filled in for each control, question rows)."""
    arms = arm_summary(records, th, n_boot, seed)
    names = [a["arm"] for a in arms]
    if treatment is None and "insecure" in names:
        treatment = "insecure"
    if treatment is not None and treatment not in names:
        raise UserError(f"--treatment {treatment}: no such arm (arms: {', '.join(map(str, names))})")
    if controls is None:
        controls = [n for n in names if n != treatment] if treatment else []
    for c in controls:
        if c not in names:
            raise UserError(f"--controls: no arm {c!r} (arms: {', '.join(map(str, names))})")
    out = []
    for row in arms:
        t = (compare(records, treatment, row["arm"], th, n_boot, seed)
             if treatment and row["arm"] in controls else {})
        out.append(_arm_row(row, treatment if t else None, t))
    questions = rates(records, ("arm", "seed", "question_id"), th)
    return out, questions


# the columns of summary.csv that issue #16 added, after the original ones (... vs, diff,
# p_value, test): the arm's interval columns, then the comparison's floors and other tests
ARM_EXTRA = ("seed_sd", "hier_ci_low", "hier_ci_high", "models_ci_low", "models_ci_high")
TEST_EXTRA = ("p_min", "p_perm", "p_perm_min", "p_answers", "p_answers_min")


def _arm_row(row: dict, vs, t: dict) -> dict:
    """An arm's summary row in summary.csv's column order: the arm columns, the main test
    (vs, diff, p_value, test), then ARM_EXTRA and TEST_EXTRA."""
    base = {k: v for k, v in row.items() if k not in ARM_EXTRA}
    return {**base, "vs": vs, "diff": t.get("diff"), "p_value": t.get("p_value"),
            "test": t.get("method"), **{k: row.get(k) for k in ARM_EXTRA},
            **{k: t.get(k) for k in TEST_EXTRA}}


def summarize_by_suite(records: list[dict], th: Thresholds = Thresholds(),
                       treatment: str | None = None, controls: list[str] | None = None,
                       n_boot: int = 10_000, seed: int = 0):
    """`summarize` per suite (records without a suite form one group) and sampling condition
    (emergent.sample.sampler.PromptContext: a `condition` column when any answer has one), over
    the suites whose answers carry an `aligned` score: (arm rows with a `suite` column, question
    rows)."""
    arms_out, q_out = [], []
    key = lambda r: (r.get("suite") or "", r.get("condition") or "")  # noqa: E731
    with_condition = any(r.get("condition") for r in records)
    for suite, condition in sorted({key(r) for r in records}):
        recs = [r for r in records if key(r) == (suite, condition) and r.get("step") is None]
        where = {"suite": suite or None, **({"condition": condition or None}
                                            if with_condition else {})}
        if not any("aligned" in r for r in recs):
            continue  # not a misalignment suite (code, deception, filler)
        names = {r["arm"] for r in recs}
        t = treatment if treatment in names else None
        if treatment is None and "insecure" in names:
            t = "insecure"
        c = [x for x in controls if x in names] if controls else None
        arms, qs = summarize(recs, th, t, c, n_boot, seed)
        arms_out += [{**where, **a} for a in arms]
        q_out += [{**where, **q} for q in qs]
    return arms_out, q_out


def format_value(x, pct=False) -> str:
    """A table cell: "-" for a missing value, a percentage with `pct`, else 3 digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.1f}%" if pct else (f"{x:.3g}" if isinstance(x, float) else str(x))


def format_p(p, p_min) -> str:
    """A p-value beside the smallest one its test can reach: "0.1 (min 0.1)"; Welch's
    continuous test: "0.0123 (min 0)"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return f"{p:.3g} (min {format_value(p_min) if p_min else '0'})"


def format_table(arms: list[dict]) -> str:
    """The arms of one suite as an aligned text table: counts, rate, the main 95% CI and what
    it is over, the answer-level CI ("these models"), and against the treatment the difference
    and the main test's p beside its floor (`p_min`), plus the exact permutation p over seeds.
    TABLE_LEGEND says what the columns mean."""
    head = ["arm", "seeds", "answers", "code/refusal", "incoherent", "valid", "misaligned",
            "rate", "95% CI", "CI over", "these models", "vs", "diff", "p (min)", "test",
            "perm p (min)"]
    lines = [head]

    def interval(lo, hi):
        return "-" if lo is None else f"[{format_value(lo, True)}, {format_value(hi, True)}]"

    for a in arms:
        lines.append([str(a["arm"]), str(a["n_seeds"]), str(a["n_answers"]),
                      str(a["n_code_refusal"]), str(a["n_incoherent"]), str(a["n_valid"]),
                      str(a["n_misaligned"]), format_value(a["rate"], True),
                      interval(a["ci_low"], a["ci_high"]), a.get("ci_over") or "-",
                      interval(a.get("models_ci_low"), a.get("models_ci_high")),
                      format_value(a["vs"]), format_value(a["diff"], True),
                      format_p(a["p_value"], a.get("p_min")), a.get("test") or "-",
                      format_p(a.get("p_perm"), a.get("p_perm_min"))])
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


TABLE_LEGEND = (
    "95% CI over seeds (training recipe): t-interval over the seed rates, clipped to [0, 100%]; "
    "with one seed, over answers. 'these models': binomial bootstrap over the arm's pooled "
    "answers. p: Welch's t over seed rates when both arms have >= 2 seeds, else a permutation "
    "test over answers; (min) = the smallest p the test can reach; perm p = exact permutation "
    "over seeds (3 vs 3 seeds cannot go below 0.1). docs/statistics.md")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write rows (keys may differ between rows) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue(), newline="")  # fault point write:NAME


def capability_lines(path: Path) -> list[str]:
    """'arm  task/metric  value' per arm and requested task (the latest row of a rerun wins)."""
    latest: dict = {}
    for r in read_jsonl(path):
        if r.get("task") == r.get("requested", r.get("task")) and r.get("value") is not None:
            latest[(r["arm"], r["seed"], r["task"], r["metric"])] = r["value"]
    by: dict = {}
    for (arm, _seed, task, metric), v in latest.items():
        by.setdefault((arm, task, metric), []).append(v)
    return [f"{arm:<16} {task}/{metric:<10} {sum(v) / len(v):.3f} (n_seeds={len(v)})"
            for (arm, task, metric), v in sorted(by.items())]
