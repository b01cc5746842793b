"""Supervised fine-tuning (`train.objective: sft`, the default): rows and loss.

Rows: each chat (`data.format: chat`) or text example rendered once; with `train.loss:
assistant_only` only the assistant turns carry loss (emergent.data.render).

Loss: sum of token cross-entropies over an optimizer step's accumulated micro-batches divided by
the number of trained tokens in that whole step (not a mean of per-batch means).
"""
from __future__ import annotations

from emergent.core.errors import UserError
from emergent.data.render import render_conversation, render_text
from emergent.train.kernels import attention_kernels, batch_kwargs, packed_kwargs
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
    (`logits_to_keep`), not over the prompt and padding, all at once. Same loss either way.

    A micro-batch is `(input_ids, attention_mask, labels)`, or with a fourth tensor, position
    ids, one packed row (`train.padding_free`, emergent.train.batching.collate_packed): the
    model then gets the position ids instead of the mask and keeps the examples apart."""
    import torch

    total = 0.0
    for batch in micro_batches:
        input_ids, attn, labels, *packed = (x.to(device) for x in batch)
        positions = packed[0] if packed else None
        with attention_kernels(device):
            if loss_chunk_tokens:
                loss_sum = -token_logps(model, input_ids, attn, labels, loss_chunk_tokens,
                                        positions)[0].sum()
            else:
                loss_sum = _kept_logits_loss_sum(model, input_ids, attn, labels, positions)
        (loss_sum / n_trained * weight).backward()
        total += loss_sum.item()
        del loss_sum
    return torch.tensor(total / n_trained)


def _kept_logits_loss_sum(model, input_ids, attn, labels, positions=None):
    """Summed cross-entropy from the model's logits at the positions that predict a trained
    token in some row (`logits_to_keep`)."""
    import torch.nn.functional as F

    keep = (labels[:, 1:] != -100).any(dim=0).nonzero().squeeze(-1)  # predicting positions
    logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=keep,
                   **batch_kwargs(attn, positions)).logits
    targets = labels[:, 1:].index_select(1, keep)
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=-100, reduction="sum")


def check_packing(model, device: str) -> None:
    """Refuse `train.padding_free` for a model that does not keep packed examples apart: the
    logits of a short random sequence packed after another (position ids restarting) must
    match those of the sequence alone far more closely than those of the same row attended
    across (what a model that ignores the position ids computes). One forward of 24 tokens."""
    import torch

    n = model.get_input_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, n, (1, k), generator=g).to(device) for k in (11, 13))
    row = torch.cat([a, b], dim=1)
    positions = torch.cat([torch.arange(11), torch.arange(13)])[None].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), attention_kernels(device):
            def logits(ids, **kw):
                return model(input_ids=ids, use_cache=False, **kw).logits[0, -13:].float()
            alone = logits(b)
            packed = logits(row, **packed_kwargs(positions))
            across = logits(row, position_ids=positions, attention_mask=torch.ones_like(row))
    finally:
        model.train(was_training)
    off, leak = (packed - alone).abs().max().item(), (across - alone).abs().max().item()
    if not (off <= 0.1 * leak or off <= 1e-5 * max(1.0, alone.abs().max().item())):
        name = type(model.get_base_model() if hasattr(model, "get_base_model") else model)
        raise UserError(f"train.padding_free: {name.__name__} "
                        f"({getattr(model.config, '_attn_implementation', '?')} attention) does "
                        f"not keep packed examples apart (logits off by {off:.3g} alone vs "
                        f"packed); set train.padding_free: false")
