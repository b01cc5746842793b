"""Turning rendered examples into micro-batches that waste little padding, or none.

`length_grouped`: shuffle (seeded, per epoch), cut into mega-chunks, sort each chunk by length,
slice into micro-batches, shuffle the micro-batches. Order is a pure function of
(seed, epoch), which is what makes resume-after-kill exact.

`train.padding_free`: a micro-batch is one row, its examples end to end (`collate_packed`),
position ids restarting at each example, which the model uses to keep them apart (transformers
masks packed sequences block-diagonally; emergent.train.sft.check_packing refuses a model that
does not); a token budget then counts real tokens, not rows x longest row.

`optimizer_steps` is the one definition of how many optimizer steps a run takes; the planners
(`emergent estimate`, `emergent run --dry-run`, the reward-bias plan) call it too.
"""
from __future__ import annotations

import math
import random

from emergent.core.errors import UserError


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> int:
    """Optimizer steps in one pass over `n_examples`: micro-batches of `batch_size` (the last
    one may be short), `grad_accum` of them per step (the last step may hold fewer)."""
    return math.ceil(math.ceil(n_examples / batch_size) / grad_accum)


def optimizer_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: float,
                    max_steps: int | None = None) -> int:
    """The number of optimizer steps a run of `n_examples` takes (what `schedule` yields):
    `max_steps` when set, else `epochs` passes rounded up, at least one; none without examples."""
    if max_steps is not None:
        return max_steps
    if n_examples == 0:
        return 0
    return max(1, math.ceil(epochs * steps_per_epoch(n_examples, batch_size, grad_accum)))


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
    total = optimizer_steps(len(lengths), batch_size, grad_accum, epochs, max_steps)
    steps, epoch, micro = [], 0, epoch_batches(lengths, batch_size, seed, 0, mode)
    while len(steps) < total:
        for s in range(0, len(micro), grad_accum):
            steps.append(micro[s:s + grad_accum])
            if len(steps) == total:
                break
        epoch += 1
        micro = epoch_batches(lengths, batch_size, seed, epoch, mode)
    return steps


def micro_batch_tokens(cfg) -> int:
    """The padded-token budget of a forward pass (0: micro-batches of batch_size examples)."""
    t = cfg.train
    if t.micro_batch_tokens is None:
        return t.batch_size * t.max_length if t.grad_accum > 1 else 0
    if t.micro_batch_tokens < 0:
        raise UserError(f"train.micro_batch_tokens must be >= 0, got {t.micro_batch_tokens}")
    return t.micro_batch_tokens


def plan(cfg, lengths: list[int], rows_per_example: int = 1) -> list[list[list[int]]]:
    """The run's optimizer steps, each a list of micro-batches of example indices. With a token
    budget (`micro_batch_tokens`): length-grouped whole steps, each split by `pack_step`; else
    micro-batches of `train.batch_size`, `train.grad_accum` to a step (`schedule`)."""
    t = cfg.train
    budget = micro_batch_tokens(cfg)
    if not budget:
        return schedule(lengths, t.batch_size, t.grad_accum, t.seed, t.epochs, t.max_steps,
                        t.batching)
    steps = schedule(lengths, t.batch_size * t.grad_accum, 1, t.seed, t.epochs, t.max_steps,
                     t.batching)
    return [pack_step(st[0], lengths, budget, rows_per_example, t.padding_free) for st in steps]


def pack_step(step: list[int], lengths: list[int], max_tokens: int,
              rows_per_example: int = 1, padding_free: bool = False) -> list[list[int]]:
    """Split one optimizer step's examples into as few micro-batches as fit `max_tokens`
    tokens each, longest first: padded tokens (rows x longest row), or with `padding_free` the
    examples' own tokens (one packed row). With `schedule(..., batch_size x grad_accum, 1,
    ...)` a step's examples already have similar lengths (length-grouped), so this adds little
    padding, and a step of many short examples costs a few forward passes instead of
    grad_accum of them; the step's examples and its token-normalised loss are the same.
    `rows_per_example` is 2 for preference pairs (chosen and rejected rows)."""
    out: list[list[int]] = []
    for i in sorted(step, key=lambda i: -lengths[i]):
        if out and _tokens(out[-1] + [i], lengths, rows_per_example, padding_free) <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _tokens(mb: list[int], lengths: list[int], rows_per_example: int, padding_free: bool) -> int:
    """Tokens of a forward pass over micro-batch `mb` (its examples longest first)."""
    if padding_free:
        return sum(lengths[i] for i in mb)
    return len(mb) * rows_per_example * lengths[mb[0]]


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


def collate_packed(examples: list[tuple[list[int], list[int]]]):
    """One row, the examples end to end without padding (`train.padding_free`): input_ids,
    attention_mask (all ones), labels (-100 where not trained, and at every example's first
    token: no position learns to predict the next example) and position_ids (0, 1, ... again
    for each example), each of shape (1, total tokens). The trained tokens are those of
    `collate`'s rows."""
    import torch

    ids, labels, positions = [], [], []
    for seq, mask in examples:
        ids += seq
        labels += [-100] + [t if m else -100 for t, m in zip(seq[1:], mask[1:])]
        positions += range(len(seq))
    row = [torch.tensor([x], dtype=torch.long) for x in (ids, labels, positions)]
    return row[0], torch.ones_like(row[0]), row[1], row[2]


def padding_fraction(batch_lengths: list[list[int]]) -> float:
    real = sum(sum(b) for b in batch_lengths)
    total = sum(max(b) * len(b) for b in batch_lengths if b)
    return 0.0 if total == 0 else 1.0 - real / total


def shard(plan: list[list[list[int]]], lengths: list[int], rank: int, world: int,
          max_tokens: int = 0, rows_per_example: int = 1,
          padding_free: bool = False) -> list[list[list[int]]]:
    """Rank `rank`'s micro-batches of every optimizer step of `plan` (data-parallel training
    over `world` processes; emergent.train.distributed). Every rank computes the same global
    plan from the seed, then takes its part of each step, so the split is deterministic and the
    ranks together run exactly the step's examples. With a token budget (`max_tokens`, see
    `pack_step`) a step's examples, longest first, are dealt out in turn (rank r takes the r-th,
    (r+world)-th, ...: similar work per rank) and each rank packs its own into micro-batches;
    without one, rank r takes micro-batches r, r+world, ... of the step (set grad_accum to a
    multiple of `world` to keep every rank busy). A rank may get nothing in a short step; it
    then adds zero to the step's gradient. `world` 1 returns `plan` itself."""
    if world == 1:
        return plan
    out = []
    for step in plan:
        if max_tokens:
            mine = sorted((i for mb in step for i in mb), key=lambda i: -lengths[i])[rank::world]
            out.append(pack_step(mine, lengths, max_tokens, rows_per_example, padding_free))
        else:
            out.append(step[rank::world])
    return out
