"""Judging a table of answers with any `Judge` (emergent.judge.base): one judgments.jsonl row per
(answer, metric).

* `build_tasks(rows, prompts)`: the judge tasks of a table, one per (answer, metric);
* `judge_answers(rows, prompts, judge, out_path)`: appends the rows missing from `out_path`, so
  a rerun resumes; each row has a `status` (`ok`, `no_numeric_mass`: the reply held no number /
  label, redone by the next run and failing this one above `judge.max_no_score_fraction`;
  `empty_answer`: an empty or whitespace-only answer, never sent to a judge that sends prompts);
* `dry_run(rows, prompts, judge, out_path)`: what that would cost (judgments, calls, tokens);
* `suite_prompt_rule(suites)`: row -> its question's judge prompts, by the row's suite.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional

from tqdm.auto import tqdm

from emergent.core.errors import UserError
from emergent.core.faults import fault_point
from emergent.core.io import read_jsonl, repair_torn_tail, write_jsonl_atomic
from emergent.core.redact import redact_text
from emergent.core.rundir import judgment_fingerprint
from emergent.judge.base import Judge
from emergent.judge.prompts import MetricPrompt, PromptsArg, prompt_hash, suite_prompts
from emergent.judge.scoring import EMPTY_ANSWER, NO_NUMERIC_MASS, JudgeTask, Score

log = logging.getLogger(__name__)


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
            "top_tokens": s.top_tokens, "judge": judge_id, "prompt_hash": prompt_hash(task.prompt),
            "status": s.status}


def is_empty_answer(row: dict) -> bool:
    """An answer that is missing, or empty or whitespace only: nothing for a judge to read."""
    answer = row.get("answer")
    return answer is None or not str(answer).strip()


def _unsent(judge: Judge, row: dict) -> bool:
    """Rows a judge that sends prompts never gets: empty answers (a rule judge reads them)."""
    return judge.sends_prompts and is_empty_answer(row)


def judge_answers(answers_rows: list[dict], prompts: PromptsArg, judge: Judge,
                  out_path: str | Path, *, progress: bool = True, chunk_size: int = 256,
                  fingerprint: Optional[str] = None) -> dict:
    """Judge every (answer, metric) missing from `out_path` (judgments.jsonl) and append the
    rows, flushed and fsynced per chunk (the judge caches each call as it completes). Rows of
    status no_numeric_mass from an earlier run are removed and judged again. Empty answers are
    not sent (status empty_answer, score null). At the end: one warning line when some
    replies had no numeric mass, a UserError (rows kept) when they are more than
    `judge.max_no_score_fraction` of the file's judged rows. Returns counts. `fingerprint`:
    the judge unit's (a run's judge step): each row then carries `fingerprint` (the answer's
    and the judge's, emergent.core.rundir.judgment_fingerprint), and a row made under another
    is judged again."""
    out_path = Path(out_path)
    existing = read_judgments(out_path)
    judge_id = redact_text(judge.judge_id)  # written to every row: never a credential
    others = {r.get("judge") for r in existing} - {judge_id}
    if others:
        raise UserError(f"{out_path}: holds judgments by {redact_text(str(sorted(others)[0]))}, "
                        f"not {judge_id}; write this judge's rows to another file (--out)")
    if any(r.get("status") == NO_NUMERIC_MASS for r in existing):  # no final answer: ask again
        existing = [r for r in existing if r.get("status") != NO_NUMERIC_MASS]
        write_jsonl_atomic(out_path, existing)
    if fingerprint is None:
        done = {(r["answer_id"], r["metric"]) for r in existing}
    else:  # done only when made under the current answer's and judge's fingerprints
        want = {a["answer_id"]: judgment_fingerprint(a.get("fingerprint"), fingerprint)
                for a in answers_rows}
        done = {(r["answer_id"], r["metric"]) for r in existing
                if r.get("fingerprint") is not None
                and r.get("fingerprint") == want.get(r["answer_id"])}
    todo = build_tasks(answers_rows, prompts, done)
    per_row = (lambda r: len(prompts(r))) if callable(prompts) else (lambda r: len(prompts))
    skipped = sum(per_row(r) for r in answers_rows) - len(todo)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="judging", unit="judgment", disable=not progress)
    repair_torn_tail(out_path)
    n_none = n_empty = 0
    with open(out_path, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            sent = [t for row, _, t in chunk if not _unsent(judge, row)]
            scores = iter(judge.evaluate(sent, progress=False) if sent else [])
            for row, mp, task in chunk:
                s = (Score(None, 0.0, None, {}, EMPTY_ANSWER) if _unsent(judge, row)
                     else next(scores))
                n_none += s.status == NO_NUMERIC_MASS
                n_empty += s.status == EMPTY_ANSWER
                jrow = judgment_row(row, mp, task, s, judge_id)
                if fingerprint is not None:
                    jrow["fingerprint"] = judgment_fingerprint(row.get("fingerprint"), fingerprint)
                f.write(json.dumps(jrow,
                                   ensure_ascii=False) + "\n")
            fault_point("append:judgments.jsonl", flush=f)  # a chunk written, not fsynced
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(chunk))
    bar.close()
    if n_empty:
        log.info("judge %s: %d empty answers not sent (status %s, score null)", judge_id,
                 n_empty, EMPTY_ANSWER)
    if n_none:  # out of the file's distinct judged (answer, metric) pairs, this run's included
        redone = {(row["answer_id"], mp.metric) for row, mp, _ in todo}
        kept = {(r["answer_id"], r["metric"]) for r in existing
                if r.get("status") != EMPTY_ANSWER} - redone
        _check_no_mass(judge, judge_id, out_path, n_none, len(kept) + len(todo) - n_empty)
    return {"judged": len(todo), "skipped": skipped, NO_NUMERIC_MASS: n_none,
            EMPTY_ANSWER: n_empty}


def _check_no_mass(judge: Judge, judge_id: str, out_path: Path, n: int, total: int) -> None:
    """One warning line for `n` replies without numeric mass among `total` judged rows of the
    file, or one UserError line above the judge's `max_no_score_fraction`."""
    limit = getattr(judge, "max_no_score_fraction", 0.05)
    what = (f"judge {judge_id}: {n} of {total} judgments ({100 * n / total:.1f}%) got a reply "
            f"with no numeric mass (no number or label among its tokens; status "
            f"{NO_NUMERIC_MASS}, score null, not cached)")
    if n > limit * total:
        raise UserError(f"{what}, more than judge.max_no_score_fraction={limit:g}: check the "
                        f"judge server, model and prompts; rows kept in {out_path}, a rerun "
                        "asks again for these only")
    log.warning("%s; a rerun asks again for these", what)


def dry_run(answers_rows: list[dict], prompts: PromptsArg, judge: Judge, out_path) -> dict:
    """What a run would do: judgments missing, calls still to make (distinct prompts not in the
    cache), and their prompt tokens, approximated as characters / 4."""
    done = {(r["answer_id"], r["metric"]) for r in read_judgments(out_path)
            if r.get("status") != NO_NUMERIC_MASS}
    todo = build_tasks(answers_rows, prompts, done)
    tasks = [t for row, _, t in todo if not _unsent(judge, row)]
    pending = judge.pending(tasks)
    return {"judgments": len(todo), "calls": len(pending),
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
