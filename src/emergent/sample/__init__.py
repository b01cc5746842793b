"""Sampling answers from a base model or an adapter, with optional steering/ablation hooks."""
