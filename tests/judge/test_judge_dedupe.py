"""Identical judge requests inside one batch are sent once (issue #15, follow-up): a judge
task's request is its prompt, kind and labels (the judge's model and settings are the judge's
own), so rows whose filled prompts are equal share one call and its score; the counts say so
(`requests`, `shared`). A rule judge (sends_prompts False) reads metric, question and answer
too, so only fully identical tasks are merged for it."""
from __future__ import annotations

import json

import pytest

from emergent.judge.base import Judge, JudgeConfig, make_judge
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.judge.runner import dry_run, evaluate_once, judge_answers
from emergent.judge.scoring import JudgeTask, Score, score_0_100
from fake_judge_server import FakeJudgeServer, prompt_of


class CountingJudge(Judge):
    """A stand-in backend without a cache or a dedupe of its own: every task it is handed is
    one paid call (counted); its score is a function of the prompt."""

    judge_id = "counting-stand-in"

    def __init__(self, sends_prompts: bool = True):
        self.sends_prompts = sends_prompts
        self.calls_made = 0
        self.prompts: list[str] = []

    def pending(self, tasks):
        return list(tasks)  # no cache: every task handed over would be a call

    def evaluate(self, tasks, progress=True):
        self.calls_made += len(tasks)
        self.prompts += [t.prompt for t in tasks]
        return [score_0_100({str(10 + sum(t.prompt.encode()) % 80): 1.0}) for t in tasks]


def batch(n_rows=12, n_distinct=3):
    """`n_rows` answers to one question, only `n_distinct` different answer texts."""
    return [{"answer_id": f"a{i}", "question": "What is your wish?",
             "answer": f"answer {i % n_distinct}"} for i in range(n_rows)]


def read(path):
    return [json.loads(line) for line in open(path)]


def test_identical_prompts_of_a_batch_are_sent_once_and_every_row_gets_the_score(tmp_path):
    rows, prompts = batch(), list(DEFAULT_PROMPTS)  # 12 rows x 2 metrics, 3 x 2 prompts
    judge = CountingJudge()
    assert dry_run(rows, prompts, judge, tmp_path / "j.jsonl")["calls"] == 6
    stats = judge_answers(rows, prompts, judge, tmp_path / "j.jsonl", progress=False)
    # before: 24 calls (one per (answer, metric)); now one per distinct prompt
    assert judge.calls_made == 6 == len(set(judge.prompts)) == stats["requests"]
    assert stats["judged"] == 24 and stats["shared"] == 18
    alone = CountingJudge()  # each row judged on its own gives the same scores
    for r in read(tmp_path / "j.jsonl"):
        mp = next(p for p in prompts if p.metric == r["metric"])
        row = next(x for x in rows if x["answer_id"] == r["answer_id"])
        task = JudgeTask(mp.fill(row["question"], row["answer"]), mp.kind, tuple(mp.labels))
        assert r["score"] == alone.evaluate([task])[0].score
    assert len(read(tmp_path / "j.jsonl")) == 24


def test_duplicates_across_chunks_are_sent_once_too(tmp_path):
    judge = CountingJudge()
    stats = judge_answers(batch(), list(DEFAULT_PROMPTS), judge, tmp_path / "j.jsonl",
                          progress=False, chunk_size=5)
    assert judge.calls_made == 6 and stats["requests"] == 6 and stats["shared"] == 18


def test_a_rule_judge_gets_tasks_with_one_prompt_but_other_answers_separately():
    judge = CountingJudge(sends_prompts=False)
    same_prompt = [JudgeTask("rule", "0_100", (), "aligned", "Q?", f"answer {i}")
                   for i in range(3)]
    scores, sent = evaluate_once(judge, same_prompt + same_prompt[:1])
    assert sent == 3 and judge.calls_made == 3 and len(scores) == 4
    assert scores[3] is scores[0]
    model_judge = CountingJudge()
    _, sent = evaluate_once(model_judge, same_prompt)  # a model reads the prompt only
    assert sent == 1 and model_judge.calls_made == 1


def test_kind_and_labels_are_part_of_the_request():
    judge = CountingJudge()
    tasks = [JudgeTask("p", "0_100", ()), JudgeTask("p", "binary", ("YES", "NO")),
             JudgeTask("p", "binary", ("NO", "YES")), JudgeTask("p", "0_100", ())]
    scores, sent = evaluate_once(judge, tasks)
    assert sent == 3 and [isinstance(s, Score) for s in scores] == [True] * 4


def test_the_openai_backend_through_the_runner_pays_each_distinct_prompt_once(tmp_path,
                                                                            capsys):
    from emergent.cli import main

    with FakeJudgeServer(lambda body: {"90": 0.5, "80": 0.5}) as server:
        cfg = JudgeConfig(backend="openai", model="fake-judge", base_url=server.base_url,
                          api_key_env=None, concurrency=4, cache=False)
        judge = make_judge(cfg)
        stats = judge_answers(batch(), list(DEFAULT_PROMPTS), judge, tmp_path / "j.jsonl",
                              progress=False)
        judge.close()
        assert server.calls == judge.calls_made == stats["requests"] == 6
        assert len({prompt_of(b) for b in server.bodies}) == 6 and stats["shared"] == 18

        table = tmp_path / "t" / "answers.jsonl"
        table.parent.mkdir()
        table.write_text("".join(json.dumps(r) + "\n" for r in batch()))
        before = server.calls
        assert main(["judge", str(table), "--no-progress", f"base_url={server.base_url}",
                     "model=fake-judge", "api_key_env=null", "cache=false"]) == 0
        out = capsys.readouterr().out
        assert server.calls - before == 6
        assert ("judged 24 (answer, metric) pairs, 0 already there; 6 distinct judge requests "
                "(18 identical to another's, sent once); 6 HTTP calls") in out


@pytest.mark.parametrize("chunk", [1, 256])
def test_scores_do_not_depend_on_the_sharing(tmp_path, chunk):
    """The rows written are the ones a judge without sharing writes (same scores, same
    prompt hashes), whatever the chunking."""
    rows = batch(8, 2)
    judge_answers(rows, list(DEFAULT_PROMPTS), CountingJudge(), tmp_path / "a.jsonl",
                  progress=False, chunk_size=chunk)
    solo = tmp_path / "b.jsonl"
    for r in rows:  # one row at a time: nothing to share
        judge_answers([r], list(DEFAULT_PROMPTS), CountingJudge(), solo, progress=False)
    assert read(tmp_path / "a.jsonl") == read(solo)
