"""`emergent judge ANSWERS`: judge an answers table (the sampler's answers.jsonl, or any
CSV/JSONL with question and answer columns) with the configured judge role; rows with a suite
use that suite's judge prompts, others the package's own aligned/coherent prompts."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from emergent.core.config import to_dict
from emergent.core.errors import UserError
from emergent.core.io import write_jsonl_atomic
from emergent.core.redact import redact
from emergent.core.rundir import ANSWERS, JUDGMENTS
from emergent.judge.base import JudgeConfig, load_judge_config, make_judge
from emergent.judge.prompts import DEFAULT_PROMPTS, prompts_from_file, suite_prompts
from emergent.judge.runner import dry_run, judge_answers, read_judgments


def answer_id_for(*parts) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]


def read_answer_table(path: str | Path) -> list[dict]:
    """Rows of an answers table: the sampler's answers.jsonl, or any JSONL/CSV with `question`
    and `answer` (or `response`) columns. Rows without answer_id get a stable one (sha1 of
    question id, question, answer and the pair's occurrence number); arm defaults to the
    `group` or `model` column, else the file name; seed to 0 (or the model, when a group is
    given: the upstream layout has one fine-tuned model per seed)."""
    import csv

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: answers table not found")
    raw: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                raw.append((reader.line_num, dict(row)))
    else:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    raise UserError(f"{path}:{i}: not valid JSON") from None
                if not isinstance(obj, dict):
                    raise UserError(f"{path}:{i}: each line must be a JSON object")
                raw.append((i, obj))
    rows, seen = [], {}
    for line, r in raw:
        if r.get("answer") is None and r.get("response") is not None:
            r["answer"] = r["response"]
        for col in ("question", "answer"):
            if r.get(col) is None:
                raise UserError(f"{path}:{line}: missing column '{col}'"
                                + (" (or 'response')" if col == "answer" else ""))
        r.setdefault("question_id", None)
        if not r["question_id"]:
            r["question_id"] = "q" + hashlib.sha1(str(r["question"]).encode()).hexdigest()[:8]
        if not r.get("answer_id"):
            pair = (r["question_id"], r["question"], r["answer"])
            seen[pair] = seen.get(pair, -1) + 1
            r["answer_id"] = answer_id_for("table", *pair, seen[pair])
        if r.get("arm") in (None, ""):
            r["arm"] = r.get("group") or r.get("model") or path.stem
        if r.get("seed") in (None, ""):
            r["seed"] = r.get("model") if r.get("group") and r.get("model") else 0
        r.setdefault("suite", None)
        rows.append(r)
    return rows


def _load_suite_prompts(name: str, answers_path: Path, given: list[Path], labels: dict):
    """(where, prompts) for a row's suite: a --suite file of that name, a suite name or path
    (`emergent.evals.suites.resolve_suite`), or a file of that name beside the answers table."""
    for g in given:
        if name in (str(g), g.stem, g.name):
            return g, suite_prompts(g, labels)
    try:
        return name, suite_prompts(name, labels)
    except UserError as first:
        for cand in (answers_path.parent / name, answers_path.parent / f"{name}.yaml"):
            if cand.is_file():
                return cand, suite_prompts(cand, labels)
        raise UserError(f"{answers_path}: question suite '{name}' of its rows cannot be read "
                        f"({first}); pass --suite FILE, or --default-prompts") from None


def prompts_for_rows(rows: list[dict], answers_path: Path, cfg: JudgeConfig,
                     suites: list[str] = (), default_prompts: bool = False):
    """The row -> [MetricPrompt] rule for a table: a row's suite's judge prompts when it has a
    suite (or one --suite was given), else the package's default aligned/coherent prompts
    (or `cfg.prompts_file`). `cfg.metrics` keeps only the named metrics."""
    given = [Path(s) for s in suites]
    base = (prompts_from_file(cfg.prompts_file, cfg.labels) if cfg.prompts_file
            else list(DEFAULT_PROMPTS))
    loaded: dict[str, dict] = {}
    seen: set[str] = set()

    def keep(ps):
        seen.update(p.metric for p in ps)
        return [p for p in ps if cfg.metrics is None or p.metric in cfg.metrics]

    def rule(row):
        if default_prompts:
            return keep(base)
        name = row.get("suite") or (str(given[0]) if len(given) == 1 else None)
        if not name:
            return keep(base)
        if name not in loaded:
            where, by_id = _load_suite_prompts(str(name), answers_path, given, cfg.labels)
            loaded[name] = {"path": where, "prompts": by_id}
        by_id = loaded[name]["prompts"]
        if row["question_id"] not in by_id:
            raise UserError(f"{loaded[name]['path']}: no question with id "
                            f"'{row['question_id']}' (answer {row['answer_id']})")
        return keep(by_id[row["question_id"]])

    for r in rows:  # resolve everything up front: errors before any paid call
        rule(r)
    unknown = sorted(set(cfg.metrics or ()) - seen)
    if unknown and rows:
        raise UserError(f"{answers_path}: judge.metrics names {', '.join(unknown)}, which no "
                        f"prompt of this table has (it has {', '.join(sorted(seen))})")
    return rule


def default_out(answers_path: Path) -> tuple[Path, bool]:
    """(judgments path, whether to write a normalised answers.jsonl beside it)."""
    if answers_path.name == ANSWERS:
        return answers_path.parent / JUDGMENTS, False
    return answers_path.parent / f"{answers_path.stem}_judged" / JUDGMENTS, True


def run_judge_cli(args) -> int:
    answers_path = Path(args.answers)
    cfg = load_judge_config(args.judge, args.overrides)
    rows = read_answer_table(answers_path)
    out, copy_answers = default_out(answers_path)
    if args.out:
        out, copy_answers = Path(args.out), answers_path.name != ANSWERS
    prompts = prompts_for_rows(rows, answers_path, cfg, args.suite or [], args.default_prompts)
    judge = make_judge(cfg)
    prompts = judge.metric_prompts(prompts)
    try:
        if args.dry_run:
            d = dry_run(rows, prompts, judge, out)
            print(f"{len(rows)} answers; {d['judgments']} judgments to make; {d['calls']} judge "
                  f"calls not cached; ~{d['prompt_tokens']} prompt tokens (chars/4) "
                  f"[{judge.judge_id}]")
            return 0
        if copy_answers:
            target = out.parent / ANSWERS
            if target.exists() and {r.get("answer_id") for r in read_judgments(target)} != {
                    r["answer_id"] for r in rows}:
                raise UserError(f"{target}: exists and holds other answers; choose another "
                                "--out folder")
            write_jsonl_atomic(target, rows)
        stats = judge_answers(rows, prompts, judge, out, progress=not args.no_progress)
        (out.parent / f"{out.stem}.judge.yaml").write_text(yaml.safe_dump(
            redact({"judge_id": judge.judge_id, "config": to_dict(cfg)}), sort_keys=False))
    finally:
        judge.close()
    calls = judge.calls_made
    print(f"judged {stats['judged']} (answer, metric) pairs, {stats['skipped']} already there"
          + (f"; {calls} HTTP calls, {judge.retries_made} retries" if calls is not None else "")
          + f"; wrote {out}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("judge", help="score an answers table with a judge (aligned, coherent, "
                       "or a suite's own judge prompts)")
    p.add_argument("answers", metavar="ANSWERS",
                   help="answers.jsonl from `emergent sample`, or a CSV/JSONL with question and "
                   "answer (or response) columns")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="judge config overrides, e.g. model=gpt-4o-mini concurrency=4")
    p.add_argument("--judge", metavar="CONFIG", help="judge YAML (JudgeConfig keys, at the top "
                   "or under `judge:`)")
    p.add_argument("--out", help="judgments file (default: judgments.jsonl beside answers.jsonl,"
                   " or STEM_judged/judgments.jsonl for other tables)")
    p.add_argument("--suite", action="append", metavar="FILE",
                   help="question suite YAML whose judge prompts to use (repeatable)")
    p.add_argument("--default-prompts", action="store_true",
                   help="use the package's aligned/coherent prompts even for suite answers")
    p.add_argument("--dry-run", action="store_true",
                   help="print the number of judge calls and prompt tokens, call nothing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_judge_cli)
