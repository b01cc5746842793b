"""Published Qwen2.5 shapes, built offline with random weights (speed and memory numbers only).

The sizes come from `emergent.pipeline.estimate.KNOWN_CONFIGS` (the package's one table of the
published `config.json` fields, what `emergent estimate` sizes), with the fields that fix the
numerics added here (all Qwen2 architecture: GQA, SwiGLU, RMSNorm, q/k/v biases, RoPE
theta 1e6, RMSNorm eps 1e-6, 32,768 positions):

| name    | model                          | hidden | inter | layers | heads | kv | vocab   | tied |
|---------|--------------------------------|--------|-------|--------|-------|----|---------|------|
| 32b     | Qwen/Qwen2.5-Coder-32B-Instruct| 5120   | 27648 | 64     | 40    | 8  | 152,064 | no   |
| 14b     | Qwen/Qwen2.5-Coder-14B-Instruct| 5120   | 13824 | 48     | 40    | 8  | 152,064 | no   |
| 7b      | Qwen/Qwen2.5-Coder-7B-Instruct | 3584   | 18944 | 28     | 28    | 4  | 152,064 | no   |
| qwen15b | Qwen/Qwen2.5-1.5B-Instruct     | 1536   | 8960  | 28     | 12    | 2  | 151,936 | yes  |
| qwen05b | Qwen/Qwen2.5-0.5B-Instruct     | 896    | 4864  | 24     | 14    | 2  | 151,936 | yes  |

`PARAMS` holds each shape's parameter count as counted on the meta device (no memory used);
the model cards round them to 32.5B (the card's figure; the counted 32.76B includes the
untied 0.78B lm_head), 14.7B, 7.61B, 1.54B and 0.49B.

Every folder written here holds the shape's config.json and the tiny offline BPE tokenizer of
`emergent.models.tiny` (765 tokens): token ids stay below 765, which changes neither the speed
nor the memory of a step (the embedding and lm_head keep every published row).
"""
from __future__ import annotations

import json
from pathlib import Path

import common  # noqa: F401  (sets sys.path and offline env)

from emergent.pipeline.estimate import KNOWN_CONFIGS

# the shapes are the package's one table of published configs (emergent.pipeline.estimate:
# what `emergent estimate` sizes is what these scripts build), plus the fields transformers
# needs to build the model
_QWEN2 = dict(model_type="qwen2", hidden_act="silu", rope_theta=1000000.0, rms_norm_eps=1e-6,
              max_position_embeddings=32768, initializer_range=0.02, attention_dropout=0.0,
              use_sliding_window=False, sliding_window=None)
HUB_IDS = {"32b": "Qwen/Qwen2.5-Coder-32B-Instruct", "14b": "Qwen/Qwen2.5-Coder-14B-Instruct",
           "7b": "Qwen/Qwen2.5-Coder-7B-Instruct", "qwen15b": "Qwen/Qwen2.5-1.5B-Instruct",
           "qwen05b": "Qwen/Qwen2.5-0.5B-Instruct"}
_SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "vocab_size", "tie_word_embeddings")
PUBLISHED = {name: dict(_QWEN2, hub_id=hub, **{k: KNOWN_CONFIGS[hub][k] for k in _SHAPE_KEYS})
             for name, hub in HUB_IDS.items()}
# the dry-run shape of memory_32b.py: Qwen2-shaped, 2 layers, every part of the 32B's
# network (GQA, biases, untied lm_head) at toy size
PUBLISHED["tiny2"] = dict(_QWEN2, hub_id=None, hidden_size=64, intermediate_size=160,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          vocab_size=1024, tie_word_embeddings=False)
# parameters counted on the meta device (tests/train/test_benchmark_memory_32b.py checks them)
PARAMS = {"32b": 32_763_876_352, "14b": 14_770_033_664, "7b": 7_615_616_512,
          "qwen15b": 1_543_714_304, "qwen05b": 494_032_768}
MODEL_CARD_BILLIONS = {"32b": 32.5, "14b": 14.7, "7b": 7.61, "qwen15b": 1.54, "qwen05b": 0.49}

# a shrunken shape for CPU tests of the building code (--shrink): the published config with
# these fields replaced (every published vocabulary row kept)
SHRINK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
              num_key_value_heads=1)


def qwen_config(name: str, **overrides):
    """The transformers Qwen2Config of a published shape (`overrides` replace fields)."""
    from transformers import Qwen2Config

    fields = {k: v for k, v in PUBLISHED[name].items() if k not in ("hub_id", "model_type")}
    fields.update(overrides)
    return Qwen2Config(**fields)


def meta_model(config, dtype=None):
    """The model of `config` on the meta device: its structure and parameter count, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype or torch.bfloat16)


def count_meta_params(config) -> int:
    return sum(p.numel() for p in meta_model(config).parameters())


def write_folder(config, out_dir: Path) -> Path:
    """config.json of `config` + the tiny offline tokenizer (its eos/pad ids written into the
    config) in `out_dir`: what `emergent.models.loading.load_tokenizer` and
    `emergent.pipeline.estimate.model_shape` read. No weights."""
    from emergent.models.tiny import build_tokenizer, builtin_corpus

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(builtin_corpus())
    config.eos_token_id, config.pad_token_id, config.bos_token_id = (
        tok.eos_token_id, tok.pad_token_id, None)
    config.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_random_model(name: str, out_dir: Path, *, shrink: bool = False, seed: int = 0) -> Path:
    """A random-init model of a published shape saved in bf16 (config + tokenizer + weights),
    loadable by `emergent.models.loading.load_model`; `shrink`: the SHRINK fields replaced (CPU
    tests). Records the shape in SHAPE.json."""
    import torch
    from transformers import AutoModelForCausalLM

    from emergent.core.log import quiet_transformers

    out = Path(out_dir)
    if (out / "SHAPE.json").exists():
        return out
    config = qwen_config(name, **(SHRINK if shrink else {}))
    write_folder(config, out)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with quiet_transformers():  # no "Writing model shards" bar
        model.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    (out / "SHAPE.json").write_text(json.dumps({
        "shape": name, "published": PUBLISHED[name]["hub_id"], "shrunk": shrink,
        "parameters": n, "seed": seed, "dtype": "bf16",
        "note": "random-init weights of a published shape, built offline: speed and memory "
                "numbers only, never quality"}, indent=1))
    return out
