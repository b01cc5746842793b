"""Judging a table of answers with any `Judge` (emergent.judge.base): one judgments.jsonl row per
(answer, metric).

* `build_tasks(rows, prompts)`: the judge tasks of a table, one per (answer, metric);
* `judge_answers(rows, prompts, judge, out_path)`: appends the rows missing from `out_path`, so
  a rerun resumes;
* `dry_run(rows, prompts, judge, out_path)`: what that would cost (judgments, calls, tokens);
* `suite_prompt_rule(suites)`: row -> its question's judge prompts, by the row's suite.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from emergent.core.errors import UserError
from emergent.core.io import read_jsonl, repair_torn_tail
from emergent.judge.base import Judge
from emergent.judge.prompts import MetricPrompt, PromptsArg, prompt_hash, suite_prompts
from emergent.judge.scoring import JudgeTask, Score


def read_judgments(path: str | Path) -> list[dict]:
    """The judgments table; a torn last line (a kill mid-write) is ignored and redone."""
    return read_jsonl(path)


def build_tasks(rows: list[dict], prompts: PromptsArg, done: set | frozenset = frozenset()):
    """[(row, MetricPrompt, JudgeTask)] for every (answer, metric) not in `done`."""
    pick = prompts if callable(prompts) else (lambda row: prompts)
    out = []
    for row in rows:
        for mp in pick(row):
            if (row["answer_id"], mp.metric) in done:
                continue
            question, answer = str(row["question"]), str(row["answer"])
            out.append((row, mp, JudgeTask(mp.fill(question, answer), mp.kind, tuple(mp.labels),
                                           mp.metric, question, answer)))
    return out


def judgment_row(row: dict, mp: MetricPrompt, task: JudgeTask, s: Score, judge_id: str) -> dict:
    """The judgments.jsonl row of one (answer, metric)."""
    return {"answer_id": row["answer_id"], "metric": mp.metric, "kind": mp.kind,
            "score": s.score, "numeric_mass": s.numeric_mass, "probs": s.probs,
            "top_tokens": s.top_tokens, "judge": judge_id, "prompt_hash": prompt_hash(task.prompt)}


def judge_answers(answers_rows: list[dict], prompts: PromptsArg, judge: Judge,
                  out_path: str | Path, *, progress: bool = True, chunk_size: int = 256) -> dict:
    """Judge every (answer, metric) missing from `out_path` (judgments.jsonl) and append the
    rows, flushed and fsynced per chunk. Returns counts."""
    out_path = Path(out_path)
    existing = read_judgments(out_path)
    others = {r.get("judge") for r in existing} - {judge.judge_id}
    if others:
        raise UserError(f"{out_path}: holds judgments by {sorted(others)[0]}, not "
                        f"{judge.judge_id}; write this judge's rows to another file (--out)")
    done = {(r["answer_id"], r["metric"]) for r in existing}
    todo = build_tasks(answers_rows, prompts, done)
    per_row = (lambda r: len(prompts(r))) if callable(prompts) else (lambda r: len(prompts))
    skipped = sum(per_row(r) for r in answers_rows) - len(todo)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="judging", unit="judgment", disable=not progress)
    repair_torn_tail(out_path)
    with open(out_path, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            scores = judge.evaluate([t for _, _, t in chunk], progress=False)
            for (row, mp, task), s in zip(chunk, scores):
                f.write(json.dumps(judgment_row(row, mp, task, s, judge.judge_id),
                                   ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(chunk))
    bar.close()
    return {"judged": len(todo), "skipped": skipped}


def dry_run(answers_rows: list[dict], prompts: PromptsArg, judge: Judge, out_path) -> dict:
    """What a run would do: judgments missing, calls still to make (distinct prompts not in the
    cache), and their prompt tokens, approximated as characters / 4."""
    done = {(r["answer_id"], r["metric"]) for r in read_judgments(out_path)}
    tasks = [t for _, _, t in build_tasks(answers_rows, prompts, done)]
    pending = judge.pending(tasks)
    return {"judgments": len(tasks), "calls": len(pending),
            "prompt_tokens": sum((len(t.prompt) + 3) // 4 for t in pending)}


def suite_prompt_rule(suites: dict) -> Callable[[dict], list[MetricPrompt]]:
    """row -> the judge prompts of its question. `suites` maps a row's `suite` to a suite name
    or file (its prompts read by `suite_prompts` when a row first needs them) or to its prompts
    by question id."""
    loaded: dict = {}

    def rule(row: dict) -> list[MetricPrompt]:
        suite = row["suite"]
        if suite not in loaded:
            given = suites[suite]
            loaded[suite] = suite_prompts(given) if isinstance(given, (str, Path)) else given
        return loaded[suite][row["question_id"]]
    return rule
