import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emergent.config import TrainRecipeConfig, load_config
from emergent.train import train

REPO = Path(__file__).resolve().parents[1]
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
    from emergent.models import apply_lora, load_model
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
    from emergent import batching
    from emergent.config import ModelConfig
    from emergent.models import load_model, load_tokenizer
    from emergent.render import render_conversation
    from emergent.chat_data import load_jsonl_examples
    from emergent.train import step_loss

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
    from emergent.errors import UserError

    out = tmp_path / "r"
    train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), out)
    mtime = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime
    train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), out)  # same config: nothing to do
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime == mtime
    with pytest.raises(UserError, match=r"different config \(train.lr\)"):
        train(cfg_for(tiny_model_dir, **{"train.epochs": 1, "train.lr": 1e-4}), out)


def test_pack_step_splits_a_step_under_the_token_budget():
    from emergent.batching import pack_step

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
    with pytest.raises(Exception, match="micro_batch_tokens must be >= 0"):
        train(cfg_for(tiny_model_dir, **{"train.micro_batch_tokens": -1}), tmp_path / "c")
