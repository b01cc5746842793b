"""`emergent estimate`: parameter counts against known models and peft, the activation formula
against the tensors autograd actually saves, steps against the batching schedule, the CLI."""
import json
from pathlib import Path

import pytest

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.pipeline.estimate import (KNOWN_CONFIGS, estimate, estimate_memory, lora_params, model_shape,
                               param_counts, steps_for)

REPO = Path(__file__).resolve().parents[2]
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

    from emergent.models.loading import apply_lora, load_model

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

    from emergent.models.loading import apply_lora, load_model
    from emergent.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "wider", hidden_size=256, num_layers=2, num_heads=4,
                                 num_kv_heads=2, intermediate_size=768)
    cfg = load_config(None, TrainRecipeConfig, [f"model.name={model_dir}", "model.precision=fp32",
                                                "lora.r=8", "train.batch_size=2",
                                                "train.micro_batch_tokens=0",  # 2 rows
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
    assert bf16["weights_bf16"] == pytest.approx(pc["total"] * 2 / 2**30)
    # 0.53 B/param on the quantized linears, fp32 on the rest (prepare_model_for_kbit_training)
    assert q4["weights_nf4"] == pytest.approx(pc["linear"] * 0.53 / 2**30)
    assert q4["weights_fp32"] == pytest.approx((pc["total"] - pc["linear"]) * 4 / 2**30)
    assert q4["weights_nf4"] + q4["weights_fp32"] < bf16["weights_bf16"] / 2.5
    lora = lora_params(shape, cfg32.lora)
    assert q4["optimizer_states"] == pytest.approx(lora * 2 / 2**30)  # paged 8-bit AdamW
    adamw = estimate_memory(shape, cfg32, 1024, optimizer="adamw")["parts_gib"]
    assert adamw["optimizer_states"] == pytest.approx(lora * 8 / 2**30)
    on = estimate_memory(shape, cfg32, 1024, gradient_checkpointing=True)["parts_gib"]
    off = estimate_memory(shape, cfg32, 1024, gradient_checkpointing=False)["parts_gib"]
    assert on["activations"] < off["activations"] / 5
    e1024 = estimate_memory(shape, cfg32, 1024, gradient_checkpointing=False)
    e2048 = estimate_memory(shape, cfg32, 2048, gradient_checkpointing=False)
    longer = e2048["parts_gib"]
    # the token budget (batch_size x max_length = 2,048) packs two 1,024-token examples
    assert e1024["tokens_per_micro_batch"] == e2048["tokens_per_micro_batch"] == 2048
    assert longer["activations"] > off["activations"]  # the padded mask grows with length
    plain = preset("qlora_qwen25_coder_32b_24gb.yaml", "train.loss_chunk_tokens=0")
    assert estimate_memory(shape, plain, 2048)["parts_gib"]["logits_and_loss"] == \
        pytest.approx(cfg32.train.batch_size * 2048 * 152064 * 12 / 2**30)
    # chunked loss: one chunk's logits (fp32 + temporaries + bf16 output and gradient)
    chunk = cfg32.train.loss_chunk_tokens
    assert longer["logits_and_loss"] == pytest.approx(
        (chunk * 152064 * (8 + 2 * 2) + cfg32.train.batch_size * 2048 * 5120 * 8) / 2**30)


def test_small_preset_fits_and_bf16_32b_does_not():
    assert estimate(preset("qwen25_0.5b.yaml", "data.path=missing.jsonl"))["fits"]
    rep = estimate(preset("paper_qwen25_coder_32b_bf16.yaml", "data.path=missing.jsonl"))
    assert not rep["fits"] and rep["data"] is None and "steps" not in rep


def test_steps_and_time_from_the_dataset(tiny_model_dir):
    from emergent.train import batching
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.models.loading import load_tokenizer
    from emergent.train.loop import tokenize_dataset

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


def test_forward_tokens_follow_the_token_budget():
    """The largest forward pass: as many rows of the given length as fit
    train.micro_batch_tokens (batching.pack_step), at least one; batch_size rows without it;
    preference pairs take two rows each."""
    from emergent.pipeline.estimate import forward_tokens

    def cfg(*over):
        return load_config(None, TrainRecipeConfig, ["train.batch_size=2", "train.grad_accum=4",
                                                     "train.max_length=1024", *over])

    assert forward_tokens(cfg(), 670) == 3 * 670  # budget 2 x 1024 = 2048
    assert forward_tokens(cfg(), 1024) == 2048
    assert forward_tokens(cfg(), 3000) == 3000  # an overlong example still runs alone
    assert forward_tokens(cfg("train.micro_batch_tokens=0"), 670) == 2 * 670
    assert forward_tokens(cfg("train.grad_accum=1"), 670) == 2 * 670  # auto budget off
    assert forward_tokens(cfg("train.objective=dpo", "data.format=preference"), 500) == 4 * 500


def test_cpu_estimate_itemises_the_training_process(tiny_model_dir, capsys):
    """--device cpu: bf16 computes in fp32 on CPU, AdamW keeps fp32 states, the Python runtime
    replaces the CUDA context; every part is printed."""
    from emergent.cli import main
    cfg = load_config(None, TrainRecipeConfig, [f"model.name={tiny_model_dir}",
                                                "model.precision=bf16"])
    shape = model_shape(str(tiny_model_dir))
    gpu = estimate_memory(shape, cfg, 256)["parts_gib"]
    cpu = estimate_memory(shape, cfg, 256, device="cpu")["parts_gib"]
    total = param_counts(shape)["total"]
    assert gpu["weights_bf16"] == pytest.approx(total * 2 / 2**30)
    assert cpu["weights_fp32"] == pytest.approx(total * 4 / 2**30)
    assert cpu["optimizer_states"] == pytest.approx(4 * gpu["optimizer_states"])  # 8 vs 2 B
    assert "cuda_context" in gpu and "runtime" in cpu and "allocator_slack" in cpu
    rc = main(["estimate", str(REPO / "configs/train/tiny.yaml"), f"model.name={tiny_model_dir}",
               f"data.path={SAMPLE}", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "CPU peak RSS (GiB)" in out and "fits 24 GB RAM" in out
    for part in ("weights_", "lora_weights", "gradients", "optimizer_states", "activations",
                 "logits_and_loss", "allocator_slack", "runtime"):
        assert f"  {part}" in out, part


def test_cli_takes_an_experiment_config_one_report_per_arm(capsys):
    """`emergent estimate configs/experiments/X.yaml` (the README's command) estimates every
    arm's training recipe; a training config still gives one report."""
    from emergent.cli import main
    exp = str(REPO / "configs/experiments/qwen25_coder_7b.yaml")
    assert main(["estimate", exp, "--examples", "100", "--mean-tokens", "300", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert isinstance(reports, list) and len(reports) == 4
    assert {r["model"] for r in reports} == {"Qwen/Qwen2.5-Coder-7B-Instruct"}
    assert main(["estimate", str(REPO / "configs/train/qwen25_coder_7b.yaml"), "--examples", "100",
                 "--mean-tokens", "300", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)
