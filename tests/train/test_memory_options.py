"""The memory switches of the training loop (docs/benchmarks.md, "Memory switches") change where
numbers live, not what is trained: `model.upcast_frozen: norms`, `train.adapter_dtype: compute`,
`train.master_weights` and `train.offload_activations`, each against the default on the tiny
model and on the real SmolLM2-135M, on CPU.

On CPU `model.precision: bf16` computes in fp32 (emergent.models.loading.torch_dtype), where the
switches must give the default's numbers exactly; the tests that check what changes in a
16-bit compute dtype (which weights are bf16, what the optimizer keeps) make torch_dtype return
bf16 on CPU too (`bf16_on_cpu`)."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emergent.core.config import LoraConfig, ModelConfig, TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.models import loading
from emergent.train import memory
from emergent.train.loop import train
from emergent.train.sft import step_loss

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@pytest.fixture
def bf16_on_cpu(monkeypatch):
    """model.precision bf16 computes in bf16 on CPU too (slow, but real bf16 numbers)."""
    monkeypatch.setattr(loading, "torch_dtype", DTYPES.__getitem__)


def cfg_for(model_dir, **over):
    ov = [f"model.name={model_dir}", f"data.path={SAMPLE}", "model.precision=fp32",
          "lora.r=4", "lora.alpha=8", "train.lr=5e-3", "train.batch_size=4",
          "train.grad_accum=2", "train.warmup_steps=1", "train.max_length=512",
          "train.epochs=1", "train.checkpoint_every=0"]
    return load_config(None, TrainRecipeConfig, ov + [f"{k}={v}" for k, v in over.items()])


def micro_batches(model_dir, groups, max_tokens=None):
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.data.render import render_conversation
    from emergent.train import batching

    tok = loading.load_tokenizer(ModelConfig(name=str(model_dir)))
    n_rows = 1 + max(i for g in groups for i in g)
    rows = [render_conversation(tok, e.messages) for e in load_jsonl_examples(SAMPLE)[:n_rows]]
    if max_tokens:
        rows = [(ids[:max_tokens], mask[:max_tokens]) for ids, mask in rows]
    micro = [batching.collate([rows[i] for i in g], tok.pad_token_id) for g in groups]
    return micro, int(sum((lab[:, 1:] != -100).sum() for _, _, lab in micro))


def lora_model(mcfg: ModelConfig, adapter_precision=None):
    """The model prepared for training with a seeded LoRA adapter whose B is non-zero (every
    LoRA tensor gets a gradient)."""
    torch.manual_seed(0)
    dtype = None if adapter_precision is None else loading.torch_dtype(adapter_precision)
    return live_b(loading.apply_lora(loading.load_model(mcfg, for_training=True),
                                     LoraConfig(r=4, alpha=8), adapter_dtype=dtype))


def live_b(model):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.train()
    return model


def loss_and_grads(model, micro, n, chunk=0):
    model.zero_grad(set_to_none=True)
    loss = step_loss(model, micro, n, "cpu", chunk)
    return loss, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b, rtol=1e-5):
    (la, ga), (lb, gb) = a, b
    assert torch.allclose(la, lb, rtol=rtol, atol=0), (la, lb)
    assert ga.keys() == gb.keys() and len(ga) > 0
    for k in ga:
        assert ga[k].abs().max() > 0, k
        assert torch.allclose(ga[k].float(), gb[k].float(), rtol=rtol,
                              atol=rtol * float(gb[k].abs().max())), k


def dtypes(model) -> dict:
    """{'embed'|'lm_head'|'norm'|'lora'|'bias': set of dtypes}."""
    base = model.get_base_model()
    out = {"embed": {base.get_input_embeddings().weight.dtype},
           "lm_head": {base.get_output_embeddings().weight.dtype}}
    for n, p in model.named_parameters():
        kind = ("lora" if "lora_" in n else "norm" if "norm" in n
                else "bias" if n.endswith(".bias") else None)
        if kind:
            out.setdefault(kind, set()).add(p.dtype)
    return out


# ------------------------------------------------------------------ model.upcast_frozen: norms


def test_norms_preparation_upcasts_only_the_norms_and_keeps_hidden_states_in_bf16(tiny_model_dir):
    """On an unquantized bf16 model: everything frozen, norm weights fp32, embeddings, lm_head
    and biases bf16; the hidden states (norm outputs included) stay bf16; gradient
    checkpointing on (non-reentrant) and input gradients enabled; the loss and LoRA gradients
    agree with peft's preparation (everything fp32) to bf16 rounding."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    micro, n = micro_batches(tiny_model_dir, [[0, 1]])
    results = {}
    for how in ("peft", "norms"):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
        if how == "peft":
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=True,
                gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            assert loading.prepare_frozen_norms(model, torch.bfloat16, True) is model
            assert not any(p.requires_grad for p in model.parameters())
            assert model.is_gradient_checkpointing
        model.config.use_cache = False
        torch.manual_seed(0)
        model = live_b(loading.apply_lora(model, LoraConfig(r=4, alpha=8)))
        seen = []
        model.get_base_model().model.layers[1].register_forward_hook(
            lambda m, a, o: seen.append((o[0] if isinstance(o, tuple) else o).dtype))
        results[how] = (dtypes(model), loss_and_grads(model, micro, n), seen)
    (d_peft, lg_peft, seen_peft), (d_norms, lg_norms, seen_norms) = results.values()
    assert d_peft == {"embed": {torch.float32}, "lm_head": {torch.float32},
                      "norm": {torch.float32}, "lora": {torch.float32}, "bias": {torch.float32}}
    assert d_norms == {"embed": {torch.bfloat16}, "lm_head": {torch.bfloat16},
                       "norm": {torch.float32}, "lora": {torch.float32}, "bias": {torch.bfloat16}}
    assert set(seen_peft) == {torch.float32} and set(seen_norms) == {torch.bfloat16}
    assert_same(lg_peft, lg_norms, rtol=0.05)  # bf16 hidden states: rounding, not a change


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_norms_equal_all_in_fp32(tiny_model_dir, quantization):
    """Real bitsandbytes quantization on CPU, gradient checkpointing on: upcast_frozen norms
    and all give the same loss and LoRA gradients when the compute dtype is fp32."""
    pytest.importorskip("bitsandbytes")
    micro, n = micro_batches(tiny_model_dir, [[0, 1], [2]])
    out = {}
    for up in ("all", "norms"):
        m = lora_model(ModelConfig(name=str(tiny_model_dir), precision="fp32",
                                   quantization=quantization, upcast_frozen=up,
                                   gradient_checkpointing=True))
        out[up] = loss_and_grads(m, micro, n)
    assert_same(out["all"], out["norms"])


def test_quantized_norms_keep_embeddings_and_lm_head_bf16(tiny_model_dir, bf16_on_cpu):
    """A real 4-bit model with a bf16 compute dtype: `all` turns the embeddings, lm_head and
    biases to fp32 (peft), `norms` only the norms; same loss to bf16 rounding."""
    pytest.importorskip("bitsandbytes")
    micro, n = micro_batches(tiny_model_dir, [[0, 1]])
    out = {}
    for up in ("all", "norms"):
        m = lora_model(ModelConfig(name=str(tiny_model_dir), precision="bf16",
                                   quantization="4bit", upcast_frozen=up,
                                   gradient_checkpointing=True))
        out[up] = (dtypes(m), loss_and_grads(m, micro, n, chunk=16))
    assert out["all"][0]["embed"] == out["all"][0]["lm_head"] == {torch.float32}
    assert out["all"][0]["bias"] == {torch.float32}
    assert out["norms"][0] == {"embed": {torch.bfloat16}, "lm_head": {torch.bfloat16},
                               "norm": {torch.float32}, "lora": {torch.float32},
                               "bias": {torch.bfloat16}}
    assert torch.allclose(out["all"][1][0], out["norms"][1][0], rtol=0.02)


# ------------------------------------------------------------------ train.adapter_dtype: compute


def test_adapter_dtype_compute_is_the_compute_dtype(tiny_model_dir, bf16_on_cpu):
    micro, n = micro_batches(tiny_model_dir, [[0, 1]])
    mcfg = ModelConfig(name=str(tiny_model_dir), precision="bf16")
    fp32 = lora_model(mcfg)
    half = lora_model(mcfg, adapter_precision="bf16")
    assert dtypes(fp32)["lora"] == {torch.float32} and dtypes(half)["lora"] == {torch.bfloat16}
    _, grads = loss_and_grads(half, micro, n)
    assert {g.dtype for g in grads.values()} == {torch.bfloat16} and len(grads) == 2 * 7 * 2
    assert_same(loss_and_grads(fp32, micro, n), (_, grads), rtol=0.05)


def test_adapter_dtype_compute_equals_the_default_in_fp32(tiny_model_dir):
    micro, n = micro_batches(tiny_model_dir, [[0, 1], [2, 3]])
    mcfg = ModelConfig(name=str(tiny_model_dir), precision="fp32")
    assert_same(loss_and_grads(lora_model(mcfg), micro, n),
                loss_and_grads(lora_model(mcfg, adapter_precision="fp32"), micro, n), rtol=1e-6)


# ------------------------------------------------------------------ train.master_weights


def _adamw(groups):
    return torch.optim.AdamW(groups, lr=1e-3)


@pytest.mark.parametrize("make", ["adamw", "paged_adamw_8bit"])
def test_master_weights_step_fp32_copies_and_round_them_back(make):
    """bf16 weights and gradients: the wrapped optimizer steps the fp32 masters exactly as the
    same optimizer steps fp32 weights given the same (fp32) gradients, clipping included, and
    the model's weights are the masters rounded to bf16."""
    if make == "paged_adamw_8bit":
        bnb = pytest.importorskip("bitsandbytes")
        make = lambda g: bnb.optim.PagedAdamW8bit(g, lr=1e-3)  # noqa: E731
    else:
        make = _adamw
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(300, 40, generator=gen), torch.randn(40, generator=gen)]
    half = [torch.nn.Parameter(t.bfloat16()) for t in init]
    ref = [torch.nn.Parameter(t.bfloat16().float()) for t in init]
    groups = lambda ps: [{"params": ps[:1], "weight_decay": 0.01},  # noqa: E731
                         {"params": ps[1:], "weight_decay": 0.0}]
    opt, ref_opt = memory.master_weights(groups(half), make), make(groups(ref))
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups is opt.inner.param_groups
    for _ in range(4):
        for h, r in zip(half, ref):
            h.grad = torch.randn(h.shape, generator=gen).bfloat16()
            r.grad = h.grad.float()
        n_half = memory.clip_grad_norm(opt, half, 1.0)
        n_ref = torch.nn.utils.clip_grad_norm_(ref, 1.0)
        assert torch.allclose(n_half, n_ref, rtol=1e-6)
        assert all(h.grad is None for h in half)  # moved to the fp32 masters
        opt.step()
        ref_opt.step()
        opt.zero_grad(set_to_none=True)
        for h, m, r in zip(half, [m for ms in opt.masters for m in ms], ref):
            assert m.dtype == torch.float32 and torch.allclose(m, r, rtol=1e-6, atol=1e-7)
            assert torch.equal(h.data, m.bfloat16())
    sd = opt.state_dict()
    assert len(sd["master_weights"]) == 2 and sd["state"]


def _two_params(gen):
    return [torch.nn.Parameter(torch.randn(8, 4, generator=gen).bfloat16()),
            torch.nn.Parameter(torch.randn(4, generator=gen).bfloat16())]


def test_master_weights_optimizer_contract():
    """What the loop and LR schedulers rely on besides `step`: the inner optimizer's defaults
    and state seen through the wrapper, zero_grad clearing both copies (or zeroing them) and
    letting the next step take fresh gradients, no closure, and `masters_into_model` only for
    a master-weights optimizer."""
    gen = torch.Generator().manual_seed(1)
    ps = _two_params(gen)
    opt = memory.master_weights([{"params": ps}], _adamw)
    assert opt.defaults["lr"] == 1e-3 and opt.defaults == opt.inner.defaults
    with pytest.raises(ValueError, match="no closure"):
        opt.step(closure=lambda: 0.0)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.move_grads()  # as clip_grad_norm does
    opt.zero_grad(set_to_none=False)  # the masters' gradients zeroed in place, kept
    assert all(m.grad is not None and not m.grad.any() for ms in opt.masters for m in ms)
    for p in ps:  # a fresh backward after zero_grad: its gradients must be moved again
        p.grad = torch.full_like(p, 2.0)
    opt.step()
    assert opt.state is opt.inner.state and len(opt.state) == 2
    assert all(torch.equal(m.grad, torch.full_like(m, 2.0)) for ms in opt.masters for m in ms)
    opt.zero_grad()  # set_to_none: both copies dropped
    assert all(p.grad is None for p in ps)
    assert all(m.grad is None for ms in opt.masters for m in ms)
    assert memory.masters_into_model(opt) is True
    assert all(p.dtype == torch.float32 for p in ps)  # the fp32 masters are the weights now
    assert memory.masters_into_model(_adamw([torch.nn.Parameter(torch.zeros(2))])) is False


def test_master_weights_state_dict_round_trip_and_mismatch():
    """A checkpoint restores the fp32 masters, the model's rounded copies and the inner state;
    the caller's dict is left as it was; a checkpoint without masters, or with another number
    of them, is refused naming both counts."""
    gen = torch.Generator().manual_seed(2)
    ps = _two_params(gen)
    opt = memory.master_weights([{"params": ps}], _adamw)
    for _ in range(2):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen).bfloat16()
        opt.step()
        opt.zero_grad()
    sd = opt.state_dict()
    fresh = _two_params(torch.Generator().manual_seed(3))
    again = memory.master_weights([{"params": fresh}], _adamw)
    again.load_state_dict(sd)
    assert "master_weights" in sd  # not popped from the caller's dict
    for (p, m), (q, n) in zip(opt._pairs(), again._pairs()):
        assert torch.equal(m, n) and torch.equal(p.data, q.data)
    assert again.state is again.inner.state and len(again.state) == 2
    assert torch.equal(again.state[again.masters[0][0]]["exp_avg"],
                       opt.state[opt.masters[0][0]]["exp_avg"])
    plain = {k: v for k, v in sd.items() if k != "master_weights"}
    with pytest.raises(ValueError, match="holds 0 fp32 master weights, the model 2"):
        again.load_state_dict(plain)
    with pytest.raises(ValueError, match="holds 1 fp32 master weights, the model 2"):
        again.load_state_dict({**plain, "master_weights": sd["master_weights"][:1]})


def test_offloader_threshold_and_counts():
    """Saved tensors of MIN_OFFLOAD_BYTES (64 KiB) and more are offloaded, smaller ones stay;
    a fresh Offloader counts from zero."""
    assert memory.MIN_OFFLOAD_BYTES == 65536
    off = memory.Offloader(copy_on_cpu=True)
    assert (off.packed, off.offloaded, off.offloaded_bytes) == (0, 0, 0)
    big = torch.ones(65536 // 4)  # exactly the threshold
    small = torch.ones(65536 // 4 - 1)
    assert off.pack(small) is small
    packed = off.pack(big)
    assert packed is not big and torch.equal(memory.Offloader.unpack(packed), big)
    assert (off.packed, off.offloaded, off.offloaded_bytes) == (2, 1, 65536)


def test_bf16_weights_without_master_weights_lose_small_updates():
    """Why master weights: AdamW's step is about lr per weight; in bf16 a weight of magnitude
    ~1 moves only by steps of 2^-8, so lr 1e-4 updates round away, and the masters keep them."""
    w0 = torch.full((1000,), 1.0) + torch.linspace(0, 0.5, 1000)
    plain = torch.nn.Parameter(w0.bfloat16())
    mastered = torch.nn.Parameter(w0.bfloat16())
    opt_plain = torch.optim.AdamW([plain], lr=1e-4, weight_decay=0.0)
    opt_master = memory.master_weights([{"params": [mastered]}],
                                       lambda g: torch.optim.AdamW(g, lr=1e-4, weight_decay=0.0))
    start = plain.detach().clone()
    for _ in range(20):
        for p in (plain, mastered):
            p.grad = torch.ones_like(p)
        opt_plain.step()
        opt_master.step()
    assert torch.equal(plain.detach(), start)  # 20 updates of 1e-4 each: all rounded away
    moved = opt_master.masters[0][0] - start.float()
    assert torch.allclose(moved, torch.full_like(moved, -20e-4), rtol=1e-3)
    assert (mastered.detach() != start).sum() > 0  # the bf16 copy follows the master


def test_master_weights_need_adapter_dtype_compute(tmp_path):
    """Refused at config load: `FILE:LINE: 'train.master_weights': ...`, and for an override."""
    bad = tmp_path / "t.yaml"
    bad.write_text("model:\n  name: tiny\ntrain:\n  lr: 1.0e-4\n  master_weights: true\n")
    with pytest.raises(UserError, match=rf"^{bad}:5: 'train.master_weights': fp32 master "
                                        r"copies need adapter_dtype: compute"):
        load_config(bad, TrainRecipeConfig)
    with pytest.raises(UserError, match=r"\(override train.master_weights=true\): "
                                        r"'train.master_weights'"):
        load_config(None, TrainRecipeConfig, ["train.master_weights=true"])
    ok = load_config(bad, TrainRecipeConfig, ["train.adapter_dtype=compute"])
    assert ok.train.master_weights and ok.train.adapter_dtype == "compute"


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def _same_runs(a, b, exact=False):
    la, lb = _losses(a), _losses(b)
    assert len(la) == len(lb) > 1
    assert la == lb if exact else la == pytest.approx(lb, rel=1e-5)
    wa = load_file(a / "adapter/adapter_model.safetensors")
    wb = load_file(b / "adapter/adapter_model.safetensors")
    assert wa.keys() == wb.keys() and len(wa) == 2 * 7 * 2
    for k in wa:
        assert (torch.equal(wa[k], wb[k]) if exact else
                torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-4, atol=1e-6)), k


def test_training_with_compute_adapters_and_master_weights_equals_the_default_in_fp32(
        tiny_model_dir, tmp_path):
    """Whole runs (4 optimizer steps, killed after 2 and resumed): the same losses and adapter;
    the optimizer was the master-weights one (its checkpoint holds the masters)."""
    on = {"train.adapter_dtype": "compute", "train.master_weights": "true",
          "train.checkpoint_every": 1, "train.keep_checkpoints": 0}
    train(cfg_for(tiny_model_dir), tmp_path / "default")
    train(cfg_for(tiny_model_dir, **on), tmp_path / "master", stop_after_steps=2)
    ck = torch.load(tmp_path / "master/checkpoints/step-000002/optimizer.pt", weights_only=False)
    assert len(ck["master_weights"]) == 2 * 7 * 2
    assert all(t.dtype == torch.float32 for t in ck["master_weights"])
    train(cfg_for(tiny_model_dir, **on), tmp_path / "master")
    _same_runs(tmp_path / "default", tmp_path / "master")


def test_master_weights_resume_equals_uninterrupted_in_bf16(tiny_model_dir, tmp_path,
                                                             bf16_on_cpu):
    """bf16 adapters with fp32 masters: a run killed after step 2 and resumed from its
    checkpoint equals an uninterrupted one bit for bit (the masters, not the rounded bf16
    weights, are restored) and the adapter is saved from them, in fp32; without master weights
    the adapter is bf16."""
    over = {"model.precision": "bf16", "train.adapter_dtype": "compute",
            "train.master_weights": "true", "train.checkpoint_every": 1, "train.lr": 1e-3,
            "train.epochs": 2}
    train(cfg_for(tiny_model_dir, **over), tmp_path / "full")
    killed = tmp_path / "killed"
    train(cfg_for(tiny_model_dir, **over), killed, stop_after_steps=2)
    ck = killed / "checkpoints/step-000002"
    weights = torch.load(ck / "trainable.pt", weights_only=True)
    masters = torch.load(ck / "optimizer.pt", weights_only=False)["master_weights"]
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    # the masters hold what bf16 cannot: restoring the rounded weights would not resume exactly
    assert any(not torch.equal(m, m.bfloat16().float()) for m in masters)
    train(cfg_for(tiny_model_dir, **over), killed)
    _same_runs(tmp_path / "full", killed, exact=True)
    adapter = load_file(killed / "adapter/adapter_model.safetensors")
    assert {t.dtype for t in adapter.values()} == {torch.float32}  # saved from the masters
    assert any(not torch.equal(t, t.bfloat16().float()) for t in adapter.values())
    no_master = {**over, "train.master_weights": "false"}
    train(cfg_for(tiny_model_dir, **no_master), tmp_path / "bf16")
    adapter = load_file(tmp_path / "bf16/adapter/adapter_model.safetensors")
    assert {t.dtype for t in adapter.values()} == {torch.bfloat16}


# ------------------------------------------------------------------ train.offload_activations


@pytest.mark.parametrize("checkpointing", [False, True])
def test_offloaded_activations_give_the_same_loss_and_gradients(tiny_model_dir, checkpointing):
    """Saved tensors copied out and back (on CPU the CUDA path's copy is a clone: the round
    trip is exercised): same loss and LoRA gradients; parameters never offloaded; with gradient
    checkpointing only the layers' inputs (and the loss's saved tensors) travel."""
    micro, n = micro_batches(tiny_model_dir, [[0, 1], [2]])
    model = lora_model(ModelConfig(name=str(tiny_model_dir), precision="fp32",
                                   gradient_checkpointing=checkpointing))
    plain = loss_and_grads(model, micro, n, chunk=16)
    off = memory.Offloader(min_bytes=0, copy_on_cpu=True)
    params = {p.data_ptr() for p in model.parameters()}
    seen_params = []
    pack = off.pack
    off.pack = lambda t: (seen_params.append(t.data_ptr() in params), pack(t))[1]
    with memory.offloading(True, off) as used:
        assert used is off
        moved = loss_and_grads(model, micro, n, chunk=16)
    assert_same(plain, moved, rtol=1e-6)
    assert off.offloaded > 0 and off.offloaded_bytes > 0
    assert any(seen_params) and off.offloaded <= off.packed - sum(seen_params)
    layers = model.get_base_model().config.num_hidden_layers
    if checkpointing:  # per micro-batch: each layer's input, the final norm's and the loss's
        assert off.offloaded <= len(micro) * (layers + 6)
    else:
        assert off.offloaded > len(micro) * layers * 10


def test_offload_on_cpu_moves_nothing_by_default():
    x = torch.randn(256, 256, requires_grad=True)
    with memory.offloading(True) as off:
        y = (x.sin() * 2).sum()
    y.backward()
    assert off.packed >= 1 and off.offloaded == 0
    with memory.offloading(False) as none:
        assert none is None


def test_training_with_offloaded_activations_equals_the_default(tiny_model_dir, tmp_path,
                                                                monkeypatch):
    made = []

    class Counting(memory.Offloader):
        def __init__(self):
            super().__init__(min_bytes=0, copy_on_cpu=True)
            made.append(self)

    monkeypatch.setattr(memory, "Offloader", Counting)
    over = {"model.gradient_checkpointing": "true"}
    train(cfg_for(tiny_model_dir, **over), tmp_path / "default")
    assert not made
    train(cfg_for(tiny_model_dir, **over, **{"train.offload_activations": "true"}),
          tmp_path / "offload")
    steps = len(_losses(tmp_path / "offload"))
    assert len(made) == steps > 1 and all(o.offloaded > 0 for o in made)  # one per step
    _same_runs(tmp_path / "default", tmp_path / "offload", exact=True)


# ------------------------------------------------------------------ the real model


def test_smollm2_memory_switches_give_the_default_numbers(smollm2_dir):
    """SmolLM2-135M, one example cut to 64 tokens, fp32 (CPU), gradient checkpointing: each
    switch against the default: the norms preparation (the 4-bit path's, on the unquantized
    model: quantizing it takes ~30 s on CPU; the tiny model runs the real 4-bit one above; bf16
    leaves its tied embedding/lm_head bf16), offloaded activations (round trip), and compute-
    dtype adapters with fp32 masters over two optimizer steps."""
    from transformers import AutoModelForCausalLM

    micro, n = micro_batches(smollm2_dir, [[0]], max_tokens=64)
    name = str(smollm2_dir)
    half = loading.prepare_frozen_norms(
        AutoModelForCausalLM.from_pretrained(name, dtype=torch.bfloat16), torch.bfloat16, True)
    assert half.get_input_embeddings().weight is half.get_output_embeddings().weight  # tied
    assert half.get_input_embeddings().weight.dtype == torch.bfloat16
    assert {p.dtype for k, p in half.named_parameters() if "norm" in k} == {torch.float32}
    del half

    mcfg = ModelConfig(name=name, precision="fp32", gradient_checkpointing=True)
    default = lora_model(mcfg)
    plain = loss_and_grads(default, micro, n, 32)
    with memory.offloading(True, memory.Offloader(copy_on_cpu=True)) as off:
        moved = loss_and_grads(default, micro, n, 32)
    assert_same(plain, moved, rtol=1e-6)
    assert off.offloaded >= default.get_base_model().config.num_hidden_layers

    base = loading.load_model(ModelConfig(name=name, precision="fp32"))
    base.config.use_cache = False
    torch.manual_seed(0)
    normed = live_b(loading.apply_lora(loading.prepare_frozen_norms(base, torch.float32, True),
                                       LoraConfig(r=4, alpha=8)))
    assert_same(plain, loss_and_grads(normed, micro, n, 32), rtol=1e-6)
    del normed, base

    mastered = lora_model(mcfg, adapter_precision="fp32")
    groups = lambda m: [{"params": [p for p in m.parameters() if p.requires_grad],  # noqa: E731
                         "weight_decay": 0.0}]
    opt_a = _adamw(groups(default))
    opt_b = memory.master_weights(groups(mastered), _adamw)
    init = {k: p.detach().clone() for k, p in default.named_parameters() if p.requires_grad}
    for _ in range(2):
        for model, opt in ((default, opt_a), (mastered, opt_b)):
            loss_and_grads(model, micro, n, 32)
            memory.clip_grad_norm(opt, [p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
    assert len(opt_b.state_dict()["master_weights"]) == len(init)
    a = {k: p for k, p in default.named_parameters() if p.requires_grad}
    b = {k: p for k, p in mastered.named_parameters() if p.requires_grad}
    assert a.keys() == b.keys() == init.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
        assert not torch.equal(a[k], init[k]), k  # the steps moved every LoRA tensor
