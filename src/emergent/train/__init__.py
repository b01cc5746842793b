"""The one LoRA training loop, its batching, token log-probabilities and objectives (SFT, DPO)."""
