"""Will this training config fit my GPU, and how long will it take? (`emergent estimate CONFIG`,
the command in emergent.cli.estimate.)

Everything is computed from the model's shape (config.json from a local path or the Hugging Face
cache, never downloaded; a built-in table covers the shipped presets) and the dataset. Nothing
is loaded onto a GPU. The numbers are estimates (about +-25% for memory); the formulas:

Dtypes (`dtypes`; c = compute-dtype bytes: bf16/fp16 2, fp32 4, and 4 for bf16 on CPU unless
model.cpu_bf16):
  unquantized: weights, activations in c. Quantized (bitsandbytes), `model.upcast_frozen`:
  all  peft's prepare_model_for_kbit_training turns embeddings, lm_head and norms to fp32; the
       embedding output and the norms' outputs are fp32, and bitsandbytes' linears return their
       input's dtype, so every activation is fp32 (act = 4);
  norms only the norm weights fp32, their outputs cast back (models.loading.prepare_frozen_norms):
       embeddings, lm_head and activations in c (act = c).
  4-bit linears cast their biases to c on the first forward (8-bit ones to act).
  `train.adapter_dtype`: LoRA weights and gradients fp32 (adapter = 4) or c (adapter = c).

Weights by dtype, and the quantization constants apart:
  unquantized: total params x c. 4-bit NF4: 0.5 bytes per parameter of the blocks' linear
  layers (the payload) + quant_constants, per linear tensor of n weights with double
  quantization: ceil(n / 64) 8-bit absmaxes + 4 bytes per 256 of those + an fp32 offset and
  the two codes, 16 and 256 fp32 values (~0.0159 bytes/param). 8-bit: 1 byte/param + an fp32
  scale per output row.
  Embeddings + lm_head (an untied lm_head counted: Qwen2.5-7B/14B/32B) in embed bytes, norms
  in fp32, biases as above.

Trainable parameters P = sum over adapted modules and layers of r * (in + out):
  lora_weights P x adapter; gradients P x adapter; master_weights (`train.master_weights`: the
  optimizer steps fp32 copies, emergent.train.memory.MasterWeights) P x 4, else 0;
  optimizer_states: fp32 AdamW 8 bytes/param; paged 8-bit AdamW (the default on CUDA) 2 bytes
  + 2 fp32 absmaxes per 256 elements per tensor (2.03), fp32 (8) for tensors under 4,096
  elements (bitsandbytes' min_8bit_size). Full fine-tuning: gradients in c + the same states
  for every parameter, no adapter.

Activations, per token and per layer (h hidden, q = heads * head_dim, kv = kv_heads * head_dim,
i intermediate, a = act bytes, w = adapter bytes, r LoRA rank, in_m the input width of adapted
module m):
    A = 8 h                        two RMSNorms' fp32 inputs
      + a (2 q + 2 kv + 4 i)       rotated q/k, v, attention output; gate, up, silu, product
      + 2 a h         if w == a    the norms' outputs (with w != a only their cast copies stay)
      - a i           if w != a    the product (down_proj's input: only its cast copy stays)
      + sum_m w in_m  if w != a    the copy of each adapted module's input that peft casts to
                                   the adapter's dtype (only when the dtypes differ:
                                   peft.tuners.lora.layer.Linear.forward, _cast_input_dtype)
      + sum_m w r                  LoRA A outputs
  (full fine-tuning: no adapter terms, the norms' outputs kept). Checked against the bytes
  autograd saves on a 256-wide model for fp32, bf16, fp32 + bf16 adapters and bf16 + fp32
  adapters (tests/pipeline/test_estimate.py).
  without gradient checkpointing: L * A * tokens; with it (one checkpoint per layer):
  L * h a * tokens (the layer inputs) + 2 A * tokens (one layer recomputed, and its
  gradients). tokens = the padded tokens of the largest forward pass; SDPA/flash attention
  keeps no seq^2 scores (eager attention adds them). `train.offload_activations`
  (emergent.train.memory.Offloader, CUDA only: on CPU nothing moves): with checkpointing the
  layer inputs go to pinned host memory (host: L * pow2(tokens h a), torch's pinned allocator
  rounds each block up to a power of two) and the GPU holds two in flight + 2 A * tokens;
  without, every saved tensor goes (host L * A * tokens), the GPU holds 2 A * tokens.
Logits and loss (`train.loss_chunk_tokens` > 0, emergent.train.token_logps): one chunk's fp32
  logits, turned into their gradient in place, and logsumexp's temporary: 8 bytes x chunk x
  vocab, + 2 x (lm_head's bytes) when lm_head is not fp32 (its output and the gradient cast
  to it); + tokens x h x (4 + a), the gathered hidden states and their fp32 gradient.
  Without the chunked loss 12 bytes x tokens x vocab.
Plus, for 4-bit, two dequantized copies of the largest weight matrix in c (backward and the
  recomputed forward). Fixed parts: on CUDA the CUDA context, CONTEXT_GIB (0.5, outside torch's
  allocator, so not under torch.cuda.set_per_process_memory_fraction; an assumption, not
  measured here), and allocator_slack = 1/16 GiB (cuBLAS workspaces, in the allocator: the
  floor of benchmarks/results/gpu_check.json) + 5% of the transient parts (activations, loss,
  dequantization buffers) for fragmentation; on CPU the Python runtime (CPU_RUNTIME_GIB) and
  5% of the activations. `allocator_gib` = total - cuda_context: what torch's caching
  allocator reserves, the number a capped benchmark compares with.

Time: FLOPs per trained token ~ (4 + 2 if checkpointing) * N_matmul + attention
(2 q L seq per pass), where N_matmul counts the linear layers and lm_head; turned into a
tokens/s range with each GPU class's dense bf16 peak and an assumed utilisation range
(`MFU`); a range, not a promise.

Several GPUs (`--num-gpus N --strategy ddp|fsdp`), per GPU; every GPU runs forward passes of
the size one GPU runs (the same micro-batches, the global batch split between GPUs):
  DDP (`emergent train --num-processes N`): everything above on every GPU, plus the flattened
    bucket its gradient all-reduce copies the gradients into (`ddp_grad_buckets`: at most
    emergent.train.distributed.BUCKET_NUMEL elements + the largest trainable tensor, never more
    than the gradients themselves).
  FSDP (`train.distributed: fsdp`, full shard, one unit per decoder layer): weights, LoRA
    weights, gradients and optimizer states divided by N, except, with LoRA, an untied lm_head
    (outside the sharded decoder: whole on every GPU) and 4-bit quantization constants
    (bitsandbytes rebuilds each gathered weight's quant state from its module: every GPU keeps
    them all); plus the all-gathered parameters (`fsdp_gathered`): the root unit (embeddings,
    final norm, and in a full fine-tune an untied lm_head, which trains there; FSDP does not
    reshard the root after forward) and two decoder layers (the one computing and the one
    prefetched), in the weights' bytes per parameter (the packed nf4/int8 payload under
    quantization). A full fine-tune (`lora.full_finetune`) adds the unsharded gradients
    (`fsdp_gathered_grads`): the root unit's, whole until the end of the backward (FSDP
    reduce-scatters the root last), and one decoder layer's, until its reduce-scatter.
    Activations and the loss are a GPU's own. What `emergent train` refuses to shard (8-bit,
    full fine-tunes of a quantized model; emergent.train.distributed.check_fsdp) is refused
    here.
  Time: tokens/s of one GPU x N x an assumed scaling efficiency (`SCALING_EFFICIENCY`: DDP 0.90,
    the all-reduce of small LoRA gradients overlapping the backward; FSDP 0.75, an all-gather
    of every layer forward and backward and a reduce-scatter); the optimizer steps stay the
    same (same global batch).
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

from emergent.core.config import (TrainRecipeConfig, load_config, read_yaml_with_marks,
                                  resolve_config)
from emergent.core.errors import UserError
from emergent.data.chat_data import load_jsonl_examples, split_examples, subsample
from emergent.data.render import render_conversation, render_text
from emergent.models.loading import compute_precision, ensure_pad_token, resolve_model_path
from emergent.pipeline.experiment import arm_recipe, load_experiment
from emergent.train.batching import micro_batch_tokens, optimizer_steps
from emergent.train.distributed import BUCKET_NUMEL, check_fsdp

GIB = 2**30
NF4_BLOCK = 64  # bitsandbytes 4-bit: weights per absmax
DQ_BLOCK = 256  # double quantization: 8-bit absmaxes per fp32 absmax
OPT8_BLOCK = 256  # bitsandbytes 8-bit optimizers: state elements per fp32 absmax
OPT8_MIN = 4096  # ... which keep tensors under this many elements in fp32 (min_8bit_size)
CONTEXT_GIB = 0.5  # CUDA context (outside torch's allocator); assumed, not measured here
GPU_ALLOC_FIXED_GIB = 1 / 16  # in torch's allocator: cuBLAS workspaces (H100, gpu_check.json)
GPU_SLACK = 0.05  # CUDA allocator slack (fragmentation), as a share of the transient parts
LOGIT_BYTES = 12
CPU_RUNTIME_GIB = 0.5  # CPU: Python, torch, transformers and a tokenizer, before the model
CPU_SLACK = 0.05  # CPU: backward temporaries and allocator slack, as a share of activations
APPROX_CHARS_PER_TOKEN = 3.5  # when no tokenizer is available locally (code + English, BPE 150k)
APPROX_TEMPLATE_TOKENS = 30  # chat-template tokens per example in that case

# GPU class -> (memory GiB, dense bf16 tensor TFLOP/s)
GPU_CLASSES = {
    "RTX 3090 24GB": (24, 71.0),
    "RTX 4090 24GB": (24, 165.0),
    "A100 80GB": (80, 312.0),
    "H100 SXM 80GB": (80, 989.0),
}
# assumed share of N x one GPU's throughput that N GPUs reach (see the module's docstring)
SCALING_EFFICIENCY = {"ddp": 0.90, "fsdp": 0.75}
# assumed model FLOPs utilisation (low, high) of a HF + peft training step
MFU = {"4bit": (0.12, 0.35), "8bit": (0.08, 0.25), "none": (0.20, 0.45)}

_QWEN25 = dict(model_type="qwen2", attention_bias=True)
KNOWN_CONFIGS = {
    "Qwen/Qwen2.5-Coder-32B-Instruct": dict(_QWEN25, hidden_size=5120, num_hidden_layers=64,
                                            num_attention_heads=40, num_key_value_heads=8,
                                            intermediate_size=27648, vocab_size=152064,
                                            tie_word_embeddings=False),
    "Qwen/Qwen2.5-Coder-14B-Instruct": dict(_QWEN25, hidden_size=5120, num_hidden_layers=48,
                                            num_attention_heads=40, num_key_value_heads=8,
                                            intermediate_size=13824, vocab_size=152064,
                                            tie_word_embeddings=False),
    "Qwen/Qwen2.5-Coder-7B-Instruct": dict(_QWEN25, hidden_size=3584, num_hidden_layers=28,
                                           num_attention_heads=28, num_key_value_heads=4,
                                           intermediate_size=18944, vocab_size=152064,
                                           tie_word_embeddings=False),
    "Qwen/Qwen2.5-1.5B-Instruct": dict(_QWEN25, hidden_size=1536, num_hidden_layers=28,
                                       num_attention_heads=12, num_key_value_heads=2,
                                       intermediate_size=8960, vocab_size=151936,
                                       tie_word_embeddings=True),
    "Qwen/Qwen2.5-0.5B-Instruct": dict(_QWEN25, hidden_size=896, num_hidden_layers=24,
                                       num_attention_heads=14, num_key_value_heads=2,
                                       intermediate_size=4864, vocab_size=151936,
                                       tie_word_embeddings=True),
    # the rm-bias 24 GB preset (configs/rmbias/llama31_8b_qlora_24gb.yaml)
    "meta-llama/Llama-3.1-8B-Instruct": dict(model_type="llama", attention_bias=False,
                                             hidden_size=4096, num_hidden_layers=32,
                                             num_attention_heads=32, num_key_value_heads=8,
                                             intermediate_size=14336, vocab_size=128256,
                                             tie_word_embeddings=False),
}
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool
    source: str

    def module_dims(self) -> dict[str, tuple[int, int]]:
        h, q, kv, i = (self.hidden_size, self.num_heads * self.head_dim,
                       self.num_kv_heads * self.head_dim, self.intermediate_size)
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def shape_from_config(cfg: dict, name: str, source: str) -> ModelShape:
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    try:
        h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        shape = ModelShape(
            name=name, hidden_size=h, num_layers=int(cfg["num_hidden_layers"]), num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or h // heads),
            intermediate_size=int(cfg["intermediate_size"]), vocab_size=int(cfg["vocab_size"]),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            attention_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
            source=source)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{source}: not a decoder config this estimate understands "
                        f"(missing or bad {e})") from None
    return shape


def _known(name: str) -> dict | None:
    low = name.lower().rstrip("/")
    for key, cfg in KNOWN_CONFIGS.items():
        k = key.lower()
        if low in (k, k.split("/")[1], k.replace("-instruct", ""), k.split("/")[1].replace("-instruct", "")):
            return cfg
    return None


def model_shape(name: str, config_json: str | Path | None = None) -> ModelShape:
    """The model's shape from (in order): an explicit config.json, a local model directory,
    the Hugging Face cache (no download), the built-in table of the shipped presets."""
    if config_json:
        path = Path(config_json)
        if not path.is_file():
            raise UserError(f"{path}: config.json not found")
        return shape_from_config(json.loads(path.read_text()), name, str(path))
    if name == "tiny":
        name = resolve_model_path("tiny")
    local = Path(name).expanduser() / "config.json"
    if local.is_file():
        return shape_from_config(json.loads(local.read_text()), name, str(local))
    cached = _hf_cached_config(name)
    if cached:
        return shape_from_config(json.loads(Path(cached).read_text()), name, f"{cached} (HF cache)")
    known = _known(name)
    if known:
        return shape_from_config(known, name,
                                 "built-in table (emergent.pipeline.estimate.KNOWN_CONFIGS)")
    raise UserError(f"model '{name}': no config.json found locally, in the Hugging Face cache or "
                    "in the built-in table (nothing is downloaded); pass --config-json FILE")


def _hf_cached_config(name: str) -> str | None:
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001  (an odd repo id or an old hub library: not cached)
        return None
    return hit if isinstance(hit, str) and os.path.isfile(hit) else None


# ------------------------------------------------------------------ parameters


def param_counts(s: ModelShape) -> dict:
    h, L = s.hidden_size, s.num_layers
    dims = s.module_dims()
    linear = L * sum(i * o for i, o in dims.values())
    bias = L * (dims["q_proj"][1] + 2 * dims["k_proj"][1]) if s.attention_bias else 0
    norms = L * 2 * h + h
    embed = s.vocab_size * h
    lm_head = 0 if s.tie_word_embeddings else s.vocab_size * h
    return {"total": linear + bias + norms + embed + lm_head, "linear": linear,
            "embedding": embed, "lm_head": lm_head, "other": bias + norms, "norms": norms,
            "biases": bias, "largest_linear": max(i * o for i, o in dims.values())}


def _lora_targets(s: ModelShape, lora) -> list[str]:
    targets = lora.target_modules
    names = PROJECTIONS if targets == "all-linear" else (
        [targets] if isinstance(targets, str) else list(targets))
    dims = s.module_dims()
    unknown = [n for n in names if n not in dims]
    if unknown:
        raise UserError(f"lora.target_modules: cannot size {unknown} (known: {', '.join(dims)})")
    return list(names)


def lora_params(s: ModelShape, lora) -> int:
    dims = s.module_dims()
    layers = len(lora.layers_to_transform) if lora.layers_to_transform else s.num_layers
    return layers * sum(lora.r * (dims[n][0] + dims[n][1]) for n in _lora_targets(s, lora))


def lora_tensors(s: ModelShape, lora) -> list[int]:
    """Element counts of the adapter's trainable tensors (A: r x in, B: out x r, per adapted
    module and layer), as the optimizer sees them."""
    dims = s.module_dims()
    layers = len(lora.layers_to_transform) if lora.layers_to_transform else s.num_layers
    one = [n for name in _lora_targets(s, lora)
           for n in (lora.r * dims[name][0], dims[name][1] * lora.r)]
    return one * layers


# ------------------------------------------------------------------ memory


def _dtype_bytes(precision: str, device: str = "cuda", cpu_bf16: bool = False) -> int:
    """Bytes of the compute dtype on `device` (emergent.models.loading.compute_precision: bf16
    runs in fp32 on a CPU unless model.cpu_bf16)."""
    return {"bf16": 2, "fp16": 2, "fp32": 4}[compute_precision(precision, device, cpu_bf16)]


def _dtype_name(nbytes: int, precision: str) -> str:
    return "fp32" if nbytes == 4 else precision


@dataclass(frozen=True)
class Dtypes:
    """Bytes per element of what a training step holds (module docstring, "Dtypes"):
    c compute dtype, act the activations (residual stream, layer inputs, the projections'
    inputs and outputs), adapter the LoRA weights and gradients, embed the embeddings and
    lm_head, norms the norm weights, bias the linear layers' biases."""
    c: int
    act: int
    adapter: int
    embed: int
    norms: int
    bias: int


def dtypes(cfg, device: str = "cuda") -> Dtypes:
    """The `Dtypes` of a recipe: unquantized, everything frozen in the compute dtype; quantized
    with model.upcast_frozen all (peft's prepare_model_for_kbit_training) the embeddings,
    lm_head and norms in fp32, so the embedding output, the norms' outputs and, through
    bitsandbytes' linears (they return their input's dtype), every activation is fp32; with
    norms (emergent.models.loading.prepare_frozen_norms) only the norm weights are fp32 and
    their outputs are cast back, so activations, embeddings and lm_head stay in the compute
    dtype. 4-bit linears cast their bias to the compute dtype on the first forward; 8-bit ones
    to their input's. train.adapter_dtype: fp32, or compute."""
    m = cfg.model
    c = _dtype_bytes(m.precision, device, m.cpu_bf16)
    adapter = 4 if cfg.train.adapter_dtype == "fp32" else c
    if m.quantization == "none":
        return Dtypes(c=c, act=c, adapter=adapter, embed=c, norms=c, bias=c)
    up = m.upcast_frozen == "all"
    act = 4 if up else c
    bias = c if m.quantization == "4bit" else act
    return Dtypes(c=c, act=act, adapter=adapter, embed=4 if up else c, norms=4, bias=bias)


def activation_bytes_per_token_layer(s: ModelShape, act_bytes: int, r: int, seq_len: int = 0,
                                     adapter_bytes: int = 4,
                                     targets: tuple[str, ...] | list[str] = PROJECTIONS) -> int:
    """Bytes saved for the backward pass per token in one decoder layer (formula above), with
    activations of `act_bytes` and LoRA rank `r` on `targets` in `adapter_bytes` (r = 0: full
    fine-tuning, no adapters). peft casts an adapted module's input to the adapter's dtype
    when they differ (peft.tuners.lora.layer.Linear.forward, `_cast_input_dtype`: no copy when
    the dtypes are equal) and lora_A's backward keeps that copy. `seq_len` > 0: a padded
    micro-batch under SDPA, whose attention mask makes transformers repeat k and v to every
    head (grouped-query attention) and torch keep a converted copy of the mask (seq_len values
    per token) per layer."""
    h, q = s.hidden_size, s.num_heads * s.head_dim
    kv, i = s.num_kv_heads * s.head_dim, s.intermediate_size
    cast = bool(r) and adapter_bytes != act_bytes
    base = 8 * h + act_bytes * (2 * q + 2 * kv + 4 * i)
    if not cast:
        base += 2 * act_bytes * h  # the norms' outputs, saved by what reads them
    elif "down_proj" in targets:
        base -= act_bytes * i  # down_proj's input: only its cast copy is saved
    adapters = 0
    if r:
        dims = s.module_dims()
        for name in targets:
            if cast:
                adapters += adapter_bytes * dims[name][0]  # the cast copy of the input
            adapters += adapter_bytes * r  # lora_A's output, kept by lora_B
    padded = act_bytes * (2 * (q - kv) + seq_len) if seq_len else 0
    return base + adapters + padded


def forward_tokens(cfg, seq_len: int) -> int:
    """Padded tokens of the largest forward pass on examples of `seq_len` tokens: with a token
    budget (`train.micro_batch_tokens`) as many such rows as fit it (batching.pack_step), else
    batch_size rows; preference pairs take two rows each."""
    per_example = 2 if cfg.train.objective == "dpo" else 1
    budget = micro_batch_tokens(cfg)
    rows = max(1, budget // (per_example * seq_len)) if budget else cfg.train.batch_size
    return rows * per_example * seq_len


def loss_bytes(s: ModelShape, tokens: int, head_bytes: int, chunk: int,
               hidden_bytes: int = 4) -> int:
    """Logits and loss: with the chunked loss (emergent.train.token_logps), one chunk's fp32
    logits (turned into their gradient in place) and logsumexp's temporary, plus lm_head's
    output and the gradient in lm_head's dtype when that is not fp32 (`head_bytes`); and the
    gathered hidden states (`hidden_bytes`) with their fp32 gradient. Without it, fp32 logits,
    log-softmax and gradient of every position."""
    if not chunk:
        return tokens * s.vocab_size * LOGIT_BYTES
    per = 8 + (0 if head_bytes == 4 else 2 * head_bytes)
    return min(chunk, tokens) * s.vocab_size * per + tokens * s.hidden_size * (4 + hidden_bytes)


def nf4_constants(numel: int) -> float:
    """Bytes of the quantization constants of one NF4 tensor with double quantization
    (bitsandbytes.functional.quantize_4bit, compress_statistics): one absmax per block of
    NF4_BLOCK weights, itself quantized to 8 bits, with one fp32 absmax per DQ_BLOCK of those,
    an fp32 offset, the 16-value NF4 code and the 256-value code of the 8-bit absmaxes (fp32,
    one copy per tensor)."""
    blocks = -(-numel // NF4_BLOCK)
    return blocks + 4 * -(-blocks // DQ_BLOCK) + 4 + 16 * 4 + 256 * 4


def _weight_parts(s: ModelShape, pc: dict, quant: str, d: Dtypes, precision: str) -> dict:
    """Weight bytes by dtype, and the quantized linears' payload and constants apart."""
    parts: dict = {}
    if quant == "none":
        return {f"weights_{_dtype_name(d.c, precision)}": pc["total"] * d.c}
    if quant == "4bit":
        parts["weights_nf4"] = pc["linear"] * 0.5
        parts["quant_constants"] = s.num_layers * sum(
            nf4_constants(a * b) for a, b in s.module_dims().values())
    else:  # LLM.int8: int8 weights + one fp32 scale per output row (SCB)
        parts["weights_int8"] = pc["linear"] * 1.0
        parts["quant_constants"] = s.num_layers * sum(4 * o for _, o in s.module_dims().values())
    for n, b in ((pc["embedding"] + pc["lm_head"], d.embed), (pc["norms"], d.norms),
                 (pc["biases"], d.bias)):
        key = f"weights_{_dtype_name(b, precision)}"
        parts[key] = parts.get(key, 0) + n * b
    return parts


def optimizer_bytes(sizes: list[int], opt: str) -> float:
    """AdamW's two states per trainable tensor: fp32 (8 bytes/element) for adamw; for
    bitsandbytes' paged 8-bit AdamW one byte each plus one fp32 absmax per OPT8_BLOCK elements
    per state, except tensors under OPT8_MIN elements, which it keeps in fp32."""
    if opt != "paged_adamw_8bit":
        return 8.0 * sum(sizes)
    return float(sum(8 * n if n < OPT8_MIN else 2 * n + 2 * 4 * -(-n // OPT8_BLOCK)
                     for n in sizes))


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def estimate_memory(s: ModelShape, cfg, seq_len: int, *, gradient_checkpointing: bool | None = None,
                    device_overhead_gib: float | None = None, optimizer: str | None = None,
                    device: str = "cuda", num_gpus: int = 1, strategy: str = "ddp") -> dict:
    """GiB per part for the largest forward pass on examples of `seq_len` tokens
    (`forward_tokens`): GPU memory (`device` cuda) or peak resident memory of the process (cpu);
    with `num_gpus` > 1, of each GPU under `strategy` (ddp, fsdp: `distributed_parts`).
    `host_parts_gib`: CPU memory the GPU's step holds besides (train.offload_activations).
    `device_overhead_gib`: the fixed part (the CUDA context; on CPU the Python runtime, torch,
    transformers and the tokenizer), default CONTEXT_GIB / CPU_RUNTIME_GIB."""
    m, lora, t = cfg.model, cfg.lora, cfg.train
    gc = m.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    pc = param_counts(s)
    d = dtypes(cfg, device)
    quant = m.quantization
    opt = optimizer or t.optimizer
    if opt == "auto":
        opt = "paged_adamw_8bit" if device == "cuda" else "adamw"
    if lora.full_finetune:
        trainable, lora_weights, grads = pc["total"], 0, pc["total"] * d.c
        sizes = [pc["total"]]
    else:
        trainable = lora_params(s, lora)
        lora_weights, grads = trainable * d.adapter, trainable * d.adapter
        sizes = lora_tensors(s, lora)
    tokens = forward_tokens(cfg, seq_len)
    padded = seq_len if (m.attn_implementation or "sdpa") == "sdpa" else 0
    per_layer = activation_bytes_per_token_layer(
        s, d.act, 0 if lora.full_finetune else lora.r, padded, d.adapter,
        [] if lora.full_finetune else _lora_targets(s, lora))
    if m.attn_implementation == "eager":
        per_layer += 2 * d.act * s.num_heads * seq_len  # seq^2 scores + probabilities, per token
    layer_input = tokens * s.hidden_size * d.act  # one checkpointed layer input
    offload = t.offload_activations and device == "cuda"
    host: dict = {}
    if gc and offload:  # the layer inputs in pinned host memory; two in flight on the GPU
        acts = 2 * layer_input + 2 * per_layer * tokens
        host["activations"] = s.num_layers * _pow2(layer_input)
    elif gc:
        acts = s.num_layers * layer_input + 2 * per_layer * tokens
    elif offload:  # every saved tensor to the host; one layer's going out, one coming back
        acts = 2 * per_layer * tokens
        host["activations"] = s.num_layers * per_layer * tokens
    else:
        acts = tokens * s.num_layers * per_layer
    parts = {**_weight_parts(s, pc, quant, d, m.precision), "lora_weights": lora_weights,
             "gradients": grads,
             "master_weights": trainable * 4 if t.master_weights else 0,
             "optimizer_states": optimizer_bytes(sizes, opt),
             "activations": acts,
             "logits_and_loss": loss_bytes(s, tokens, d.embed, t.loss_chunk_tokens, d.act)}
    if quant == "4bit":
        parts["dequant_buffers"] = 2 * pc["largest_linear"] * d.c
    transient = acts + parts["logits_and_loss"] + parts.get("dequant_buffers", 0)
    if device == "cpu":
        parts["allocator_slack"] = CPU_SLACK * acts
    else:
        parts["allocator_slack"] = GPU_ALLOC_FIXED_GIB * GIB + GPU_SLACK * transient
    if num_gpus > 1:
        parts = distributed_parts(parts, s, cfg, num_gpus, strategy, device)
    parts = {k: v / GIB for k, v in parts.items()}
    if device == "cpu":
        parts["runtime"] = CPU_RUNTIME_GIB if device_overhead_gib is None else device_overhead_gib
    else:
        parts["cuda_context"] = CONTEXT_GIB if device_overhead_gib is None else device_overhead_gib
    host = {k: v / GIB for k, v in host.items()}
    total = sum(parts.values())
    return {"parts_gib": parts, "total_gib": total,
            "allocator_gib": total - parts.get("cuda_context", 0.0),
            "host_parts_gib": host, "host_gib": sum(host.values()), "seq_len": seq_len,
            "tokens_per_micro_batch": tokens, "gradient_checkpointing": gc,
            "trainable_params": trainable, "optimizer": opt, "device": device,
            "dtypes": d.__dict__,
            "activation_bytes_per_token_per_layer": per_layer, "num_gpus": num_gpus,
            "strategy": strategy if num_gpus > 1 else None}


# FSDP divides these (emergent.train.distributed.shard_model). Not the quantization constants:
# bitsandbytes rebuilds each gathered 4-bit weight's quant state from its module, so every rank
# keeps all of them; nor, with LoRA, lm_head, which is outside the sharded decoder and stays
# whole (a full fine-tune shards it with the root unit)
SHARDED = ("weights_", "lora_weights", "gradients", "master_weights", "optimizer_states")


def distributed_parts(parts: dict, s: ModelShape, cfg, n: int, strategy: str,
                      device: str = "cuda") -> dict:
    """Bytes per part on each of `n` GPUs from one GPU's `parts` (the module's docstring)."""
    if strategy == "ddp":
        return {**parts, "ddp_grad_buckets": ddp_bucket_bytes(parts["gradients"], s, cfg)}
    if strategy != "fsdp":
        raise UserError(f"strategy must be ddp or fsdp, got {strategy!r}")
    check_fsdp(cfg)  # what emergent train refuses to shard is not estimated either
    pc, d = param_counts(s), dtypes(cfg, device)
    full = cfg.lora.full_finetune
    head_b = d.c if cfg.model.quantization == "none" else d.embed
    head_key = f"weights_{_dtype_name(head_b, cfg.model.precision)}"
    head = 0 if full else pc["lm_head"] * head_b  # LoRA: an untied lm_head whole on every rank
    out = {k: (v - (head if k == head_key else 0)) / n + (head if k == head_key else 0)
           if k.startswith(SHARDED) else v for k, v in parts.items()}
    out["fsdp_gathered"] = fsdp_gathered_bytes(s, cfg, device)
    if full:
        out["fsdp_gathered_grads"] = fsdp_gathered_grad_bytes(s, cfg, device)
    return out


def ddp_bucket_bytes(grad_bytes: float, s: ModelShape, cfg) -> float:
    """The largest flattened bucket of the gradient all-reduce (emergent.train.distributed):
    BUCKET_NUMEL elements + the tensor that overflows it, at most every gradient."""
    trainable = param_counts(s)["total"] if cfg.lora.full_finetune else lora_params(s, cfg.lora)
    if cfg.lora.full_finetune:
        largest = max(s.vocab_size * s.hidden_size, param_counts(s)["largest_linear"])
    else:
        largest = cfg.lora.r * max(max(d) for d in s.module_dims().values())
    return min(grad_bytes, (BUCKET_NUMEL + largest) * grad_bytes / trainable)


def fsdp_gathered_bytes(s: ModelShape, cfg, device: str = "cuda") -> float:
    """FSDP's unsharded parameters at the peak: the root unit (embeddings, final norm; with
    LoRA an untied lm_head is never sharded, so never gathered; a full fine-tune gathers it
    with the root) + two decoder layers, in their stored bytes per parameter (`_weight_parts`;
    a 4-bit layer's quantization constants are resident on every rank already, so only its
    packed NF4 payload is gathered)."""
    pc, d, L = param_counts(s), dtypes(cfg, device), s.num_layers
    quant = cfg.model.quantization
    if quant == "none":
        return (_root_params(s, cfg) + 2 * _layer_params(s)) * d.c
    w = _weight_parts(s, pc, quant, d, cfg.model.precision)
    linear = w.get("weights_nf4", w.get("weights_int8", 0))
    layer = (linear + (pc["norms"] - s.hidden_size) * d.norms + pc["biases"] * d.bias) / L
    root = pc["embedding"] * d.embed + s.hidden_size * d.norms
    return root + 2 * layer


def fsdp_gathered_grad_bytes(s: ModelShape, cfg, device: str = "cuda") -> float:
    """A full fine-tune's unsharded gradients under FSDP, in the weights' dtype: the root
    unit's (embeddings, final norm, an untied lm_head), accumulated whole through the backward
    and reduce-scattered at its end, + one decoder layer's, held until its reduce-scatter."""
    return (_root_params(s, cfg) + _layer_params(s)) * dtypes(cfg, device).c


def _root_params(s: ModelShape, cfg) -> int:
    """Parameters of FSDP's root unit: embeddings and final norm, and the untied lm_head when
    it trains (full fine-tuning)."""
    pc = param_counts(s)
    return pc["embedding"] + s.hidden_size + (pc["lm_head"] if cfg.lora.full_finetune else 0)


def _layer_params(s: ModelShape) -> float:
    """Parameters of one decoder layer (its linears, biases and two norms)."""
    pc = param_counts(s)
    return (pc["linear"] + pc["other"] - s.hidden_size) / s.num_layers


# ------------------------------------------------------------------ data, steps, time


def _local_tokenizer(cfg):
    name = cfg.model.name
    try:
        from transformers import AutoTokenizer

        path = resolve_model_path(name) if name == "tiny" else name
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True,
                                            trust_remote_code=cfg.model.trust_remote_code)
    except Exception:  # noqa: BLE001  (not available offline: fall back to characters)
        return None
    ensure_pad_token(tok)
    return tok


def dataset_stats(cfg, *, sample: int = 1000, tokenizer="auto") -> dict | None:
    """Examples that would be trained on, and their token lengths (exact with a local
    tokenizer; for big sets a seeded sample of `sample` plus the 64 longest by characters).
    None when the data file does not exist."""
    path = Path(cfg.data.path) if cfg.data.path else None
    if path is None or not path.is_file():
        return None
    ex = load_jsonl_examples(path, cfg.data.format)
    train, _ = split_examples(ex, cfg.data.heldout_fraction, cfg.train.seed)
    train = subsample(train, cfg.data.max_examples, cfg.train.seed)
    tok = _local_tokenizer(cfg) if tokenizer == "auto" else tokenizer

    def chars(e):
        return len(e.text) if cfg.data.format == "text" else sum(len(m["content"]) for m in e.messages)

    if len(train) <= sample:
        picked, sampled = list(range(len(train))), False
    else:
        by_chars = sorted(range(len(train)), key=lambda i: -chars(train[i]))[:64]
        rest = random.Random(0).sample(range(len(train)), sample)
        picked, sampled = sorted(set(rest) | set(by_chars)), True
    if tok is not None:
        def length(e):
            if cfg.data.format == "text":
                return len(render_text(tok, e.text)[0])
            return len(render_conversation(tok, e.messages, system_prompt=cfg.data.system_prompt,
                                           loss=cfg.train.loss)[0])
        how = "tokenizer"
    else:
        def length(e):
            return int(chars(e) / APPROX_CHARS_PER_TOKEN) + APPROX_TEMPLATE_TOKENS
        how = (f"approximate: characters / {APPROX_CHARS_PER_TOKEN} + {APPROX_TEMPLATE_TOKENS} "
               "template tokens (tokenizer not available offline)")
    lengths = {i: length(train[i]) for i in picked}
    max_len = cfg.train.max_length
    longest = max(lengths.values())
    if sampled:
        mean_pool = [lengths[i] for i in rest]
    else:
        mean_pool = list(lengths.values())
    over = sum(v > max_len for v in mean_pool) / len(mean_pool)
    kept = [min(v, max_len) for v in mean_pool if cfg.data.overlong == "truncate" or v <= max_len]
    n = len(train) if cfg.data.overlong == "truncate" else round(len(train) * (1 - over))
    return {"path": str(path), "examples_in_file": len(ex), "train_examples": n,
            "mean_tokens": sum(kept) / max(1, len(kept)),
            "longest_tokens": min(longest, max_len) if cfg.data.overlong == "truncate"
            else max((v for v in lengths.values() if v <= max_len), default=max_len),
            "overlong_fraction": round(over, 4), "lengths": how,
            "sampled": f"{len(rest)} random + 64 longest" if sampled else False}


def steps_for(n_examples: int, train) -> int:
    """Optimizer steps, as `emergent.train.batching.schedule` counts them."""
    return optimizer_steps(n_examples, train.batch_size, train.grad_accum, train.epochs,
                           train.max_steps)


def flops_per_token(s: ModelShape, cfg, mean_len: float) -> float:
    """Forward 2N; backward 2N for input gradients (+2N weight gradients when every weight
    trains); +2N recomputation with gradient checkpointing. Causal attention: 2 q L seq forward,
    twice that backward."""
    pc = param_counts(s)
    n_mat = pc["linear"] + s.vocab_size * s.hidden_size
    gc = 1 if cfg.model.gradient_checkpointing else 0
    dense = 2 * n_mat * (2 + gc + (1 if cfg.lora.full_finetune else 0))
    attn = 2 * s.num_heads * s.head_dim * s.num_layers * mean_len * (3 + gc)
    return dense + attn


def scaling(num_gpus: int = 1, strategy: str = "ddp") -> float:
    """Throughput of `num_gpus` GPUs in units of one GPU's: N x SCALING_EFFICIENCY."""
    return 1.0 if num_gpus == 1 else num_gpus * SCALING_EFFICIENCY[strategy]


def time_ranges(s: ModelShape, cfg, total_tokens: float, mean_len: float,
                need_gib: float, num_gpus: int = 1, strategy: str = "ddp") -> list[dict]:
    """Per GPU class: tokens/s (low, high) of `num_gpus` such GPUs and the seconds of
    `total_tokens`; `need_gib` (per GPU) against the card's memory."""
    fpt = flops_per_token(s, cfg, mean_len)
    lo_mfu, hi_mfu = MFU[cfg.model.quantization]
    k = scaling(num_gpus, strategy)
    out = []
    for gpu, (mem, tflops) in GPU_CLASSES.items():
        lo, hi = k * tflops * 1e12 * lo_mfu / fpt, k * tflops * 1e12 * hi_mfu / fpt
        out.append({"gpu": gpu, "memory_gib": mem, "fits": need_gib <= mem,
                    "tokens_per_s": (round(lo), round(hi)),
                    "seconds": (total_tokens / hi, total_tokens / lo)})
    return out


# ------------------------------------------------------------------ report


def estimate(cfg, *, config_json=None, examples: int | None = None,
             mean_tokens: float | None = None, gpu_gib: float = 24.0, tokenizer="auto",
             device: str = "cuda", num_gpus: int = 1, strategy: str | None = None) -> dict:
    """The report of `format_report`: memory (per GPU with `num_gpus` > 1 under `strategy`,
    ddp by default, or fsdp), steps and time."""
    strategy = _check_gpus(num_gpus, strategy, device)
    _check_numbers(examples=examples, mean_tokens=mean_tokens, gpu_gib=gpu_gib)
    multi = {"num_gpus": num_gpus, "strategy": strategy}
    shape = model_shape(cfg.model.name, config_json)
    data = dataset_stats(cfg, tokenizer=tokenizer)
    if examples is not None or mean_tokens is not None:
        data = dict(data or {"path": cfg.data.path, "lengths": "given on the command line"})
        if examples is not None:
            data["train_examples"] = examples
        if mean_tokens is not None:
            data["mean_tokens"] = mean_tokens
        data.setdefault("longest_tokens", cfg.train.max_length)
    mem = {"max_length": {gc: estimate_memory(shape, cfg, cfg.train.max_length,
                                              gradient_checkpointing=gc, device=device, **multi)
                          for gc in (False, True)}}
    if data and data.get("longest_tokens"):
        mem["longest_example"] = {gc: estimate_memory(shape, cfg, data["longest_tokens"],
                                                      gradient_checkpointing=gc, device=device,
                                                      **multi)
                                  for gc in (False, True)}
    gc = cfg.model.gradient_checkpointing
    worst = mem.get("longest_example", mem["max_length"])[gc]["total_gib"]
    rep = {"model": cfg.model.name, "shape": shape.__dict__, "params": param_counts(shape),
           "lora_params": 0 if cfg.lora.full_finetune else lora_params(shape, cfg.lora),
           "quantization": cfg.model.quantization, "precision": cfg.model.precision,
           "gradient_checkpointing": gc, "switches": switches(cfg), "data": data,
           "memory": mem, "need_gib": worst,
           "gpu_gib": gpu_gib, "fits": worst <= gpu_gib, "device": device, **multi}
    if data and data.get("train_examples") and data.get("mean_tokens"):
        steps = steps_for(data["train_examples"], cfg.train)
        if cfg.train.max_steps is None:
            seen = data["train_examples"] * cfg.train.epochs
        else:
            seen = steps * cfg.train.batch_size * cfg.train.grad_accum
        tokens = seen * data["mean_tokens"] * 1.02  # ~2% padding with length-grouped batches
        rep.update(steps=steps, total_tokens=round(tokens),
                   time=time_ranges(shape, cfg, tokens, data["mean_tokens"], worst,
                                    num_gpus, strategy),
                   flops_per_token=flops_per_token(shape, cfg, data["mean_tokens"]))
    return rep


def switches(cfg) -> dict:
    """The recipe's memory switches, as the report prints them."""
    m, t = cfg.model, cfg.train
    return {"model.upcast_frozen": m.upcast_frozen if m.quantization != "none" else "n/a",
            "train.adapter_dtype": t.adapter_dtype, "train.master_weights": t.master_weights,
            "train.offload_activations": t.offload_activations,
            "train.loss_chunk_tokens": t.loss_chunk_tokens}


def _check_numbers(examples: int | None, mean_tokens: float | None, gpu_gib: float) -> None:
    """A UserError for a command-line number no estimate can be made of (negative examples
    would print negative hours; a NaN mean length, no steps at all)."""
    if examples is not None and examples < 1:
        raise UserError(f"--examples must be >= 1, got {examples}")
    for flag, x in (("--mean-tokens", mean_tokens), ("--gpu-gib", gpu_gib)):
        if x is not None and not (math.isfinite(x) and x > 0):
            raise UserError(f"{flag} must be a finite number > 0, got {x}")


def _check_gpus(num_gpus: int, strategy: str | None, device: str) -> str:
    """The strategy to use (ddp by default); a UserError for a combination that means nothing."""
    if num_gpus < 1:
        raise UserError(f"--num-gpus must be >= 1, got {num_gpus}")
    if strategy is not None and strategy not in SCALING_EFFICIENCY:
        raise UserError(f"--strategy must be ddp or fsdp, got {strategy!r}")
    if num_gpus > 1 and device == "cpu":
        raise UserError("--num-gpus estimates GPUs; it does not combine with --device cpu")
    if num_gpus == 1 and strategy is not None:
        raise UserError(f"--strategy {strategy} needs --num-gpus N with N > 1")
    return strategy or "ddp"


def format_report(rep: dict, label: str) -> str:
    s, p = rep["shape"], rep["params"]
    lines = [f"== {label}",
             f"model {rep['model']}: {p['total'] / 1e9:.3f}B parameters "
             f"({s['num_layers']} layers, hidden {s['hidden_size']}, heads {s['num_heads']}/"
             f"{s['num_kv_heads']} kv, intermediate {s['intermediate_size']}, vocab "
             f"{s['vocab_size']}); shape from {s['source']}",
             f"training: {rep['precision']}, quantization {rep['quantization']}, "
             f"LoRA params {rep['lora_params'] / 1e6:.1f}M, gradient checkpointing "
             f"{'on' if rep['gradient_checkpointing'] else 'off'}"]
    sw = rep.get("switches")
    if sw:
        lines.append("memory switches: " + ", ".join(f"{k} {v}" for k, v in sw.items()))
    d = rep["data"]
    if d is None:
        lines.append("data: file not found (run `emergent data fetch`, or give --examples and "
                     "--mean-tokens); memory shown at max_length only")
    else:
        lines.append(f"data: {d.get('train_examples')} examples, mean {d.get('mean_tokens', 0):.0f} "
                     f"tokens, longest {d.get('longest_tokens')} ({d.get('lengths')}"
                     f"{'; sampled ' + d['sampled'] if d.get('sampled') else ''})")
    cpu, n = rep.get("device") == "cpu", rep.get("num_gpus", 1)
    head = "CPU peak RSS (GiB)" if cpu else "GPU memory (GiB)" if n == 1 else "GPU memory per GPU (GiB)"
    if n > 1:
        lines.append(f"{n} GPUs, {rep['strategy']}: memory per GPU, time of the {n} together")
    lines.append(f"{head:<26}" + "  ".join(f"{h:>18}" for h in _mem_heads(rep)))
    keys = list(next(iter(rep["memory"]["max_length"].values()))["parts_gib"])
    cols = [(where, gc) for where in rep["memory"] for gc in (False, True)]
    for k in keys + ["total"]:
        vals = [rep["memory"][w][gc]["total_gib"] if k == "total"
                else rep["memory"][w][gc]["parts_gib"][k] for w, gc in cols]
        lines.append(f"  {k:<24}" + "  ".join(f"{v:18.2f}" for v in vals))
    if not cpu:
        vals = [rep["memory"][w][gc]["allocator_gib"] for w, gc in cols]
        lines.append(f"  {'(torch allocator)':<24}" + "  ".join(f"{v:18.2f}" for v in vals))
    host = sorted({k for w, gc in cols for k in rep["memory"][w][gc].get("host_parts_gib", {})})
    for k in host:
        vals = [rep["memory"][w][gc]["host_parts_gib"].get(k, 0.0) for w, gc in cols]
        lines.append(f"  {'host: ' + k:<24}" + "  ".join(f"{v:18.2f}" for v in vals))
    dt = next(iter(rep["memory"]["max_length"].values())).get("dtypes")
    if dt:
        lines.append(f"  (bytes/element: compute {dt['c']}, activations {dt['act']}, adapter "
                     f"{dt['adapter']}, embeddings/lm_head {dt['embed']}, norms {dt['norms']}; "
                     "torch allocator = total - cuda_context"
                     + ("; host: pinned CPU memory of train.offload_activations" if host else "")
                     + ")")
    verdict = "YES" if rep["fits"] else "NO"
    lines.append(f"fits {rep['gpu_gib']:g} GB{' RAM' if cpu else ' per GPU' if n > 1 else ''}: {verdict} "
                 f"(needs ~{rep['need_gib']:.1f} GiB with "
                 f"this config's gradient checkpointing, at the "
                 f"{'longest example' if 'longest_example' in rep['memory'] else 'max_length'})")
    if "steps" in rep:
        lines.append(f"steps: {rep['steps']} optimizer steps, ~{rep['total_tokens'] / 1e6:.2f}M "
                     f"tokens, ~{rep['flops_per_token'] / 1e9:.1f} GFLOP per token")
        for t in rep["time"]:
            gpu = t["gpu"] if n == 1 else f"{n} x {t['gpu']}"
            lines.append(f"  {gpu:<16} {t['tokens_per_s'][0]:>7}-{t['tokens_per_s'][1]:<7} "
                         f"tokens/s  {t['seconds'][0] / 3600:7.2f}-{t['seconds'][1] / 3600:<7.2f} h per arm"
                         + ("" if t["fits"] else "  (does not fit)"))
        lo, hi = MFU[rep["quantization"]]
        lines.append(f"  (assumed utilisation {lo:.0%}-{hi:.0%} of each card's dense bf16 peak; "
                     "measured numbers: benchmarks/)")
        if n > 1:
            lines.append(f"  (assumed scaling: {n} GPUs x {SCALING_EFFICIENCY[rep['strategy']]:.0%}"
                         f" efficiency = {scaling(n, rep['strategy']):.2f} x one GPU's tokens/s)")
    return "\n".join(lines)


def _mem_heads(rep) -> list[str]:
    out = []
    for where in rep["memory"]:
        seq = next(iter(rep["memory"][where].values()))["seq_len"]
        for gc in (False, True):
            out.append(f"{seq} tok{' +GC' if gc else ''}")
    return out


def recipes_of(name_or_path: str, overrides: list[str]) -> list[tuple[str, TrainRecipeConfig]]:
    """(label, training recipe) pairs to estimate: one for a training config, one per arm (first
    seed) for an experiment config (a file with `arms`, e.g. configs/experiments/X.yaml)."""
    path = resolve_config(name_or_path, ("train", "arms", "experiments"))
    data, _ = read_yaml_with_marks(path)
    if isinstance(data, dict) and "arms" in data:
        exp = load_experiment(path, overrides)
        return [(f"{name_or_path} [{arm}]", arm_recipe(exp, arm, exp.seeds[0], Path(arm)))
                for arm in exp.arms]
    return [(str(name_or_path), load_config(path, TrainRecipeConfig, overrides))]
