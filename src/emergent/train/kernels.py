"""Which attention kernels a training forward pass may use."""
from __future__ import annotations

import contextlib

# `train.padding_free` under SDPA: attention per packed example (emergent.train.sft)
SEGMENT_SDPA = "emergent_segment_sdpa"


def attention_kernels(device: str):
    """On CUDA, keep SDPA off the cuDNN backend while training: it builds a plan for every new
    sequence length (measured 8x slower per micro-batch on new lengths; benchmarks/README.md).
    Elsewhere a no-op context."""
    if device != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def packed_kwargs(position_ids) -> dict:
    """The model keywords of one packed row (emergent.train.batching.collate_packed): its
    position ids, and where each example starts (`cu_seq_lens_q/k`, `max_length_q/k`:
    transformers' keywords for packed rows, which flash-attention kernels and
    `segment_sdpa` read; other attention implementations mask by the position ids)."""
    import torch

    starts = (position_ids[0] == 0).nonzero()[:, 0]
    cu = torch.cat([starts, starts.new_tensor([position_ids.shape[1]])]).to(torch.int32)
    longest = int((cu[1:] - cu[:-1]).max())
    return {"position_ids": position_ids, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": longest, "max_length_k": longest}


def batch_kwargs(attention_mask, position_ids=None) -> dict:
    """How a micro-batch reaches the model: its attention mask (padded rows), or with position
    ids (one packed row) `packed_kwargs` instead of the mask."""
    if position_ids is None:
        return {"attention_mask": attention_mask}
    return packed_kwargs(position_ids)


def segment_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0,
                 scaling=None, is_causal=None, **kwargs):
    """SDPA over each example of a packed row on its own (causal, grouped-query heads kept
    grouped, no mask tensor): the attention of padded rows without their padding, where plain
    SDPA on a packed row computes every example against every other under a block-diagonal
    mask. Without `cu_seq_lens_q` (not a packed row) it is transformers' SDPA."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or attention_mask is not None or query.shape[0] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    bounds = cu.tolist()
    out = torch.cat([torch.nn.functional.scaled_dot_product_attention(
        query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout, scale=scaling,
        is_causal=True, enable_gqa=gqa) for s, e in zip(bounds[:-1], bounds[1:])], dim=2)
    return out.transpose(1, 2).contiguous(), None


def use_segment_sdpa(model) -> bool:
    """Switch a model that runs transformers' SDPA to `segment_sdpa` (registered under
    SEGMENT_SDPA, with no mask function: transformers then builds no mask); True if switched.
    Other implementations are left as they are (flash attention reads `cu_seq_lens_q`)."""
    from transformers import AttentionInterface

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(SEGMENT_SDPA, segment_sdpa)
    base.set_attn_implementation(SEGMENT_SDPA)
    return base.config._attn_implementation == SEGMENT_SDPA
