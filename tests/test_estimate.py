"""`emergent estimate`: parameter counts against known models and peft, the activation formula
against the tensors autograd actually saves, steps against the batching schedule, the CLI."""
import json
from pathlib import Path

import pytest

from emergent.config import TrainRecipeConfig, load_config
from emergent.errors import UserError
from emergent.estimate import (KNOWN_CONFIGS, estimate, estimate_memory, lora_params, model_shape,
                               param_counts, steps_for)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"


def preset(name, *over):
    return load_config(REPO / "configs/train" / name, TrainRecipeConfig, list(over))


@pytest.mark.parametrize("name,total", [
    # parameter counts Hugging Face reports for these checkpoints
    ("Qwen/Qwen2.5-Coder-32B-Instruct", 32_763_876_352),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", 7_615_616_512),
    ("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304),
    ("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768),
    ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248),
])
def test_builtin_table_gives_the_known_parameter_counts(name, total):
    shape = model_shape(name)
    assert "built-in" in shape.source
    assert param_counts(shape)["total"] == total


def test_counts_match_the_real_model_and_peft(tiny_model_dir):
    import torch

    from emergent.models import apply_lora, load_model

    cfg = load_config(None, TrainRecipeConfig, [f"model.name={tiny_model_dir}", "lora.r=8",
                                                "model.precision=fp32",
                                                "lora.target_modules=[q_proj,v_proj,down_proj]"])
    shape = model_shape(str(tiny_model_dir))
    assert shape.source.endswith("config.json")
    torch.manual_seed(0)
    model = apply_lora(load_model(cfg.model, for_training=True), cfg.lora)
    base = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert param_counts(shape)["total"] == base
    assert lora_params(shape, cfg.lora) == trainable > 0


def test_activation_formula_matches_saved_tensors(tiny_model_dir, tmp_path):
    """Without checkpointing, the bytes autograd saves for backward in the decoder layers (fp32,
    LoRA on all projections) are what the per-layer formula predicts, within 25%."""
    import torch

    from emergent.models import apply_lora, load_model
    from emergent.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "wider", hidden_size=256, num_layers=2, num_heads=4,
                                 num_kv_heads=2, intermediate_size=768)
    cfg = load_config(None, TrainRecipeConfig, [f"model.name={model_dir}", "model.precision=fp32",
                                                "lora.r=8", "train.batch_size=2",
                                                "model.attn_implementation=sdpa"])
    torch.manual_seed(0)
    model = apply_lora(load_model(cfg.model, for_training=True), cfg.lora)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            saved[st.data_ptr()] = st.nbytes()
        return t

    seq = 128
    ids = torch.randint(0, 500, (2, seq))
    layers = model.get_base_model().model.layers
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h = model.get_base_model().model.embed_tokens(ids).detach().requires_grad_(True)
        pos = torch.arange(seq)[None]
        emb = model.get_base_model().model.rotary_emb(h, pos)
        for layer in layers:
            h = layer(h, position_embeddings=emb, position_ids=pos)
            h = h[0] if isinstance(h, tuple) else h
    est = estimate_memory(model_shape(str(model_dir)), cfg, seq, gradient_checkpointing=False,
                          device_overhead_gib=0)
    measured = sum(saved.values())
    predicted = est["parts_gib"]["activations"] * 2**30
    assert 0.75 * predicted <= measured <= 1.25 * predicted, (measured, predicted)


def test_memory_parts_follow_quantization_and_checkpointing():
    cfg32 = preset("qlora_qwen25_coder_32b_24gb.yaml")
    shape = model_shape(cfg32.model.name)
    pc = param_counts(shape)
    q4 = estimate_memory(shape, cfg32, 1024)["parts_gib"]
    bf16 = estimate_memory(shape, preset("paper_qwen25_coder_32b_bf16.yaml"), 1024)["parts_gib"]
    assert bf16["weights"] == pytest.approx(pc["total"] * 2 / 2**30)
    # 0.53 B/param on the quantized linears, fp32 on the rest (prepare_model_for_kbit_training)
    assert q4["weights"] == pytest.approx((pc["linear"] * 0.53 + (pc["total"] - pc["linear"]) * 4)
                                          / 2**30)
    assert q4["weights"] < bf16["weights"] / 2.5
    lora = lora_params(shape, cfg32.lora)
    assert q4["optimizer_states"] == pytest.approx(lora * 2 / 2**30)  # paged 8-bit AdamW
    adamw = estimate_memory(shape, cfg32, 1024, optimizer="adamw")["parts_gib"]
    assert adamw["optimizer_states"] == pytest.approx(lora * 8 / 2**30)
    on = estimate_memory(shape, cfg32, 1024, gradient_checkpointing=True)["parts_gib"]
    off = estimate_memory(shape, cfg32, 1024, gradient_checkpointing=False)["parts_gib"]
    assert on["activations"] < off["activations"] / 5
    longer = estimate_memory(shape, cfg32, 2048, gradient_checkpointing=False)["parts_gib"]
    assert longer["activations"] == pytest.approx(2 * off["activations"])
    assert longer["logits_and_loss"] == pytest.approx(cfg32.train.batch_size * 2048 * 152064 * 12 / 2**30)


def test_small_preset_fits_and_bf16_32b_does_not():
    assert estimate(preset("qwen25_0.5b.yaml", "data.path=missing.jsonl"))["fits"]
    rep = estimate(preset("paper_qwen25_coder_32b_bf16.yaml", "data.path=missing.jsonl"))
    assert not rep["fits"] and rep["data"] is None and "steps" not in rep


def test_steps_and_time_from_the_dataset(tiny_model_dir):
    from emergent import batching
    from emergent.chat_data import load_jsonl_examples
    from emergent.models import load_tokenizer
    from emergent.train import tokenize_dataset

    cfg = load_config(None, TrainRecipeConfig, [f"model.name={tiny_model_dir}", f"data.path={SAMPLE}",
                                                "train.batch_size=4", "train.grad_accum=2",
                                                "train.epochs=3"])
    rep = estimate(cfg)
    rows, _ = tokenize_dataset(cfg, load_tokenizer(cfg.model), load_jsonl_examples(SAMPLE))
    lengths = [len(r[0]) for r in rows]
    plan = batching.schedule(lengths, 4, 2, 0, 3, None, "length_grouped")
    assert rep["steps"] == len(plan) == steps_for(len(rows), cfg.train)
    assert rep["data"]["train_examples"] == len(rows)
    assert rep["data"]["longest_tokens"] == max(lengths)
    assert rep["data"]["mean_tokens"] == pytest.approx(sum(lengths) / len(lengths))
    assert rep["data"]["lengths"] == "tokenizer"
    assert rep["total_tokens"] == round(3 * sum(lengths) * 1.02)
    for t in rep["time"]:
        lo, hi = t["tokens_per_s"]
        assert 0 < lo < hi and 0 < t["seconds"][0] < t["seconds"][1]
    assert steps_for(100, load_config(None, TrainRecipeConfig, ["train.max_steps=7"]).train) == 7


def test_unknown_model_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="no config.json found"):
        model_shape("someone/not-a-cached-model")
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(UserError, match="not a decoder config"):
        model_shape("x", bad)


def test_cli_prints_fit_verdict_for_each_arm(capsys, tmp_path):
    from emergent.cli import main

    rc = main(["estimate", str(REPO / "configs/arms/insecure.yaml"),
               str(REPO / "configs/train/qwen25_0.5b.yaml"), "data.path=nowhere.jsonl",
               "--examples", "6000", "--mean-tokens", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("fits 24 GB:") == 2
    assert "fits 24 GB: YES" in out and "steps: 375 optimizer steps" in out
    assert "RTX 4090 24GB" in out and "h per arm" in out
    rc = main(["estimate", str(REPO / "configs/train/qwen25_0.5b.yaml"), "--json",
               "data.path=nowhere.jsonl"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["fits"] is True and rep["shape"]["hidden_size"] == 896
    assert set(KNOWN_CONFIGS) >= {"Qwen/Qwen2.5-Coder-32B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"}
    assert main(["estimate", str(tmp_path / "none.yaml")]) == 2
