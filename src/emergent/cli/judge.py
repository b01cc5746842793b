"""`emergent judge ANSWERS`: judge an answers table (the sampler's answers.jsonl, or any
CSV/JSONL with question and answer columns) with the configured judge role; rows with a suite
use that suite's judge prompts, others the package's own aligned/coherent prompts."""
from __future__ import annotations

from pathlib import Path

import yaml

from emergent.core.config import to_dict
from emergent.core.errors import UserError
from emergent.core.io import write_jsonl_atomic, write_text_atomic
from emergent.core.redact import redact
from emergent.core.rundir import ANSWERS, JUDGMENTS, lock_if_run
from emergent.evals import code_eval
from emergent.judge.base import load_judge_config, make_judge
from emergent.judge.runner import (dry_run, judge_answers, prompts_for_rows, read_answer_table,
                                   read_judgments)


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
    # the one rule of `emergent judge` and emergent.judge_answers (a run's code answers get
    # the vulnerable-code prompts)
    prompts = prompts_for_rows(rows, answers_path, cfg, args.suite or [], args.default_prompts,
                               known={code_eval.SUITE: code_eval.judge_prompts()})
    judge = make_judge(cfg)
    prompts = judge.metric_prompts(prompts)
    try:
        if args.dry_run:
            d = dry_run(rows, prompts, judge, out)
            print(f"{len(rows)} answers; {d['judgments']} judgments to make; {d['calls']} judge "
                  f"calls not cached; ~{d['prompt_tokens']} prompt tokens (chars/4) "
                  f"[{judge.judge_id}]")
            return 0
        with lock_if_run(out.parent):  # never beside a live run's writer
            if copy_answers:
                target = out.parent / ANSWERS
                if target.exists() and {r.get("answer_id") for r in read_judgments(target)} != {
                        r["answer_id"] for r in rows}:
                    raise UserError(f"{target}: exists and holds other answers; choose another "
                                    "--out folder")
                write_jsonl_atomic(target, rows)
            stats = judge_answers(rows, prompts, judge, out, progress=not args.no_progress)
            write_text_atomic(out.parent / f"{out.stem}.judge.yaml", yaml.safe_dump(
                redact({"judge_id": judge.judge_id, "config": to_dict(cfg)}), sort_keys=False))
    finally:
        judge.close()
    calls = judge.calls_made
    shared = (f" ({stats['shared']} identical to another's, sent once)" if stats["shared"]
              else "")
    print(f"judged {stats['judged']} (answer, metric) pairs, {stats['skipped']} already there; "
          f"{stats['requests']} distinct judge requests{shared}"
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
