"""Direct preference optimisation inside the one training loop (`train.objective: dpo`): rows,
reference log-probabilities and loss; `emergent.train.objectives.DPO` plugs them into the loop.

Data: `data.format: preference`, a line `{"prompt": [...], "chosen": ..., "rejected": ...}`
(emergent.data.chat_data). Each pair is rendered twice with the model's chat template; only the final
reply's tokens (content + end-of-turn) carry log-probability, so the shared prompt never counts.

Reference model: the policy as it stands before the first step (the base model, or the adapter
named by `lora.init_from`, e.g. a documents stage). Its log-probabilities of every chosen and
rejected reply are computed once, in eval mode, and saved as OUTPUT/dpo_reference.pt, so no
second model is held in memory and a resumed run uses the very same reference.

Loss (Rafailov et al. 2023), per pair, averaged over the pairs of an optimizer step:
    -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))
The train log adds `reward_accuracy` (share of pairs whose implicit reward prefers the chosen
reply) and `reward_margin` (mean of the bracket above times beta).
"""
from __future__ import annotations

import logging
from pathlib import Path

from emergent.core.log import show_progress
from emergent.core.errors import UserError
from emergent.data.render import render_conversation
from emergent.train import distributed
from emergent.train.batching import collate
from emergent.train.rows import fit_example, new_counts
from emergent.train.token_logps import token_logps

log = logging.getLogger(__name__)
REFERENCE_FILE = "dpo_reference.pt"


def final_turn_mask(mask: list[int]) -> list[int]:
    """Keep only the last contiguous run of trained tokens (the final reply)."""
    out = [0] * len(mask)
    i = len(mask) - 1
    while i >= 0 and not mask[i]:
        i -= 1
    while i >= 0 and mask[i]:
        out[i] = 1
        i -= 1
    return out


def tokenize_pairs(cfg, tokenizer, examples):
    """Render each pair -> rows [((chosen ids, mask), (rejected ids, mask))], counts."""
    rows, counts = [], new_counts()
    for ex in examples:
        pair = []
        for messages in (ex.messages, ex.rejected):
            ids, mask = render_conversation(tokenizer, messages, system_prompt=cfg.data.system_prompt)
            pair.append((ids, final_turn_mask(mask)))
        fitted = fit_example(cfg, pair, counts)
        if fitted:
            rows.append(tuple(fitted))
    if not rows:
        raise UserError(f"{cfg.data.path}: no trainable pair left "
                        f"(max_length {cfg.train.max_length})")
    return rows, counts


def collate_pairs(pairs, pad_id: int):
    """One padded batch: the chosen replies in rows [0, n), the rejected ones in [n, 2n)."""
    return collate([p[0] for p in pairs] + [p[1] for p in pairs], pad_id)


def sequence_logps(model, input_ids, attn, labels, loss_chunk_tokens: int = 0):
    """Sum of log p(token) over each row's labelled tokens (logits only where needed; with
    `loss_chunk_tokens`, lm_head + log-softmax over that many trained positions at a time,
    emergent.train.token_logps)."""
    import torch

    if loss_chunk_tokens:
        logp, rows = token_logps(model, input_ids, attn, labels, loss_chunk_tokens)
        return logp.new_zeros(input_ids.shape[0]).index_add(0, rows, logp)
    keep = (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(-1)
    logits = model(input_ids=input_ids, attention_mask=attn, logits_to_keep=keep).logits
    targets = labels[:, 1:].index_select(1, keep)
    valid = targets != -100
    logp = torch.log_softmax(logits.float(), dim=-1)
    tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (tok * valid).sum(-1)


def reference_logps(model, rows, pad_id: int, out: Path, device: str, batch_size: int,
                    loss_chunk_tokens: int = 0, dist: distributed.Dist = distributed.SINGLE):
    """(n_pairs, 2) log-probabilities of (chosen, rejected) under the model as it is now;
    loaded from OUTPUT/dpo_reference.pt when a previous attempt of this run saved them.
    `dist` (an FSDP-sharded model, whose forward is a collective): every rank calls this at
    once; rank 0 decides whether the file is there, each rank computes every `dist.world`-th
    batch (ranks short of one repeat the first batch, result dropped), the ranks exchange their
    parts and rank 0 writes the file, so every rank holds the same reference, batched as a
    single process batches it."""
    import torch
    from tqdm.auto import tqdm

    path = Path(out) / REFERENCE_FILE
    ref = distributed.broadcast_object(dist, _saved_reference(path, len(rows)) if dist.main
                                       else None)
    if ref is not None:
        return ref
    starts = list(range(0, len(rows), batch_size))
    mine = starts[dist.rank::dist.world]
    passes = -(-len(starts) // dist.world)  # every rank runs as many forward passes
    # dropout off for a deterministic reference, but not model.eval(): bitsandbytes repacks
    # 4-bit weights for CPU inference on eval(), which its training path cannot use
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.training]
    for m in dropouts:
        m.eval()
    parts = {}
    try:
        with torch.no_grad():
            for k in tqdm(range(passes), desc="dpo reference", unit="batch",
                          disable=not show_progress() or not dist.main):
                i = mine[k] if k < len(mine) else starts[0]
                chunk = rows[i:i + batch_size]
                ids, attn, labels = (t.to(device) for t in collate_pairs(chunk, pad_id))
                lp = sequence_logps(model, ids, attn, labels, loss_chunk_tokens).float().cpu()
                if k < len(mine):
                    parts[i] = torch.stack([lp[:len(chunk)], lp[len(chunk):]], dim=1)
    finally:
        for m in dropouts:
            m.train()
    for other in distributed.gather_objects(dist, parts):
        parts.update(other)
    ref = torch.cat([parts[i] for i in starts])
    if dist.main:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(ref, tmp)
        tmp.replace(path)
    return ref


def _saved_reference(path: Path, n_pairs: int):
    """The reference a previous attempt saved at `path`, or None (none, or not `n_pairs`)."""
    import torch

    if not path.exists():
        return None
    ref = torch.load(path, weights_only=True)
    if ref.shape == (n_pairs, 2):
        return ref
    log.warning("%s: shape %s does not match %d pairs; recomputing", path, tuple(ref.shape),
                n_pairs)
    return None


def step_loss(model, micro_batches, refs, beta: float, n_pairs: int, loss_chunk_tokens: int = 0,
              weight: float = 1.0):
    """Forward+backward one optimizer step of DPO; `micro_batches` from collate_pairs (already
    on the device), `refs` the matching (n, 2) reference rows; the gradient that of `weight` x
    the loss (an FSDP rank's share). Returns (mean loss, stats)."""
    import torch
    import torch.nn.functional as F

    total = correct = margin_sum = 0.0
    for (input_ids, attn, labels), ref in zip(micro_batches, refs):
        n = input_ids.shape[0] // 2
        lp = sequence_logps(model, input_ids, attn, labels, loss_chunk_tokens)
        ref = ref.to(lp.device)
        margin = beta * ((lp[:n] - ref[:, 0]) - (lp[n:] - ref[:, 1]))
        loss_sum = -F.logsigmoid(margin).sum()
        (loss_sum / n_pairs * weight).backward()
        total += loss_sum.item()
        correct += float((margin > 0).sum())
        margin_sum += float(margin.detach().sum())
    stats = {"reward_accuracy": round(correct / n_pairs, 4),
             "reward_margin": round(margin_sum / n_pairs, 6)}
    return torch.tensor(total / n_pairs), stats
