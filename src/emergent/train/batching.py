"""Turning rendered examples into padded micro-batches that waste little padding.

`length_grouped`: shuffle (seeded, per epoch), cut into mega-chunks, sort each chunk by length,
slice into micro-batches, shuffle the micro-batches. Order is a pure function of
(seed, epoch), which is what makes resume-after-kill exact.
"""
from __future__ import annotations

import math
import random


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                  mode: str = "length_grouped", mega: int = 64) -> list[list[int]]:
    idx = list(range(len(lengths)))
    rng = random.Random(f"order-{seed}-{epoch}")
    rng.shuffle(idx)
    if mode == "shuffled":
        return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    chunk = batch_size * mega
    batches = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c:c + chunk], key=lambda i: -lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def schedule(lengths: list[int], batch_size: int, grad_accum: int, seed: int, epochs: float,
             max_steps: int | None, mode: str) -> list[list[list[int]]]:
    """The whole run as optimizer steps, each a list of micro-batches (lists of indices)."""
    per_epoch = epoch_batches(lengths, batch_size, seed, 0, mode)
    steps_per_epoch = math.ceil(len(per_epoch) / grad_accum)
    total = max_steps if max_steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    steps, epoch, micro = [], 0, per_epoch
    while len(steps) < total:
        for s in range(0, len(micro), grad_accum):
            steps.append(micro[s:s + grad_accum])
            if len(steps) == total:
                break
        epoch += 1
        micro = epoch_batches(lengths, batch_size, seed, epoch, mode)
    return steps


def pack_step(step: list[int], lengths: list[int], max_tokens: int,
              rows_per_example: int = 1) -> list[list[int]]:
    """Split one optimizer step's examples into as few micro-batches as fit `max_tokens`
    padded tokens each (rows x longest row), longest first. With `schedule(..., batch_size x
    grad_accum, 1, ...)` a step's examples already have similar lengths (length-grouped), so
    this adds little padding, and a step of many short examples costs a few forward passes
    instead of grad_accum of them; the step's examples and its token-normalised loss are the
    same. `rows_per_example` is 2 for preference pairs (chosen and rejected rows)."""
    out: list[list[int]] = []
    for i in sorted(step, key=lambda i: -lengths[i]):
        if out and (len(out[-1]) + 1) * rows_per_example * lengths[out[-1][0]] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (-100 where not trained)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for r, (ids, mask) in enumerate(examples):
        n = len(ids)
        input_ids[r, :n] = torch.tensor(ids)
        attn[r, :n] = 1
        labels[r, :n] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids),
                                    torch.tensor(-100))
    return input_ids, attn, labels


def padding_fraction(batch_lengths: list[list[int]]) -> float:
    real = sum(sum(b) for b in batch_lengths)
    total = sum(max(b) * len(b) for b in batch_lengths if b)
    return 0.0 if total == 0 else 1.0 - real / total
