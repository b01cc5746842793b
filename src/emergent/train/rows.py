"""Training rows: an example rendered to token ids and a loss mask, fitted to `train.max_length`.

A row is one `(ids, mask)` sequence (SFT) or a preference pair of them (DPO); every objective
applies the same overlong policy (`data.overlong`) and drops examples with no trained token, and
counts what happened for the run's manifest.
"""
from __future__ import annotations


def new_counts() -> dict:
    """The manifest's rendering counters, all zero."""
    return {"rendered": 0, "truncated": 0, "dropped_overlong": 0, "dropped_no_trained_tokens": 0}


def fit_example(cfg, seqs: list, counts: dict):
    """The overlong policy (`data.overlong`) and the no-trained-token check for one example's
    rendered sequences [(ids, mask), ...] (one, or a preference pair's two); None = dropped."""
    max_len = cfg.train.max_length
    if max(len(ids) for ids, _ in seqs) > max_len:
        if cfg.data.overlong == "drop":
            counts["dropped_overlong"] += 1
            return None
        seqs = [(ids[:max_len], mask[:max_len]) for ids, mask in seqs]
        counts["truncated"] += 1
    if any(sum(mask[1:]) == 0 for _, mask in seqs):
        counts["dropped_no_trained_tokens"] += 1
        return None
    counts["rendered"] += 1
    return seqs
