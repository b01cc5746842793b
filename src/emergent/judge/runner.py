"""Judging a table of answers with any `Judge` (emergent.judge.base): one judgments.jsonl row per
(answer, metric).

* `build_tasks(rows, prompts)`: the judge tasks of a table, one per (answer, metric);
* `judge_answers(rows, prompts, judge, out_path)`: appends the rows missing from `out_path`, so
  a rerun resumes; each row has a `status` (`ok`, `no_numeric_mass`: the reply held no number /
  label, redone by the next run and failing this one above `judge.max_no_score_fraction`;
  `empty_answer`: an empty or whitespace-only answer, never sent to a judge that sends prompts);
  identical tasks of a batch (same prompt, kind and labels: the same request to the same
  judge) are sent once and their score given to every row that needs it;
* `dry_run(rows, prompts, judge, out_path)`: what that would cost (judgments, calls, tokens);
* `read_answer_table(path)`: the rows of an answers table (answers.jsonl, or any JSONL/CSV with
  question and answer columns);
* `prompts_for_rows(rows, answers_path, cfg, ...)`: the one rule row -> its judge prompts
  (a row's suite's, else the package's aligned/coherent prompts) of `emergent judge` and
  `emergent.judge_answers`;
* `suite_prompt_rule(suites)`: row -> its question's judge prompts, by the row's suite.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from tqdm.auto import tqdm

from emergent.core.errors import UserError
from emergent.core.faults import fault_point
from emergent.core.io import read_jsonl, repair_torn_tail, write_jsonl_atomic
from emergent.core.redact import redact_text
from emergent.core.rundir import judge_server_log_path, judgment_fingerprint
from emergent.judge.base import Judge, JudgeConfig
from emergent.judge.prompts import (DEFAULT_PROMPTS, MetricPrompt, PromptsArg, prompt_hash,
                                    prompts_from_file, suite_prompts)
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


def request_key(judge: Judge, task: JudgeTask) -> tuple:
    """Tasks with equal keys are one request to `judge`: a judge that sends prompts reads the
    prompt, its kind and labels only (its model and settings are the judge's own); a rule judge
    reads the metric, question and answer too."""
    key = (task.prompt, task.kind, tuple(task.labels))
    return key if judge.sends_prompts else key + (task.metric, task.question, task.answer)


def distinct_requests(judge: Judge, tasks: list[JudgeTask]) -> list[JudgeTask]:
    """The first task of each distinct request, in order."""
    first: dict = {}
    for t in tasks:
        first.setdefault(request_key(judge, t), t)
    return list(first.values())


def evaluate_once(judge: Judge, tasks: list[JudgeTask], memo: Optional[dict] = None,
                  progress: bool = False) -> tuple[list[Score], int]:
    """(one Score per task, in order; the number of requests sent): each distinct request of
    the batch is sent to the judge once, and its score given to every task that asks it.
    `memo` (request key -> Score) carries the scores of earlier batches of the same call."""
    memo = {} if memo is None else memo
    new = [t for t in distinct_requests(judge, tasks) if request_key(judge, t) not in memo]
    if new:
        for t, s in zip(new, judge.evaluate(new, progress=progress)):
            memo[request_key(judge, t)] = s
    return [memo[request_key(judge, t)] for t in tasks], len(new)


def judge_answers(answers_rows: list[dict], prompts: PromptsArg, judge: Judge,
                  out_path: str | Path, *, progress: bool = True, chunk_size: int = 256,
                  fingerprint: Optional[str] = None) -> dict:
    """Judge every (answer, metric) missing from `out_path` (judgments.jsonl) and append the
    rows, flushed and fsynced per chunk (the judge caches each call as it completes). Rows of
    status no_numeric_mass from an earlier run are removed and judged again. Empty answers are
    not sent (status empty_answer, score null). At the end: one warning line when some
    replies had no numeric mass, a UserError (rows kept) when they are more than
    `judge.max_no_score_fraction` of the file's judged rows. Identical requests (the same
    prompt, kind and labels) are sent to the judge once (`evaluate_once`). Returns counts:
    `judged`, `skipped` (already there), `no_numeric_mass`, `empty_answer`, `requests` (sent
    to the judge, each distinct) and `shared` (judgments given another row's score).
    `fingerprint`: the judge unit's (a run's judge step): each row then carries `fingerprint`
    (the answer's and the judge's, emergent.core.rundir.judgment_fingerprint), and a row made
    under another is judged again."""
    out_path = Path(out_path)
    server = getattr(judge, "server", None)
    if server is not None and server.log_path is None:  # judge.server: RUN/logs/judge_server.log
        server.log_path = judge_server_log_path(out_path.parent)
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
    n_none = n_empty = n_requests = n_sent = 0
    memo: dict = {}  # request key -> Score: identical requests are sent once
    with open(out_path, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            sent = [t for row, _, t in chunk if not _unsent(judge, row)]
            got, n = evaluate_once(judge, sent, memo)
            n_requests, n_sent = n_requests + n, n_sent + len(sent)
            scores = iter(got)
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
            EMPTY_ANSWER: n_empty, "requests": n_requests, "shared": n_sent - n_requests}


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
    tasks = distinct_requests(judge, [t for row, _, t in todo if not _unsent(judge, row)])
    pending = judge.pending(tasks)
    return {"judgments": len(todo), "calls": len(pending),
            "prompt_tokens": sum((len(t.prompt) + 3) // 4 for t in pending)}


def answer_id_for(*parts) -> str:
    """A stable answer id: sha1 of the parts joined, 16 hex digits."""
    return hashlib.sha1("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]


def read_answer_table(path: str | Path) -> list[dict]:
    """Rows of an answers table: the sampler's answers.jsonl, or any JSONL/CSV with `question`
    and `answer` (or `response`) columns. Rows without answer_id get a stable one (sha1 of
    question id, question, answer and the pair's occurrence number); arm defaults to the
    `group` or `model` column, else the file name; seed to 0 (or the model, when a group is
    given: the upstream layout has one fine-tuned model per seed)."""
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


def _load_suite_prompts(name: str, answers_path: Path, given: list[Path], known: dict,
                        labels: dict):
    """(where, prompts by question id) for a row's suite: a --suite file of that name, a
    `known` source (a suite file or name, or prompts by question id), a suite name or path
    (`emergent.evals.suites.resolve_suite`), or a file of that name beside the answers table."""
    for g in given:
        if name in (str(g), g.stem, g.name):
            return g, suite_prompts(g, labels)
    if name in known:
        src = known[name]
        if isinstance(src, (str, Path)):
            return src, suite_prompts(src, labels)
        return f"suite {name}", src
    try:
        return name, suite_prompts(name, labels)
    except UserError as first:
        for cand in (answers_path.parent / name, answers_path.parent / f"{name}.yaml"):
            if cand.is_file():
                return cand, suite_prompts(cand, labels)
        raise UserError(f"{answers_path}: question suite '{name}' of its rows cannot be read "
                        f"({first}); pass --suite FILE, or --default-prompts") from None


def prompts_for_rows(rows: list[dict], answers_path: str | Path, cfg: JudgeConfig,
                     suites: Sequence[str] = (), default_prompts: bool = False,
                     known: Optional[dict] = None) -> Callable[[dict], list[MetricPrompt]]:
    """The row -> [MetricPrompt] rule of `emergent judge` and `emergent.judge_answers`: a row's
    suite's judge prompts when it has a suite (or one of `suites` was given: the --suite files),
    else the package's default aligned/coherent prompts (or `cfg.prompts_file`); with
    `default_prompts`, the defaults for every row. A suite is looked up in `suites`, then in
    `known` (suite name -> a suite file or name, or its prompts by question id: a run's own
    suite files, the vulnerable-code prompts), then as a suite name or path, then as a file
    beside the answers table. `cfg.metrics` keeps only the named metrics; `cfg.labels`
    overrides labels. Every row is resolved now: errors come before any paid call."""
    answers_path = Path(answers_path)
    given = [Path(s) for s in suites]
    known = dict(known or {})
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
            where, by_id = _load_suite_prompts(str(name), answers_path, given, known,
                                               cfg.labels)
            loaded[name] = {"path": where, "prompts": by_id}
        try:
            return keep(loaded[name]["prompts"][row["question_id"]])
        except KeyError:
            raise UserError(f"{loaded[name]['path']}: no question with id "
                            f"'{row['question_id']}' (answer {row['answer_id']})") from None

    for r in rows:  # resolve everything up front: errors before any paid call
        rule(r)
    unknown = sorted(set(cfg.metrics or ()) - seen)
    if unknown and rows:
        raise UserError(f"{answers_path}: judge.metrics names {', '.join(unknown)}, which no "
                        f"prompt of this table has (it has {', '.join(sorted(seen))})")
    return rule


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
