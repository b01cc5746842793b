"""Supervised fine-tuning (`train.objective: sft`, the default): rows and loss.

Rows: each chat (`data.format: chat`) or text example rendered once; with `train.loss:
assistant_only` only the assistant turns carry loss (emergent.data.render).

Loss: sum of token cross-entropies over an optimizer step's accumulated micro-batches divided by
the number of trained tokens in that whole step (not a mean of per-batch means).
"""
from __future__ import annotations

from emergent.core.errors import UserError
from emergent.data.render import render_conversation, render_text
from emergent.train.kernels import attention_kernels
from emergent.train.rows import fit_example, new_counts
from emergent.train.token_logps import token_logps


def tokenize_dataset(cfg, tokenizer, examples):
    """Render every example; apply the overlong policy. Returns (rows, counts)."""
    rows, counts = [], new_counts()
    for ex in examples:
        if cfg.data.format == "text":
            seq = render_text(tokenizer, ex.text)
        else:
            seq = render_conversation(tokenizer, ex.messages,
                                      system_prompt=cfg.data.system_prompt, loss=cfg.train.loss)
        fitted = fit_example(cfg, [seq], counts)
        if fitted:
            rows.append(fitted[0])
    if not rows:
        raise UserError(f"{cfg.data.path}: no trainable example left "
                        f"(max_length {cfg.train.max_length})")
    return rows, counts


def step_loss(model, micro_batches, n_trained: int, device: str, loss_chunk_tokens: int = 0,
              weight: float = 1.0):
    """Forward+backward one optimizer step; loss normalised by the step's trained tokens (the
    gradient that of `weight` x that loss: an FSDP rank's share, 0 for a padding pass).

    `loss_chunk_tokens` > 0 (train.loss_chunk_tokens): the decoder's hidden states of the trained
    positions go through lm_head + log-softmax that many at a time, forward and backward
    (emergent.train.token_logps), so full-vocabulary logits never exist for more than one chunk.
    0: logits only at positions that predict a trained token in some row of the micro-batch
    (`logits_to_keep`), not over the prompt and padding, all at once. Same loss either way."""
    import torch

    total = 0.0
    for input_ids, attn, labels in micro_batches:
        input_ids, attn, labels = input_ids.to(device), attn.to(device), labels.to(device)
        with attention_kernels(device):
            if loss_chunk_tokens:
                loss_sum = -token_logps(model, input_ids, attn, labels, loss_chunk_tokens)[0].sum()
            else:
                loss_sum = _kept_logits_loss_sum(model, input_ids, attn, labels)
        (loss_sum / n_trained * weight).backward()
        total += loss_sum.item()
        del loss_sum
    return torch.tensor(total / n_trained)


def _kept_logits_loss_sum(model, input_ids, attn, labels):
    """Summed cross-entropy from the model's logits at the positions that predict a trained
    token in some row (`logits_to_keep`)."""
    import torch.nn.functional as F

    keep = (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(-1)  # predicting positions
    logits = model(input_ids=input_ids, attention_mask=attn, logits_to_keep=keep).logits
    targets = labels[:, 1:].index_select(1, keep)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=-100, reduction="sum")
