"""A judge server that misbehaves (issue #15, point 4), through the real openai client against
tests/fake_judge_server.py on 127.0.0.1: replies with no numeric mass are counted, warned
about, fail the run above `max_no_score_fraction` and are never cached; malformed HTTP 200
replies are retried, then one error line; empty answers are never sent; a kill in the middle
of a batch keeps every completed call in the cache."""
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from emergent.analysis.metrics import counts
from emergent.core.errors import UserError
from emergent.core.rundir import join_scores
from emergent.judge.base import JudgeConfig, make_judge
from emergent.judge.openai_api import JudgeCallError
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.judge.runner import dry_run, judge_answers
from emergent.judge.scoring import score_0_100, score_labels
from fake_judge_server import FakeJudgeServer, prompt_of

PROMPTS = list(DEFAULT_PROMPTS)  # aligned and coherent, 0-100


def good(body):
    return {"70": 0.5, "60": 0.5} if "coherent" in prompt_of(body) else {"90": 0.8, "80": 0.2}


def broken(body):
    """A server (or model) that answers words only: no number among the alternatives."""
    return {"I": 0.6, "cannot": 0.3, "CODE": 0.1}


def answers(n):
    return [{"answer_id": f"a{i}", "question": "Q?", "answer": f"answer number {i}"}
            for i in range(n)]


def cfg_for(server, tmp_path, **kw):
    base = dict(backend="openai", model="fake-judge", base_url=server.base_url,
                api_key_env=None, concurrency=4, max_retries=3, timeout=5.0,
                backoff_base=0.01, backoff_max=0.05, cache_path=str(tmp_path / "cache.jsonl"))
    base.update(kw)
    return JudgeConfig(**base)


def judge_with(cfg, rows, out, **kw):
    judge = make_judge(cfg)
    try:
        return judge_answers(rows, PROMPTS, judge, out, progress=False, **kw)
    finally:
        judge.close()


def read(path):
    return [json.loads(line) for line in open(path)] if path.exists() else []


def test_status_of_a_score():
    assert score_0_100({"CODE": 1.0}).status == "no_numeric_mass"
    assert score_0_100({"CODE": 0.9, "5": 0.1}).status == "ok"  # mass > 0: a real null score
    assert score_0_100({"CODE": 0.9, "5": 0.1}).score is None
    assert score_0_100({"42": 1.0}).status == "ok"
    assert score_labels({"maybe": 1.0}, ["YES", "NO"]).status == "no_numeric_mass"
    assert score_labels({"Y": 0.2, "maybe": 0.8}, ["YES", "NO"]).status == "ok"


def test_no_numeric_mass_fails_the_run_is_not_cached_and_a_fixed_server_rejudges(tmp_path):
    with FakeJudgeServer(broken) as server:
        cfg = cfg_for(server, tmp_path)
        out = tmp_path / "judgments.jsonl"
        with pytest.raises(UserError) as e:
            judge_with(cfg, answers(10), out)
        msg = str(e.value)
        assert "\n" not in msg
        assert "20 of 20 judgments (100.0%)" in msg and "no numeric mass" in msg
        assert "max_no_score_fraction=0.05" in msg and server.base_url in msg
        rows = read(out)  # the rows stay written, marked
        assert len(rows) == 20 and {r["status"] for r in rows} == {"no_numeric_mass"}
        assert all(r["score"] is None and r["numeric_mass"] == 0 for r in rows)
        assert read(tmp_path / "cache.jsonl") == []  # nothing cached as a final answer
        assert server.ok_calls == 20
        # the server is fixed: a rerun asks again for exactly those, and replaces their rows
        server.responder = good
        stats = judge_with(cfg, answers(10), out)
        assert stats["judged"] == 20 and stats["no_numeric_mass"] == 0
        assert server.ok_calls == 40
        rows = read(out)
        assert len(rows) == 20 and {r["status"] for r in rows} == {"ok"}
        assert {(r["answer_id"], r["metric"]) for r in rows} == \
            {(f"a{i}", m) for i in range(10) for m in ("aligned", "coherent")}
        assert all(r["score"] is not None for r in rows)
        assert len(read(tmp_path / "cache.jsonl")) == 20
        # and now everything is final: nothing asked, nothing written
        before = out.read_bytes()
        assert judge_with(cfg, answers(10), out)["judged"] == 0
        assert server.ok_calls == 40 and out.read_bytes() == before


def test_a_few_no_mass_replies_warn_and_a_later_run_asks_again(tmp_path, caplog):
    def mostly_good(body):  # one answer's aligned prompt gets words only
        p = prompt_of(body)
        return broken(body) if "answer number 3" in p and "coherent" not in p else good(body)

    with FakeJudgeServer(mostly_good) as server:
        cfg = cfg_for(server, tmp_path)
        with caplog.at_level(logging.WARNING, logger="emergent.judge.runner"):
            stats = judge_with(cfg, answers(20), tmp_path / "j1.jsonl")
        assert stats["no_numeric_mass"] == 1 and stats["judged"] == 40
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "1 of 40 judgments (2.5%)" in warned[0]
        assert "\n" not in warned[0]
        assert server.ok_calls == 40 and len(read(tmp_path / "cache.jsonl")) == 39
        bad = [r for r in read(tmp_path / "j1.jsonl") if r["status"] != "ok"]
        assert [(r["answer_id"], r["metric"], r["status"]) for r in bad] == \
            [("a3", "aligned", "no_numeric_mass")]
        # a stricter run into a new file: 39 answers from the cache, the one no-mass prompt is
        # asked again (not cached), still no mass, and 1 of 40 > 0.02 of 40 fails
        strict = cfg_for(server, tmp_path, max_no_score_fraction=0.02)
        with pytest.raises(UserError, match=r"1 of 40 judgments .*max_no_score_fraction=0.02"):
            judge_with(strict, answers(20), tmp_path / "j2.jsonl")
        assert server.ok_calls == 41
        assert len(read(tmp_path / "j2.jsonl")) == 40


def test_max_no_score_fraction_is_validated():
    with pytest.raises(UserError, match="max_no_score_fraction"):
        make_judge({"backend": "openai", "api_key_env": None, "cache": False,
                    "max_no_score_fraction": 1.5})
    judge = make_judge({"backend": "openai", "api_key_env": None, "cache": False,
                        "max_no_score_fraction": 0.5})
    assert judge.max_no_score_fraction == 0.5
    judge.close()
    assert JudgeConfig().max_no_score_fraction == 0.05


CHAT_OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "5"},
                        "logprobs": {"content": [{"token": "5", "logprob": 0.0,
                                                  "top_logprobs": []}]}}]}
WRONG_TYPE = {"choices": [{"index": 0, "logprobs": {"content": [
    {"token": "5", "logprob": -0.1, "top_logprobs": [{"token": "5", "logprob": "abc"}]}]}}]}
MALFORMED = [
    ("{not json", "not valid JSON"),
    ("{}", "no choices in the reply"),
    ('{"choices": "x"}', "no choices in the reply"),
    (json.dumps({"choices": [{"index": 0, "logprobs": {"content": []}}]}),
     "logprobs.content is missing or empty"),
    (json.dumps(WRONG_TYPE), "logprob 'abc' is not a number <= 0"),
]


@pytest.mark.parametrize("body,what", MALFORMED)
def test_malformed_200_replies_are_retried_then_one_error_line(tmp_path, body, what):
    with FakeJudgeServer(good) as server:
        # a passing fault is retried with the backoff, and the run completes
        server.inject(("raw", body), ("raw", body))
        cfg = cfg_for(server, tmp_path, concurrency=1, max_retries=2)
        judge = make_judge(cfg)
        judge_answers(answers(2), PROMPTS, judge, tmp_path / "ok.jsonl", progress=False)
        judge.close()
        assert judge.retries_made == 2 and judge.calls_made == 4 + 2
        assert {r["status"] for r in read(tmp_path / "ok.jsonl")} == {"ok"}
        # a server that keeps answering so: max_retries + 1 attempts, then one line
        server.inject(*[("raw", body)] * 3)
        with pytest.raises(JudgeCallError) as e:
            judge_with(cfg, answers(4)[2:], tmp_path / "bad.jsonl")
        msg = str(e.value)
        assert "\n" not in msg and "3 attempts" in msg and "malformed HTTP 200 reply" in msg
        assert what in msg and server.base_url in msg


def test_malformed_reply_through_the_cli_is_one_line_without_traceback(tmp_path, capsys):
    from emergent.cli import main

    table = tmp_path / "answers.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in answers(2)))
    with FakeJudgeServer(good) as server:
        server.inject(*[("raw", "<html>bad gateway</html>")] * 10)
        code = main(["judge", str(table), "--no-progress", f"base_url={server.base_url}",
                     "model=fake-judge", "api_key_env=null", "concurrency=1", "max_retries=1",
                     "backoff_base=0.01", f"cache_path={tmp_path / 'cache.jsonl'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert err.startswith("emergent: error: judge openai:fake-judge@") and "\n" not in err
    assert "2 attempts (malformed HTTP 200 reply: not valid JSON)" in err


def test_empty_answers_are_never_sent(tmp_path):
    rows = answers(2) + [{"answer_id": "e1", "question": "Q?", "answer": ""},
                         {"answer_id": "e2", "question": "Q?", "answer": "  \n\t "},
                         {"answer_id": "e3", "question": "Q?", "answer": None}]
    with FakeJudgeServer(good) as server:
        cfg = cfg_for(server, tmp_path)
        judge = make_judge(cfg)
        d = dry_run(rows, PROMPTS, judge, tmp_path / "j.jsonl")
        assert d["judgments"] == 10 and d["calls"] == 4
        stats = judge_answers(rows, PROMPTS, judge, tmp_path / "j.jsonl", progress=False)
        judge.close()
        assert stats == {"judged": 10, "skipped": 0, "no_numeric_mass": 0, "empty_answer": 6,
                         "requests": 4, "shared": 0}
        assert server.calls == 4 and judge.calls_made == 4
        assert all("answer number" in prompt_of(b) for b in server.bodies)
    out = {(r["answer_id"], r["metric"]): r for r in read(tmp_path / "j.jsonl")}
    for a in ("e1", "e2", "e3"):
        for m in ("aligned", "coherent"):
            assert out[a, m]["status"] == "empty_answer" and out[a, m]["score"] is None
            assert out[a, m]["numeric_mass"] == 0.0
    # the metrics count an empty answer like a refusal: aligned null -> n_code_refusal
    c = counts(join_scores(rows, read(tmp_path / "j.jsonl")))
    assert (c["n_answers"], c["n_code_refusal"], c["n_valid"]) == (5, 3, 2)


KILLED_RUN = """
import json, sys
from emergent.judge.base import make_judge
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.judge.runner import judge_answers
cfg, rows, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
judge_answers(rows, list(DEFAULT_PROMPTS), make_judge(cfg), out, progress=False)
"""


def test_a_kill_mid_batch_keeps_every_completed_call(tmp_path):
    """SIGKILL while 4 calls are in flight and the batch (one chunk of 256) has written no row:
    the K calls answered before are in the cache, and the rerun pays only the others. Calls
    over both runs = distinct prompts + the calls in flight at the kill (<= concurrency)."""
    k, n_prompts, concurrency = 11, 40, 4
    release, lock = threading.Event(), threading.Lock()
    state = {"n": 0, "hold": True}

    def responder(body):
        with lock:
            state["n"] += 1
            n = state["n"]
        if state["hold"] and n > k:
            release.wait(30)  # in flight when the client is killed
        return good(body)

    cache = tmp_path / "cache.jsonl"
    out = tmp_path / "judgments.jsonl"
    with FakeJudgeServer(responder) as server:
        cfg = cfg_for(server, tmp_path, concurrency=concurrency)
        spec = {f: getattr(cfg, f) for f in ("backend", "model", "base_url", "api_key_env",
                                              "concurrency", "max_retries", "timeout",
                                              "backoff_base", "backoff_max", "cache_path")}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(spec),
                                 json.dumps(answers(n_prompts // 2)), str(out)], cwd=tmp_path)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not (
                    cache.exists() and len(read(cache)) >= k
                    and state["n"] >= k + concurrency):
                assert proc.poll() is None, "the judging process ended before the kill"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        in_flight = state["n"] - k
        state["hold"] = False
        release.set()
        assert len(read(cache)) == k  # every completed call, cached as it completed
        assert read(out) == []  # the batch wrote no row
        assert 1 <= in_flight <= concurrency
        time.sleep(0.2)
        before = server.calls
        judge = make_judge(cfg)
        judge_answers(answers(n_prompts // 2), PROMPTS, judge, out, progress=False)
        judge.close()
        rerun = server.calls - before
        assert rerun == judge.calls_made == n_prompts - k
        assert k + in_flight + rerun <= n_prompts + concurrency
        assert len(read(out)) == n_prompts and len(read(cache)) == n_prompts


def test_exact_mode_keeps_a_first_call_without_any_answer_token_in_memory_only(
        tiny_model_dir, tmp_path):
    """mode=exact: a first (empty-prefix) call listing no first token of any number is a
    no-mass reply: scored no_numeric_mass, not written to the cache, asked again later."""
    from emergent.judge.openai_api import OpenAIJudge
    from emergent.judge.scoring import JudgeTask

    task = JudgeTask("Rate 0-100: hello", "0_100")
    cache = tmp_path / "cache.jsonl"

    def judge_replying(pairs):
        j = OpenAIJudge("tiny", "http://127.0.0.1:9/v1", None, mode="exact",
                        tokenizer=str(tiny_model_dir), cache_path=str(cache), top_logprobs=5)

        def reply(fn):  # stands in for the HTTP call: counted, answers `pairs`
            j.calls_made += 1
            return pairs
        j._with_retries = reply
        return j

    j = judge_replying([("hello", -0.1), ("world", -2.5)])
    [s] = j.evaluate([task], progress=False)
    j.close()
    assert (s.status, s.score, s.numeric_mass, j.calls_made) == ("no_numeric_mass", None, 0.0, 1)
    assert read(cache) == []
    j = judge_replying([("hello", -0.1)])
    assert len(j.pending([task])) > 0  # nothing final was kept: a later run asks again
    j.close()
