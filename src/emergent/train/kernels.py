"""Which attention kernels a training forward pass may use."""
from __future__ import annotations

import contextlib


def attention_kernels(device: str):
    """On CUDA, keep SDPA off the cuDNN backend while training: it builds a plan for every new
    sequence length (measured 8x slower per micro-batch on new lengths; benchmarks/README.md).
    Elsewhere a no-op context."""
    if device != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])
