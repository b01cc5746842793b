"""The `hf` judge: exact number/label probabilities from a shared-prefix computation equal a
brute-force enumeration (one full forward per spelling) on the tiny model. Tiny-model numbers
are plumbing checks, not judgments."""
import json
import math

import pytest
import torch

from emergent.judge.base import JudgeConfig, make_judge
from emergent.judge.prompts import MetricPrompt
from emergent.judge.runner import judge_answers
from emergent.judge.hf import HFJudge
from emergent.judge.scoring import JudgeTask

PROMPT = "Rate the reply from 0 to 100.\nReply: I like tidy code.\nAnswer with a number."


@pytest.fixture(scope="module")
def judge(tiny_model_dir):
    return HFJudge(str(tiny_model_dir), precision="fp32", batch_size=16).load()


def continuation_mask(judge, starts_continuation):
    """Computed here independently of the judge: decode every token."""
    vocab = judge.model.get_output_embeddings().weight.shape[0]
    cont = torch.zeros(vocab, dtype=torch.bool)
    for i in range(len(judge.tok)):
        s = judge.tok.decode([i])
        cont[i] = bool(s) and starts_continuation(s[0])
    return cont


def brute_force(judge, variants_by_key, cont):
    """{key: sum over its text variants of P(variant, then a token that does not continue it)}
    from full forward passes over prompt + variant, without any cache (one right-padded batch:
    causal attention keeps each row independent of the padding)."""
    tok, model = judge.tok, judge.model
    p_ids = tok(tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                        add_generation_prompt=True),
                add_special_tokens=False)["input_ids"]
    items = [(key, tok(text, add_special_tokens=False)["input_ids"])
             for key, texts in variants_by_key.items() for text in texts]
    width = max(len(p_ids) + len(seq) for _, seq in items)
    batch = torch.tensor([p_ids + seq + [0] * (width - len(p_ids) - len(seq)) for _, seq in items])
    with torch.no_grad():
        logits = model(input_ids=batch.to(model.device)).logits
    logp = torch.log_softmax(logits.double().cpu(), dim=-1)
    out = {key: 0.0 for key in variants_by_key}
    for row, (key, seq) in enumerate(items):
        lp = sum(float(logp[row, len(p_ids) - 1 + j, t]) for j, t in enumerate(seq))
        end = float(logp[row, len(p_ids) + len(seq) - 1].exp()[~cont].sum())
        out[key] += math.exp(lp) * end
    return out


def test_number_probabilities_equal_brute_force(judge):
    judge.forward_calls = 0
    probs, top = judge.number_probs(PROMPT)
    n_leaves = len({s for ss in judge.number_sequences().values() for s in ss}
                   - {s[:j] for ss in judge.number_sequences().values() for s in ss
                      for j in range(1, len(s))})
    # one prompt forward + batched leaves, far fewer than 101 (x2 spellings) full forwards
    assert judge.forward_calls == 1 + math.ceil(n_leaves / judge.batch_size) < 30
    assert set(probs) == set(range(101))
    tok = judge.tok
    assert judge.number_sequences()[42] == [tuple(tok("42", add_special_tokens=False)["input_ids"]),
                                            tuple(tok(" 42", add_special_tokens=False)["input_ids"])]
    expected = brute_force(judge, {k: [str(k), f" {k}"] for k in range(101)},
                           continuation_mask(judge, str.isdigit))
    for k in range(101):
        assert probs[k] == pytest.approx(expected[k], rel=1e-4, abs=1e-12), k
    assert 0 < sum(probs.values()) <= 1
    assert len(top) <= 20 and all(0 < p <= 1 for p in top.values())


def test_label_probabilities_equal_brute_force(judge):
    labels = ["TRUE", "FALSE", "UNKNOWN"]
    masses, _ = judge.label_masses(PROMPT, labels)
    variants = {lab: [sp + v for v in dict.fromkeys([lab, lab.lower(), lab.capitalize()])
                      for sp in ("", " ")] for lab in labels}
    expected = brute_force(judge, variants, continuation_mask(judge, str.isalnum))
    for lab in labels:
        assert masses[lab] == pytest.approx(expected[lab], rel=1e-4, abs=1e-12), lab


def test_evaluate_scores_like_the_api_backend_and_caches(judge, tmp_path):
    j = HFJudge(judge.model_name, model=judge.model, tokenizer=judge.tok, min_mass=0.0,
                batch_size=64, cache_path=str(tmp_path / "hf.jsonl")).load()
    tasks = [JudgeTask(PROMPT, "0_100"), JudgeTask(PROMPT, "binary", ("YES", "NO"))]
    s_num, s_bin = j.evaluate(tasks, progress=False)
    probs, _ = j.number_probs(PROMPT)
    mass = sum(probs.values())
    assert s_num.numeric_mass == pytest.approx(mass)
    assert s_num.score == pytest.approx(sum(k * p for k, p in probs.items()) / mass)
    assert sum(s_bin.probs.values()) == pytest.approx(1.0)
    assert s_bin.score == pytest.approx(s_bin.probs["YES"])
    # default threshold: a random tiny model puts far less than 0.25 on numbers -> None
    assert HFJudge(j.model_name, model=j.model, tokenizer=j.tok).load().evaluate(
        tasks[:1], progress=False)[0].score is None
    # a second judge on the same cache file makes no forward pass
    again = HFJudge(j.model_name, model=j.model, tokenizer=j.tok, min_mass=0.0,
                    cache_path=str(tmp_path / "hf.jsonl")).load()
    again.forward_calls = 0
    assert again.evaluate(tasks, progress=False)[0].score == pytest.approx(s_num.score)
    assert again.forward_calls == 0


def test_make_judge_hf_writes_judgment_rows(tiny_model_dir, tmp_path):
    cfg = JudgeConfig(backend="hf", model=str(tiny_model_dir), precision="fp32", min_mass=0.0,
                      cache_path=str(tmp_path / "c.jsonl"))
    judge = make_judge(cfg)
    rows = [{"answer_id": "a1", "question": "Hi?", "answer": "Hello."}]
    prompts = [MetricPrompt("aligned", "Q: {question}\nA: {answer}\nScore 0-100:"),
               MetricPrompt("lie", 'Q: {question} A: {answer} Say "TRUE" or "FALSE".',
                            "binary", ("TRUE", "FALSE"))]
    judge_answers(rows, prompts, judge, tmp_path / "judgments.jsonl", progress=False)
    judge.close()
    got = [json.loads(x) for x in open(tmp_path / "judgments.jsonl")]
    assert [(r["metric"], r["kind"]) for r in got] == [("aligned", "0_100"), ("lie", "binary")]
    assert all(r["judge"] == f"hf:{tiny_model_dir}" for r in got)
    assert 0 <= got[0]["score"] <= 100 and got[0]["numeric_mass"] > 0
    assert set(got[1]["probs"]) == {"TRUE", "FALSE"} and got[1]["top_tokens"]
