"""`emergent estimate --num-gpus N --strategy ddp|fsdp`: memory per GPU and time, against numbers
computed by hand for a small shape (hidden 64, 4 layers, 4 heads / 2 kv of 16, intermediate
128, vocab 1,000, untied, no biases):
    linear per layer q 64x64 + k 64x32 + v 64x32 + o 64x64 + gate, up, down 64x128 = 36,864
    linear 4 x 36,864 = 147,456; norms 4 x 2 x 64 + 64 = 576; embed = lm_head = 64,000
    total 276,032; LoRA r=4 on all 7: 4 x 4 x (128+96+96+128+192+192+192) = 16,384."""
import json

import pytest

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.pipeline.estimate import (GIB, ModelShape, estimate, estimate_memory,
                                        format_report, param_counts)

SHAPE = ModelShape(name="small", hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2,
                   head_dim=16, intermediate_size=128, vocab_size=1000, tie_word_embeddings=False,
                   attention_bias=False, source="test")
CONFIG_JSON = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
               "tie_word_embeddings": False, "attention_bias": False}


def cfg(*over):
    return load_config(None, TrainRecipeConfig, [
        "model.name=small", "model.precision=bf16", "model.quantization=none",
        "model.gradient_checkpointing=false", "lora.r=4", "lora.target_modules=all-linear",
        "train.optimizer=adamw", "train.max_length=256", *over])


def parts(c, **kw):
    return {k: v * GIB for k, v in estimate_memory(SHAPE, c, 256, **kw)["parts_gib"].items()}


def test_the_small_shape_counts_as_computed_by_hand():
    pc = param_counts(SHAPE)
    assert (pc["linear"], pc["other"], pc["total"]) == (147_456, 576, 276_032)


def test_ddp_every_gpu_holds_everything_plus_the_gradient_buckets():
    one, ddp = parts(cfg()), parts(cfg(), num_gpus=4, strategy="ddp")
    assert ddp["weights_bf16"] == 276_032 * 2 == 552_064
    assert ddp["lora_weights"] == ddp["gradients"] == 16_384 * 4 == 65_536
    assert ddp["optimizer_states"] == 16_384 * 8 == 131_072  # fp32 AdamW: 2 states
    assert ddp["ddp_grad_buckets"] == 65_536
    assert {k: v for k, v in ddp.items() if k != "ddp_grad_buckets"} == pytest.approx(one)


def test_fsdp_shards_weights_gradients_and_states_and_adds_the_gathered_units():
    one, fsdp = parts(cfg()), parts(cfg(), num_gpus=4, strategy="fsdp")
    # the untied lm_head (64,000 x 2 B = 128,000) is outside the sharded decoder: whole
    assert fsdp["weights_bf16"] == pytest.approx((552_064 - 128_000) / 4 + 128_000) == 234_016
    assert fsdp["lora_weights"] == fsdp["gradients"] == pytest.approx(65_536 / 4)
    assert fsdp["optimizer_states"] == pytest.approx(131_072 / 4)
    # root unit (embeddings 64,000 + final norm 64) x 2 B = 128,128; a layer 36,864 linear +
    # 128 norm weights, x 2 B = 73,984, twice (computing + prefetched)
    assert fsdp["fsdp_gathered"] == pytest.approx(128_128 + 2 * 73_984) == 276_096
    for same in ("activations", "logits_and_loss", "cuda_context"):
        assert fsdp[same] == pytest.approx(one[same])
    assert "ddp_grad_buckets" not in fsdp


def test_fsdp_of_a_4bit_model_and_what_emergent_train_refuses_to_shard():
    q4 = parts(cfg("model.quantization=4bit"), num_gpus=2, strategy="fsdp")
    assert q4["weights_nf4"] == pytest.approx(147_456 * 0.5 / 2)
    # NF4 constants per tensor: one byte per 64 weights + 4 per 256 blocks + 1,092 bytes of
    # offset and codes: q, o (4,096 weights) 1,160; k, v (2,048) 1,128; gate, up, down
    # (8,192) 1,224; 8,248 per layer. Not sharded: bitsandbytes rebuilds a gathered weight's
    # quant state from its module, so every rank keeps all of them
    assert q4["quant_constants"] == pytest.approx(4 * 8_248)
    # fp32 embeddings + norms sharded, the fp32 lm_head (256,000) whole
    assert q4["weights_fp32"] == pytest.approx((514_304 - 256_000) / 2 + 256_000)
    # fp32 root (64,000 + 64) x 4 = 256,256; a layer's packed payload 36,864 x 0.5 + 128 x 4
    # norm bytes = 18,944, twice
    assert q4["fsdp_gathered"] == pytest.approx(256_256 + 2 * 18_944)
    assert q4["dequant_buffers"] == 2 * 8192 * 2  # unchanged: the largest linear, dequantized
    for refused in (["model.quantization=8bit"],
                    ["lora.full_finetune=true", "model.quantization=4bit"]):
        with pytest.raises(UserError, match="train.distributed fsdp: not supported"):
            parts(cfg(*refused), num_gpus=2, strategy="fsdp")


def test_fsdp_full_finetune_shards_every_weight_and_adds_the_gathered_gradients():
    one = parts(cfg("lora.full_finetune=true"))
    full = parts(cfg("lora.full_finetune=true"), num_gpus=4, strategy="fsdp")
    # every weight trains and is sharded, the untied lm_head with the root unit:
    # 276,032 params x 2 B (bf16) / 4 GPUs, gradients alike, fp32 AdamW 8 B / 4
    assert one["weights_bf16"] == one["gradients"] == 552_064
    assert full["weights_bf16"] == full["gradients"] == pytest.approx(138_016)
    assert full["optimizer_states"] == pytest.approx(276_032 * 8 / 4) == 552_064
    assert full["lora_weights"] == full["master_weights"] == 0
    # gathered weights: root (embeddings 64,000 + lm_head 64,000 + final norm 64) x 2 B =
    # 256,128, + two layers of 36,864 linear + 128 norm weights x 2 B = 73,984 each
    assert full["fsdp_gathered"] == pytest.approx(256_128 + 2 * 73_984) == 404_096
    # unsharded gradients: the root's until the backward ends + one layer's
    assert full["fsdp_gathered_grads"] == pytest.approx(256_128 + 73_984) == 330_112
    for same in ("activations", "logits_and_loss", "cuda_context"):
        assert full[same] == pytest.approx(one[same])
    assert sum(full.values()) < sum(one.values())
    assert "fsdp_gathered_grads" not in parts(cfg(), num_gpus=4, strategy="fsdp")  # LoRA


def test_time_scales_with_n_and_the_stated_efficiency(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG_JSON))
    kw = dict(config_json=path, examples=100, mean_tokens=50)
    single, ddp = estimate(cfg(), **kw), estimate(cfg(), num_gpus=4, strategy="ddp", **kw)
    fsdp = estimate(cfg(), num_gpus=4, strategy="fsdp", **kw)
    # FLOPs/token: 2 x (147,456 + 64,000) x 2 + attention 2 x 64 x 4 layers x 50 x 3 = 922,624
    assert single["flops_per_token"] == ddp["flops_per_token"] == 922_624
    assert single["steps"] == ddp["steps"] and ddp["total_tokens"] == 100 * 50 * 1.02
    h100 = {r["gpu"]: r for r in ddp["time"]}["H100 SXM 80GB"]
    assert h100["tokens_per_s"] == (round(4 * 0.90 * 989e12 * 0.20 / 922_624),
                                    round(4 * 0.90 * 989e12 * 0.45 / 922_624))
    assert h100["seconds"][0] == pytest.approx(5100 / (4 * 0.90 * 989e12 * 0.45 / 922_624))
    h100 = {r["gpu"]: r for r in fsdp["time"]}["H100 SXM 80GB"]
    assert h100["tokens_per_s"][1] == round(4 * 0.75 * 989e12 * 0.45 / 922_624)
    assert ddp["need_gib"] > single["need_gib"] > fsdp["need_gib"]
    text = format_report(fsdp, "small")
    assert "4 GPUs, fsdp: memory per GPU" in text and "  fsdp_gathered" in text
    assert "fits 24 GB per GPU: YES" in text and "4 x H100 SXM 80GB" in text
    assert "4 GPUs x 75% efficiency = 3.00 x one GPU's tokens/s" in text


def test_cli_flags_and_their_refusals(tmp_path, capsys):
    from emergent.cli import main
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG_JSON))
    train = tmp_path / "train.yaml"
    train.write_text("model:\n  name: small\n  precision: bf16\n")
    common = ["estimate", str(train), "--config-json", str(path), "--examples", "100",
              "--mean-tokens", "50"]
    assert main(common + ["--num-gpus", "2", "--strategy", "fsdp", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["num_gpus"] == 2 and rep["strategy"] == "fsdp"
    assert "fsdp_gathered" in rep["memory"]["max_length"]["true"]["parts_gib"]
    assert main(common + ["--num-gpus", "2"]) == 0
    assert "2 GPUs, ddp" in capsys.readouterr().out  # ddp by default
    for bad, message in ((["--strategy", "fsdp"], "--strategy fsdp needs --num-gpus N"),
                         (["--num-gpus", "0"], "--num-gpus must be >= 1"),
                         (["--num-gpus", "2", "--device", "cpu"], "does not combine")):
        assert main(common + bad) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(UserError, match="strategy must be ddp or fsdp"):
        estimate(cfg(), config_json=path, num_gpus=2, strategy="zero3")


def test_ddp_bucket_is_capped_at_the_all_reduce_bucket():
    """The 32B QLoRA preset: LoRA gradients (268M fp32) exceed one bucket of 2**24 elements;
    the copy is one bucket plus the largest LoRA tensor (r x 27,648)."""
    from pathlib import Path

    from emergent.pipeline.estimate import model_shape
    repo = Path(__file__).resolve().parents[2]
    c = load_config(repo / "configs/train/qlora_qwen25_coder_32b_24gb.yaml", TrainRecipeConfig)
    shape = model_shape(c.model.name)
    ddp = estimate_memory(shape, c, 1024, num_gpus=2, strategy="ddp")["parts_gib"]
    assert ddp["ddp_grad_buckets"] * GIB == pytest.approx((2**24 + c.lora.r * 27_648) * 4)
    assert ddp["gradients"] > 10 * ddp["ddp_grad_buckets"]
