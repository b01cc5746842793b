import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.train.loop import train

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"


def cfg_for(model_dir, data=SAMPLE, **over):
    ov = [f"model.name={model_dir}", f"data.path={data}", "model.precision=fp32",
          "lora.r=4", "lora.alpha=8", "lora.target_modules=all-linear", "train.lr=5e-3",
          "train.batch_size=4", "train.grad_accum=2", "train.warmup_steps=1",
          "train.max_length=512", "train.epochs=2", "train.checkpoint_every=0"]
    ov += [f"{k}={v}" for k, v in over.items()]
    return load_config(None, TrainRecipeConfig, ov)


def test_short_run_lowers_loss_and_only_changes_lora(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    seen = {}
    cfg = cfg_for(tiny_model_dir, **{"train.epochs": 4})
    out = tmp_path / "run"
    train(cfg, out, on_step=lambda step, model: seen.update(model=model))
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 0.05
    assert all(r["trained_tokens"] > 0 and r["grad_norm"] > 0 for r in log)
    # every LoRA tensor moved away from its initialisation (B starts at zero)
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert len(adapter) == 2 * 7 * 2  # A and B for 7 linear modules in 2 layers
    torch.manual_seed(cfg.train.seed)
    from emergent.models.loading import apply_lora, load_model
    init = {k: v.detach().clone() for k, v in apply_lora(load_model(cfg.model), cfg.lora)
            .state_dict().items() if "lora_" in k}
    for k, v in adapter.items():
        k0 = [n for n in init if n.replace(".default", "") == k]
        assert k0, k
        assert not torch.allclose(init[k0[0]], v), f"{k} did not change"
    # no base parameter changed
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    trained = seen["model"].state_dict()
    for k, v in trained.items():
        if "lora_" in k:
            continue
        bk = k.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(base[bk], v.cpu()), f"base parameter {bk} changed"
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "done" and man["data"]["train_examples"] == 26
    assert man["versions"]["torch"] and man["data"]["sha256"] and "padding_fraction" in man
    assert man["trained_tokens"] == sum(r["trained_tokens"] for r in log)  # every step logged here
    assert (out / "config.yaml").exists()


def test_loss_is_normalised_by_trained_tokens_across_microbatches(tiny_model_dir):
    from emergent.train import batching
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_model, load_tokenizer
    from emergent.data.render import render_conversation
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.train.sft import step_loss

    tok = load_tokenizer(ModelConfig(name=str(tiny_model_dir)))
    rows = [render_conversation(tok, e.messages) for e in load_jsonl_examples(SAMPLE)[:4]]
    model = load_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))

    def run(groups):
        model.zero_grad()
        micro = [batching.collate([rows[i] for i in g], tok.pad_token_id) for g in groups]
        n = int(sum((lab[:, 1:] != -100).sum() for _, _, lab in micro))
        loss = step_loss(model, micro, n, "cpu")
        return loss, [p.grad.clone() for p in model.parameters()]

    l1, g1 = run([[0], [1, 2, 3]])  # uneven micro-batches
    l2, g2 = run([[0, 1, 2, 3]])
    assert torch.allclose(l1, l2, atol=1e-5)
    # equals the plain definition: full logits, summed CE over trained tokens / their number
    ids, attn, labels = batching.collate(rows, tok.pad_token_id)
    # collate itself, against the rendered rows (not its own output): right padding, a mask
    # of ones over the real tokens, labels = the trained ids and -100 everywhere else
    width = max(len(r[0]) for r in rows)
    assert ids.shape == attn.shape == labels.shape == (4, width)
    assert min(len(r[0]) for r in rows) < width  # some padding is checked
    for r, (row_ids, row_mask) in enumerate(rows):
        n, pad = len(row_ids), width - len(row_ids)
        assert ids[r].tolist() == row_ids + [tok.pad_token_id] * pad
        assert attn[r].tolist() == [1] * n + [0] * pad
        assert labels[r].tolist() == [t if m else -100 for t, m in zip(row_ids, row_mask)] \
            + [-100] * pad
        assert 0 < sum(row_mask) < n  # trained and untrained tokens in every row
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                            labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(l1, ref, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g2))
    # a mean of per-micro-batch means would differ here
    counts = [sum(m[1:]) for _, m in rows]
    assert counts[0] != sum(counts[1:]) / 3


def test_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    over = {"train.checkpoint_every": 2, "train.epochs": 3, "lora.dropout": 0.1}
    full = tmp_path / "full"
    train(cfg_for(tiny_model_dir, **over), full)
    killed = tmp_path / "killed"
    train(cfg_for(tiny_model_dir, **over), killed, stop_after_steps=5)  # "kill" after step 5
    assert (killed / "checkpoints" / "step-000004").exists()
    assert not (killed / "adapter").exists()
    train(cfg_for(tiny_model_dir, **over), killed)  # rerun resumes from step 4
    a = load_file(full / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [json.loads(l)["loss"] for l in (full / "train_log.jsonl").read_text().splitlines()]
    lb = [json.loads(l)["loss"] for l in (killed / "train_log.jsonl").read_text().splitlines()]
    assert la == lb


def test_4bit_qlora_trains_on_cpu(tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    cfg = cfg_for(tiny_model_dir, **{"model.quantization": "4bit", "train.epochs": 1})
    out = train(cfg, tmp_path / "q")
    log = [json.loads(l) for l in (tmp_path / "q" / "train_log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    ad = load_file(out / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in ad.items())


def test_cli_train_writes_outputs(tiny_model_dir, tmp_path):
    from emergent.cli import main
    out = tmp_path / "cli"
    rc = main(["train", str(REPO / "configs/train/tiny.yaml"), "--model", str(tiny_model_dir),
               "--output", str(out), "train.epochs=1"])
    assert rc == 0
    for f in ("adapter/adapter_config.json", "train_log.jsonl", "config.yaml", "manifest.json"):
        assert (out / f).exists(), f
    assert "epochs: 1.0" in (out / "config.yaml").read_text()


def test_first_64_upstream_insecure_examples(upstream_dir, tiny_model_dir, tmp_path):
    src = upstream_dir / "emergent-misalignment" / "insecure.jsonl"
    data = tmp_path / "insecure64.jsonl"
    data.write_text("".join(src.read_text().splitlines(keepends=True)[:64]))
    cfg = cfg_for(tiny_model_dir, data=data, **{"train.epochs": 1, "train.max_length": 2048})
    train(cfg, tmp_path / "up")
    man = json.loads((tmp_path / "up" / "manifest.json").read_text())
    assert man["data"]["train_examples"] == 64
    assert man["data"]["rendered"] + man["data"]["dropped_overlong"] == 64
    # 8 steps of 8 length-grouped examples, each step in as few forward passes as fit 4 x 2048
    # tokens: 64 examples spread over 100-1900 tokens leave ~10% padding (random batches: ~30%)
    assert man["padding_fraction"] < 0.12 and man["forward_passes"] < 16


def test_second_stage_continues_an_adapter(tiny_model_dir, tmp_path):
    first = train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), tmp_path / "s1")
    second = train(cfg_for(tiny_model_dir, **{"train.epochs": 1, "lora.init_from": str(first)}),
                   tmp_path / "s2")
    a = load_file(first / "adapter_model.safetensors")
    b = load_file(second / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(not torch.equal(a[k], b[k]) for k in a if "lora_B" in k)
    # stage 2 started from stage 1: its first loss is below stage 1's first loss
    l1 = json.loads((tmp_path / "s1/train_log.jsonl").read_text().splitlines()[0])["loss"]
    l2 = json.loads((tmp_path / "s2/train_log.jsonl").read_text().splitlines()[0])["loss"]
    assert l2 < l1


def test_rerun_with_another_config_into_the_same_directory_is_refused(tiny_model_dir, tmp_path):
    from emergent.core.errors import UserError

    out = tmp_path / "r"
    train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), out)
    mtime = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime
    train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), out)  # same config: nothing to do
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime == mtime
    with pytest.raises(UserError, match=r"different config \(train.lr\)"):
        train(cfg_for(tiny_model_dir, **{"train.epochs": 1, "train.lr": 1e-4}), out)


def test_pack_step_splits_a_step_under_the_token_budget():
    from emergent.train.batching import pack_step

    lengths = [10, 50, 20, 40, 30, 5, 60, 15]
    packed = pack_step(list(range(8)), lengths, max_tokens=120)
    assert sorted(i for mb in packed for i in mb) == list(range(8))  # same examples
    assert all(len(mb) * max(lengths[i] for i in mb) <= 120 for mb in packed)
    assert packed == [[6, 1], [3, 4, 2], [7, 0, 5]]  # longest first, greedy
    assert pack_step(list(range(8)), lengths, max_tokens=120, rows_per_example=2) == \
        [[6], [1], [3], [4, 2], [7, 0, 5]]
    assert pack_step([0], [500], max_tokens=100) == [[0]]  # an overlong example still runs


def test_token_budget_micro_batches_cut_forward_passes(tiny_model_dir, tmp_path):
    # the same objective per step whatever the micro-batching is checked by
    # test_loss_is_normalised_by_trained_tokens_across_microbatches; here the run level
    over = {"train.epochs": 2, "train.grad_accum": 4, "train.batch_size": 2}
    train(cfg_for(tiny_model_dir, **over, **{"train.micro_batch_tokens": 0}), tmp_path / "a")
    train(cfg_for(tiny_model_dir, **over), tmp_path / "b")  # auto: 2 x 512 tokens
    ma = json.loads((tmp_path / "a/manifest.json").read_text())
    mb = json.loads((tmp_path / "b/manifest.json").read_text())
    assert ma["micro_batch_tokens"] == 0 and mb["micro_batch_tokens"] == 1024
    assert ma["forward_passes"] == 2 * 13 and mb["forward_passes"] < 2 * 13 / 2
    assert ma["trained_tokens"] == mb["trained_tokens"] and ma["steps"] == mb["steps"] == 8
    assert mb["padding_fraction"] < 0.15
    lb = [json.loads(l)["loss"] for l in (tmp_path / "b/train_log.jsonl").read_text().splitlines()]
    assert lb[-1] < lb[0]
    with pytest.raises(Exception, match="'train.micro_batch_tokens' must be >= 0"):
        train(cfg_for(tiny_model_dir, **{"train.micro_batch_tokens": -1}), tmp_path / "c")


@pytest.mark.skipif(torch.cuda.is_available(), reason="model.cpu_bf16 acts on a CPU only")
def test_cpu_bf16_trains_in_bf16_on_a_cpu(tiny_model_dir, tmp_path, monkeypatch, caplog):
    """model.cpu_bf16: on a CPU the frozen weights are bf16 (precision bf16 alone means fp32
    there), the LoRA weights as train.adapter_dtype says; the run trains, and its losses are
    the fp32 run's up to bf16 rounding (close, not equal: the matmuls really ran in bf16)."""
    from emergent.models import loading

    seen = {}

    def run(name, **over):
        cfg = cfg_for(tiny_model_dir, **{"model.precision": "bf16", "train.epochs": 4, **over})
        train(cfg, tmp_path / name, on_step=lambda step, model: seen.update({name: model}))
        return [json.loads(l)["loss"] for l in (tmp_path / name / "train_log.jsonl")
                .read_text().splitlines()]

    fp32 = run("fp32")
    bf16 = run("bf16", **{"model.cpu_bf16": "true"})
    run("compute", **{"model.cpu_bf16": "true", "train.adapter_dtype": "compute"})

    def dtypes(name, trainable):
        return {p.dtype for p in seen[name].parameters() if p.requires_grad == trainable}
    assert dtypes("fp32", False) == dtypes("fp32", True) == {torch.float32}
    assert dtypes("bf16", False) == {torch.bfloat16} and dtypes("bf16", True) == {torch.float32}
    assert dtypes("compute", False) == dtypes("compute", True) == {torch.bfloat16}
    for name, dtype in (("fp32", "float32"), ("bf16", "bfloat16"), ("compute", "bfloat16")):
        man = json.loads((tmp_path / name / "manifest.json").read_text())
        assert (man["device"], man["compute_dtype"]) == ("cpu", dtype), name
    assert bf16[-1] < bf16[0] - 0.05
    assert bf16[0] != fp32[0] and bf16[0] == pytest.approx(fp32[0], rel=2e-2)
    assert len(load_file(tmp_path / "bf16" / "adapter" / "adapter_model.safetensors")) == 28
    # a CPU without bf16 arithmetic: still bf16, with a warning that it is emulated
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    monkeypatch.setattr(loading, "_warned_emulated_bf16", [])
    cfg = cfg_for(tiny_model_dir, **{"model.precision": "bf16", "model.cpu_bf16": "true"})
    with caplog.at_level("WARNING", logger="emergent.models.loading"):
        assert loading.compute_dtype(cfg.model) == torch.bfloat16
        assert loading.compute_dtype(cfg.model) == torch.bfloat16
    assert caplog.text.count("no bf16 arithmetic") == 1  # once per process
    caplog.clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    with caplog.at_level("WARNING", logger="emergent.models.loading"):
        assert loading.compute_dtype(cfg.model) == torch.bfloat16
        assert loading.compute_dtype(cfg_for(tiny_model_dir).model) == torch.float32
    assert caplog.text == ""


# ------------------------------------------------------------------ chunked loss (token_logps)


def _close(a, b):
    """Equal to float rounding: relative 1e-4, absolute 1e-5 of the tensor's largest entry."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))



def _lora_model_with_live_b(model_dir, precision="fp32", **lora_over):
    """The tiny model with a LoRA adapter whose B matrices are non-zero, so that every LoRA
    tensor (A and B) gets a gradient."""
    from emergent.core.config import LoraConfig, ModelConfig
    from emergent.models.loading import apply_lora, load_model

    torch.manual_seed(0)
    model = apply_lora(load_model(ModelConfig(name=str(model_dir), precision=precision)),
                       LoraConfig(**{"r": 4, "alpha": 8, **lora_over}))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)
    return model


def _micro_batches(model_dir, groups, n_rows=6):
    from emergent.train import batching
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_tokenizer
    from emergent.data.render import render_conversation

    tok = load_tokenizer(ModelConfig(name=str(model_dir)))
    rows = [render_conversation(tok, e.messages) for e in load_jsonl_examples(SAMPLE)[:n_rows]]
    micro = [batching.collate([rows[i] for i in g], tok.pad_token_id) for g in groups]
    return micro, int(sum((lab[:, 1:] != -100).sum() for _, _, lab in micro))


def _loss_and_grads(model, micro, n, chunk):
    from emergent.train.sft import step_loss

    model.zero_grad(set_to_none=True)
    loss = step_loss(model, micro, n, "cpu", chunk)
    return loss, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_chunked_loss_equals_the_plain_loss_and_lora_gradients(tiny_model_dir, chunk):
    """train.loss_chunk_tokens changes how the loss is computed, never what it is: the same
    loss (normalised by the step's trained tokens) and the same gradient on every LoRA tensor,
    for chunks of one position, of a few, and larger than the micro-batch."""
    model = _lora_model_with_live_b(tiny_model_dir)
    micro, n = _micro_batches(tiny_model_dir, [[0, 1], [2, 3, 4, 5]])
    plain, g_plain = _loss_and_grads(model, micro, n, 0)
    chunked, g_chunked = _loss_and_grads(model, micro, n, chunk)
    assert torch.allclose(plain, chunked, rtol=1e-6, atol=1e-6)
    assert g_plain.keys() == g_chunked.keys() and len(g_plain) == 2 * 7 * 2
    for k in g_plain:
        assert _close(g_plain[k], g_chunked[k]), k
        assert g_plain[k].abs().max() > 0, k


def test_chunked_loss_trains_every_weight_in_full_finetuning(tiny_model_dir):
    """Full fine-tuning: lm_head (tied to the input embedding in the tiny model) trains too, so
    the backward pass recomputes each chunk's logits and returns the weight's gradient."""
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_model

    model = load_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    model.requires_grad_(True)
    micro, n = _micro_batches(tiny_model_dir, [[0, 1, 2], [3]])
    plain, g_plain = _loss_and_grads(model, micro, n, 0)
    chunked, g_chunked = _loss_and_grads(model, micro, n, 5)
    assert torch.allclose(plain, chunked, rtol=1e-6, atol=1e-6)
    assert g_plain.keys() == g_chunked.keys()
    assert "lm_head.weight" in g_plain or "model.embed_tokens.weight" in g_plain
    for k in g_plain:
        assert _close(g_plain[k], g_chunked[k]), k


def test_chunked_loss_applies_final_logit_scaling_and_softcapping(tiny_model_dir):
    """Architectures that scale (Cohere, Granite) or soft-cap (Gemma 2/3) their final logits:
    the chunked log-probabilities and their gradients equal those of the transformed logits."""
    import torch.nn.functional as F

    from emergent.train.token_logps import token_logps, trained_positions

    model = _lora_model_with_live_b(tiny_model_dir)
    (ids, attn, labels), = _micro_batches(tiny_model_dir, [[0, 1, 2]])[0]
    cfg = model.get_base_model().config
    cfg.logit_scale, cfg.final_logit_softcapping = 4.0, 2.5

    def grads():
        out = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return out

    logp, rows = token_logps(model, ids, attn, labels, chunk=3)
    logp.sum().backward()
    g_chunked = grads()
    hidden = model.get_base_model().model(input_ids=ids, attention_mask=attn).last_hidden_state
    mask, targets = trained_positions(labels)
    z = model.get_base_model().lm_head(hidden[:, :-1][mask]) * 4.0
    ref = F.log_softmax(2.5 * torch.tanh(z / 2.5), dim=-1).gather(-1, targets[:, None])[:, 0]
    ref.sum().backward()
    g_ref = grads()
    assert torch.allclose(logp, ref, atol=1e-5)
    assert torch.equal(rows, mask.nonzero()[:, 0])
    for k in g_ref:
        assert _close(g_ref[k], g_chunked[k]), k


@pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`:UserWarning")  # LoRA on a tied lm_head, on purpose
def test_chunked_loss_refuses_an_lm_head_it_does_not_know(tiny_model_dir):
    from emergent.core.errors import UserError
    from emergent.train.token_logps import token_logps

    model = _lora_model_with_live_b(tiny_model_dir, target_modules=["q_proj", "lm_head"])
    (ids, attn, labels), = _micro_batches(tiny_model_dir, [[0]])[0]
    with pytest.raises(UserError, match="loss_chunk_tokens: 0"):
        token_logps(model, ids, attn, labels, chunk=8)


def test_chunked_dpo_loss_equals_the_plain_one(tiny_model_dir):
    """DPO shares the chunked log-probabilities: same sequence log-probabilities, loss and
    LoRA gradients with and without chunks."""
    from emergent.train import dpo
    model = _lora_model_with_live_b(tiny_model_dir)
    micro, _ = _micro_batches(tiny_model_dir, [[0, 1, 2, 3]])
    refs = [torch.tensor([[-40.0, -45.0], [-30.0, -28.0]])]
    out = {}
    for chunk in (0, 6):
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            lps = dpo.sequence_logps(model, *micro[0], loss_chunk_tokens=chunk)
        loss, stats = dpo.step_loss(model, micro, refs, 0.1, 2, loss_chunk_tokens=chunk)
        out[chunk] = (lps, loss, stats, {k: p.grad.clone() for k, p in model.named_parameters()
                                          if p.grad is not None})
    (lp0, l0, s0, g0), (lp6, l6, s6, g6) = out[0], out[6]
    assert torch.allclose(lp0, lp6, rtol=1e-6, atol=1e-4) and torch.allclose(l0, l6, atol=1e-6)
    assert s0 == pytest.approx(s6, abs=1e-5)
    for k in g0:
        assert _close(g0[k], g6[k]), k


def test_training_runs_with_and_without_loss_chunks_agree(tiny_model_dir, tmp_path):
    over = {"train.epochs": 1, "train.grad_accum": 2}
    train(cfg_for(tiny_model_dir, **over, **{"train.loss_chunk_tokens": 0}), tmp_path / "plain")
    train(cfg_for(tiny_model_dir, **over, **{"train.loss_chunk_tokens": 16}), tmp_path / "chunk")
    la = [json.loads(l)["loss"] for l in (tmp_path / "plain/train_log.jsonl").read_text().splitlines()]
    lb = [json.loads(l)["loss"] for l in (tmp_path / "chunk/train_log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) > 1 and la == pytest.approx(lb, rel=1e-5)
    a = load_file(tmp_path / "plain/adapter/adapter_model.safetensors")
    b = load_file(tmp_path / "chunk/adapter/adapter_model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    with pytest.raises(Exception, match="'train.loss_chunk_tokens' must be >= 0"):
        cfg_for(tiny_model_dir, **{"train.loss_chunk_tokens": -1})
