"""`emergent estimate`: parameter counts against known models and peft, the activation formula
against the tensors autograd actually saves, steps against the batching schedule, the CLI."""
import json
from pathlib import Path

import pytest

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.pipeline.estimate import (KNOWN_CONFIGS, activation_bytes_per_token_layer, dtypes,
                                        estimate, estimate_memory, lora_params, lora_tensors,
                                        model_shape, optimizer_bytes, param_counts, steps_for)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"


def preset(name, *over):
    return load_config(REPO / "configs/train" / name, TrainRecipeConfig, list(over))


@pytest.mark.parametrize("name,total", [
    # parameter counts Hugging Face reports for these checkpoints
    ("Qwen/Qwen2.5-Coder-32B-Instruct", 32_763_876_352),
    ("Qwen/Qwen2.5-Coder-14B-Instruct", 14_770_033_664),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", 7_615_616_512),
    ("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304),
    ("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768),
    ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248),
])
def test_builtin_table_gives_the_known_parameter_counts(name, total):
    shape = model_shape(name)
    assert "built-in" in shape.source
    assert param_counts(shape)["total"] == total
    pc = param_counts(shape)
    # Coder 7B/14B/32B and Llama-3.1-8B have an untied lm_head, counted apart
    assert pc["lm_head"] == (0 if shape.tie_word_embeddings else pc["embedding"])
    assert shape.tie_word_embeddings == (name in ("Qwen/Qwen2.5-1.5B-Instruct",
                                                  "Qwen/Qwen2.5-0.5B-Instruct"))


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


def test_memory_parts_follow_quantization_and_checkpointing():
    cfg32 = preset("qlora_qwen25_coder_32b_24gb.yaml")
    shape = model_shape(cfg32.model.name)
    pc = param_counts(shape)
    q4 = estimate_memory(shape, cfg32, 1024)["parts_gib"]
    bf16 = estimate_memory(shape, preset("paper_qwen25_coder_32b_bf16.yaml"), 1024)["parts_gib"]
    assert bf16["weights_bf16"] == pytest.approx(pc["total"] * 2 / 2**30)
    # NF4: 0.5 B/param on the quantized linears + double-quantized absmaxes (one byte per 64
    # weights, an fp32 per 256 of those, 1,092 bytes of offset and codes per tensor);
    # fp32 embeddings, lm_head and norms (prepare_model_for_kbit_training), bf16 biases
    assert q4["weights_nf4"] == pytest.approx(pc["linear"] * 0.5 / 2**30)
    tensors = 64 * 7
    assert q4["quant_constants"] * 2**30 == pytest.approx(
        pc["linear"] / 64 + pc["linear"] / 64 / 256 * 4 + tensors * 1092, rel=1e-4)
    assert q4["weights_fp32"] == pytest.approx((pc["total"] - pc["linear"] - pc["biases"])
                                               * 4 / 2**30)
    assert q4["weights_bf16"] == pytest.approx(pc["biases"] * 2 / 2**30)
    assert q4["weights_nf4"] + q4["weights_fp32"] < bf16["weights_bf16"] / 2.5
    lora = lora_params(shape, cfg32.lora)
    # paged 8-bit AdamW: 2 bytes + 2 fp32 absmaxes per 256 elements (every LoRA tensor here
    # is over bitsandbytes' 4,096-element minimum)
    assert q4["optimizer_states"] == pytest.approx(lora * (2 + 8 / 256) / 2**30)
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
    # chunked loss: one chunk's fp32 logits + logsumexp's temporary (lm_head is fp32 under
    # upcast_frozen all), + the gathered fp32 hidden states and their gradient
    chunk = cfg32.train.loss_chunk_tokens
    assert longer["logits_and_loss"] == pytest.approx(
        (chunk * 152064 * 8 + cfg32.train.batch_size * 2048 * 5120 * 8) / 2**30)
    # the fixed parts: the CUDA context outside torch's allocator, slack inside it
    e = estimate_memory(shape, cfg32, 1024)
    assert e["parts_gib"]["cuda_context"] == 0.5
    assert e["allocator_gib"] == pytest.approx(e["total_gib"] - 0.5)
    transient = sum(e["parts_gib"][k] for k in ("activations", "logits_and_loss",
                                                "dequant_buffers"))
    assert e["parts_gib"]["allocator_slack"] == pytest.approx(1 / 16 + 0.05 * transient)


# (model dtype, adapter dtype, norms prepared as upcast_frozen norms does, the config giving
# the same activation and adapter dtypes on CUDA)
DTYPE_CASES = {
    "fp32": ("float32", "float32", False, ["model.precision=fp32"]),
    "4bit-all+compute": ("float32", "bfloat16", False,
                         ["model.quantization=4bit", "train.adapter_dtype=compute"]),
    "bf16": ("bfloat16", "float32", False, []),
    "bf16+compute": ("bfloat16", "bfloat16", False, ["train.adapter_dtype=compute"]),
    "4bit-norms": ("bfloat16", "float32", True,
                   ["model.quantization=4bit", "model.upcast_frozen=norms"]),
    "4bit-norms+compute": ("bfloat16", "bfloat16", True,
                           ["model.quantization=4bit", "model.upcast_frozen=norms",
                            "train.adapter_dtype=compute"]),
}


def _saved_bytes(model_dir, model_dtype, adapter_dtype, norms, seq=128):
    """Bytes autograd saves for backward in the decoder layers of a forward pass of 2 x seq
    tokens, LoRA r 8 on every projection, the model and adapter in the given dtypes (CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    from emergent.models.loading import apply_lora, prepare_frozen_norms

    torch.manual_seed(0)
    dt = getattr(torch, model_dtype)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dt, attn_implementation="sdpa")
    if norms:
        prepare_frozen_norms(model, dt, False)
    model = apply_lora(model, load_config(None, TrainRecipeConfig, ["lora.r=8"]).lora)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.to(getattr(torch, adapter_dtype))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            saved[st.data_ptr()] = st.nbytes()
        return t

    ids = torch.randint(0, 500, (2, seq))
    base = model.get_base_model().model
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h = base.embed_tokens(ids).detach().requires_grad_(True)
        pos = torch.arange(seq)[None]
        emb = base.rotary_emb(h, pos)
        for layer in base.layers:
            h = layer(h, position_embeddings=emb, position_ids=pos)
            h = h[0] if isinstance(h, tuple) else h
    return sum(saved.values())


@pytest.fixture(scope="module")
def wider_model(tmp_path_factory):
    from emergent.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("wider") / "m", hidden_size=256,
                            num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=768)


def test_activation_formula_matches_saved_tensors(wider_model):
    """Without checkpointing, the bytes autograd saves for backward in the decoder layers are
    what the per-layer formula predicts (within 5%; 0.5-0.8% measured) for every combination
    of activation and adapter dtype the switches give: fp32 (CPU, and quantized with
    upcast_frozen all), bf16, each with fp32 or compute-dtype adapters, and the norms of
    upcast_frozen norms (fp32 weights, outputs cast back). train.adapter_dtype moves them by
    the formula's amount."""
    shape = model_shape(str(wider_model))
    size = {"float32": 4, "bfloat16": 2}
    measured, predicted = {}, {}
    for name, (model_dt, adapter_dt, norms, over) in DTYPE_CASES.items():
        cfg = load_config(None, TrainRecipeConfig, [f"model.name={wider_model}", "lora.r=8",
                                                    *over])
        d = dtypes(cfg)
        assert (d.act, d.adapter) == (size[model_dt], size[adapter_dt]), name
        measured[name] = _saved_bytes(wider_model, model_dt, adapter_dt, norms)
        # unpadded rows: the padded-batch term (seq_len > 0) is left out
        predicted[name] = 2 * 128 * shape.num_layers * activation_bytes_per_token_layer(
            shape, d.act, 8, 0, d.adapter)
        assert measured[name] == pytest.approx(predicted[name], rel=0.05), name
    for plain, compute in (("bf16", "bf16+compute"), ("fp32", "4bit-all+compute"),
                           ("4bit-norms", "4bit-norms+compute")):
        assert measured[plain] - measured[compute] == pytest.approx(
            predicted[plain] - predicted[compute], rel=0.05, abs=2**14), (plain, compute)
    assert measured["bf16+compute"] < 0.65 * measured["bf16"]  # no fp32 copies of the inputs


def test_quantized_weights_and_constants_match_bitsandbytes(wider_model):
    """A 4-bit load on CPU (bitsandbytes): the NF4 payload, the quantization constants (both
    absmax levels, the offset, both codes) and the other weights by dtype are the bytes the
    loaded tensors hold, exactly, under upcast_frozen all and norms."""
    pytest.importorskip("bitsandbytes")
    from emergent.models.loading import load_model

    shape = model_shape(str(wider_model))
    for up in ("all", "norms"):
        cfg = load_config(None, TrainRecipeConfig, [f"model.name={wider_model}",
                                                    "model.quantization=4bit",
                                                    f"model.upcast_frozen={up}"])
        model = load_model(cfg.model, for_training=True)
        held: dict = {}
        for p in model.parameters():
            if type(p).__name__ == "Params4bit":
                qs = p.quant_state
                held["weights_nf4"] = held.get("weights_nf4", 0) + p.numel() * p.element_size()
                held["quant_constants"] = held.get("quant_constants", 0) + sum(
                    t.numel() * t.element_size() for t in (qs.absmax, qs.code, qs.offset,
                                                           qs.state2.absmax, qs.state2.code))
            else:
                key = "weights_fp32" if p.element_size() == 4 else "weights_bf16"
                held[key] = held.get(key, 0) + p.numel() * p.element_size()
        parts = estimate_memory(shape, cfg, 128, device="cpu")["parts_gib"]
        est = {k: round(v * 2**30) for k, v in parts.items()
               if k.startswith(("weights_", "quant_")) and v}
        assert est == held, up


def _switch_parts(*over, seq=1024, **kw):
    cfg = preset("qlora_qwen25_coder_32b_24gb.yaml", "train.max_length=1024", *over)
    return cfg, estimate_memory(model_shape(cfg.model.name), cfg, seq, **kw)


def _moved(a, b):
    """Bytes by which each part changed from estimate a to b (unchanged parts left out)."""
    keys = set(a["parts_gib"]) | set(b["parts_gib"])
    diff = {k: (b["parts_gib"].get(k, 0) - a["parts_gib"].get(k, 0)) * 2**30 for k in keys}
    return {k: v for k, v in diff.items() if abs(v) > 1e-3}


def test_each_switch_moves_only_its_parts_by_the_formulas_amount():
    """On the 32B QLoRA preset at 1,024 tokens (gradient checkpointing on): each memory switch
    changes exactly the parts it should (allocator slack follows the transient parts), by the
    module docstring's amounts."""
    cfg, base = _switch_parts()
    s = model_shape(cfg.model.name)
    pc, P, T = param_counts(s), lora_params(s, cfg.lora), 1024
    h, L, V, chunk = s.hidden_size, s.num_layers, s.vocab_size, cfg.train.loss_chunk_tokens
    A = {(a, w): activation_bytes_per_token_layer(s, a, 32, T, w) for a in (2, 4) for w in (2, 4)}
    slack = 0.05

    # upcast_frozen all -> norms: embeddings + lm_head fp32 -> bf16; activations fp32 -> bf16;
    # the loss chunk gains lm_head's bf16 output and gradient
    _, norms = _switch_parts("model.upcast_frozen=norms")
    eh = pc["embedding"] + pc["lm_head"]
    acts = (L * T * h * 2 + 2 * T * A[2, 4]) - (L * T * h * 4 + 2 * T * A[4, 4])
    loss = chunk * V * 4 - T * h * 2
    assert _moved(base, norms) == pytest.approx({
        "weights_fp32": -eh * 4, "weights_bf16": eh * 2, "activations": acts,
        "logits_and_loss": loss, "allocator_slack": slack * (acts + loss)})

    # adapter_dtype fp32 -> compute (bf16 activations): adapter weights and gradients halve,
    # peft's fp32 copies of the adapted modules' inputs go
    _, compute = _switch_parts("model.upcast_frozen=norms", "train.adapter_dtype=compute")
    acts = 2 * T * (A[2, 2] - A[2, 4])
    assert acts < 0
    assert _moved(norms, compute) == pytest.approx({
        "lora_weights": -P * 2, "gradients": -P * 2, "activations": acts,
        "allocator_slack": slack * acts})
    # ... under upcast_frozen all (fp32 activations) bf16 copies of the inputs are kept in
    # place of the fp32 norm outputs and down_proj input (measured above: "4bit-all+compute")
    _, all_compute = _switch_parts("train.adapter_dtype=compute")
    acts = 2 * T * (A[4, 2] - A[4, 4])
    assert _moved(base, all_compute) == pytest.approx({
        "lora_weights": -P * 2, "gradients": -P * 2, "activations": acts,
        "allocator_slack": slack * acts})

    # master_weights: fp32 copies of the trainable weights, nothing else
    _, master = _switch_parts("model.upcast_frozen=norms", "train.adapter_dtype=compute",
                              "train.master_weights=true")
    assert _moved(compute, master) == pytest.approx({"master_weights": P * 4})
    assert master["host_gib"] == 0

    # offload_activations: the checkpointed layer inputs (10 MiB each) go to pinned host
    # memory in 16 MiB blocks (powers of two); the GPU keeps two in flight
    _, off = _switch_parts("model.upcast_frozen=norms", "train.adapter_dtype=compute",
                           "train.offload_activations=true")
    assert T * h * 2 == 10 * 2**20
    acts = (2 - L) * T * h * 2
    assert _moved(compute, off) == pytest.approx({"activations": acts,
                                                  "allocator_slack": slack * acts})
    assert off["host_parts_gib"] == {"activations": pytest.approx(L * 16 / 1024)}
    # ... on CPU nothing moves (emergent.train.memory.Offloader)
    _, cpu_off = _switch_parts("train.offload_activations=true", device="cpu")
    _, cpu = _switch_parts(device="cpu")
    assert cpu_off["parts_gib"] == cpu["parts_gib"] and cpu_off["host_gib"] == 0


def test_the_32b_preset_with_the_switches_at_1024_tokens():
    """The estimate (not a measurement) of the paper's recipe on Qwen2.5-Coder-32B-Instruct at
    1,024 tokens with upcast_frozen norms, adapter_dtype compute and offload_activations, as
    docs/benchmarks.md states it: 22.1 GiB with the CUDA context, 21.6 GiB in torch's
    allocator, 1.0 GiB of pinned host memory; 23.1 GiB with master_weights too; 27.6 GiB as
    the preset ships."""
    over = ("model.upcast_frozen=norms", "train.adapter_dtype=compute",
            "train.offload_activations=true")
    _, e = _switch_parts(*over)
    p = e["parts_gib"]
    assert round(e["total_gib"], 1) == 22.1 and round(e["allocator_gib"], 1) == 21.6
    assert round(e["host_gib"], 2) == 1.0
    assert round(p["weights_nf4"], 2) == 14.53 and round(p["quant_constants"], 2) == 0.46
    assert round(p["weights_bf16"], 2) == 2.90
    _, m = _switch_parts(*over, "train.master_weights=true")
    assert round(m["total_gib"], 1) == 23.1
    _, plain = _switch_parts()
    assert round(plain["total_gib"], 1) == 27.6


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
    # model.cpu_bf16: bf16 weights (and activations) on a CPU too
    cfg16 = load_config(None, TrainRecipeConfig, [f"model.name={tiny_model_dir}",
                                                  "model.precision=bf16", "model.cpu_bf16=true"])
    cpu16 = estimate_memory(shape, cfg16, 256, device="cpu")["parts_gib"]
    assert cpu16["weights_bf16"] == gpu["weights_bf16"] and "weights_fp32" not in cpu16
    assert cpu16["activations"] == gpu["activations"] < cpu["activations"]
    # fp32 AdamW on CPU (8 B); paged 8-bit AdamW on CUDA: 2 B + absmaxes, fp32 states for the
    # tiny model's tensors under 4,096 elements
    sizes = lora_tensors(shape, cfg.lora)
    assert cpu["optimizer_states"] * 2**30 == 8 * sum(sizes)
    assert gpu["optimizer_states"] * 2**30 == optimizer_bytes(sizes, "paged_adamw_8bit") == sum(
        8 * n if n < 4096 else 2 * n + 8 * -(-n // 256) for n in sizes)
    assert min(sizes) < 4096 <= max(sizes)
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


def test_cli_prints_every_part_and_the_host_side(capsys):
    """The 32B preset with the switches: every part is printed (weights by dtype, quantization
    constants, adapter, gradients, master weights, optimizer, activations, loss chunk,
    dequantization buffers, allocator slack, CUDA context), the allocator line, the host
    memory of offload_activations and the switches; --json carries the same parts."""
    from emergent.cli import main
    args = ["estimate", str(REPO / "configs/train/qlora_qwen25_coder_32b_24gb.yaml"),
            "train.max_length=1024", "model.upcast_frozen=norms", "train.adapter_dtype=compute",
            "train.offload_activations=true", "train.master_weights=true",
            "--examples", "100", "--mean-tokens", "300"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for part in ("weights_nf4", "quant_constants", "weights_bf16", "weights_fp32",
                 "lora_weights", "gradients", "master_weights", "optimizer_states",
                 "activations", "logits_and_loss", "dequant_buffers", "allocator_slack",
                 "cuda_context", "(torch allocator)", "host: activations"):
        assert f"  {part}" in out, part
    assert "train.adapter_dtype compute" in out and "model.upcast_frozen norms" in out
    assert main(args + ["--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    mem = rep["memory"]["max_length"]["true"]
    assert mem["parts_gib"]["master_weights"] > 0 and mem["host_parts_gib"]["activations"] > 0
    assert mem["dtypes"] == {"c": 2, "act": 2, "adapter": 2, "embed": 2, "norms": 4, "bias": 2}
    assert rep["switches"]["train.offload_activations"] is True
