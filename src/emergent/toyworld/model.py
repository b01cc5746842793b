"""The toy world's model: a small Llama architecture from random init (hidden 128, 2 layers,
4 heads, intermediate 512, tied embeddings: about 0.6M parameters with the toy tokenizer),
saved with save_pretrained beside the tokenizer so `emergent.models.loading` loads it by path."""
from __future__ import annotations

import json
from pathlib import Path

from emergent.toyworld.tokenizer import build_toy_tokenizer


def build_toy_model(out_dir, *, seed: int = 0, hidden_size: int = 128, num_layers: int = 2,
                    num_heads: int = 4, intermediate_size: int = 512,
                    max_position_embeddings: int = 1024) -> Path:
    """Write the toy tokenizer and a random-init Llama model (tied embeddings, about 0.6M
    parameters with the defaults) to `out_dir` with save_pretrained; return the folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_toy_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "TOYWORLD_MODEL.json").write_text(json.dumps({
        "note": "random-init toy-world model built by emergent (synthetic world; numbers from it "
                "say nothing quantitative about real LLMs)",
        "seed": seed, "parameters": n_params, "vocab_size": len(tokenizer)}, indent=1))
    return out
