"""Log-probabilities of the trained tokens without full-vocabulary logits for all of them.

The plain loss (`model(...).logits` then cross-entropy) holds fp32 logits of every kept
position at once, plus their log-softmax and its gradient: 12 bytes x tokens x vocabulary, the
largest tensors of a LoRA step on a 49k-150k vocabulary. Here the decoder's last hidden states are
computed once, only the positions that predict a trained token are gathered, and `lm_head` +
log-softmax run over chunks of `chunk` of those positions, forward and backward, so at most one
chunk's logits exist at any time (`train.loss_chunk_tokens`).

Same numbers as the plain path (to float rounding): log p(target) = logit[target] -
logsumexp(logits), with the architecture's final-logit scaling (`logit_scale`, `logits_scaling`)
and soft-capping (`final_logit_softcapping`) applied as the model's own forward does.

Gradient: when the lm_head weight is frozen (LoRA), d log p / d hidden of each position is
computed in the forward pass, chunk by chunk, and kept (positions x hidden fp32, small); the
backward pass only scales it by the incoming per-token gradient, so lm_head's matmul runs twice
per chunk as in the plain path, not three times as under `torch.utils.checkpoint`. When the weight
trains (full fine-tuning), the backward pass recomputes each chunk's logits instead.
"""
from __future__ import annotations

from emergent.core.errors import UserError
from emergent.train.kernels import batch_kwargs

# config attributes of final-logit transforms, and how they act on the logits
_SCALE_MUL = "logit_scale"  # Cohere: logits * logit_scale
_SCALE_DIV = "logits_scaling"  # Granite: logits / logits_scaling
_SOFTCAP = "final_logit_softcapping"  # Gemma 2/3: cap * tanh(logits / cap)


def lm_parts(model):
    """(decoder, lm_head, scale, softcap) of a causal LM, plain or peft-wrapped; a UserError for
    a structure the chunked loss does not handle (then set train.loss_chunk_tokens: 0)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, "model", None)
    if decoder is None and hasattr(base, "get_decoder"):
        decoder = base.get_decoder()
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    name = type(base).__name__
    if decoder is None or type(head) is not torch.nn.Linear:
        raise UserError(f"train.loss_chunk_tokens: {name} has no plain decoder + linear lm_head "
                        f"(lm_head is {type(head).__name__}); set train.loss_chunk_tokens: 0")
    cfg = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    scale = 1.0
    if getattr(cfg, _SCALE_MUL, None) is not None:
        scale *= float(getattr(cfg, _SCALE_MUL))
    if getattr(cfg, _SCALE_DIV, None) is not None:
        scale /= float(getattr(cfg, _SCALE_DIV))
    softcap = getattr(cfg, _SOFTCAP, None)
    return decoder, head, scale, (float(softcap) if softcap else None)


def _logits(h, weight, bias, scale, softcap):
    """fp32 logits of one chunk, and tanh(...) when soft-capped (for the gradient)."""
    import torch.nn.functional as F

    x = F.linear(h.to(weight.dtype), weight, bias).float()  # fresh either way: edited in place
    if scale != 1.0:
        x.mul_(scale)
    if softcap is None:
        return x, None
    t = (x / softcap).tanh_()
    return t * softcap, t


def _chunk_logps(h, weight, bias, targets, scale, softcap, want_dlogits: bool):
    """log p(targets) of one chunk (fp32), and d log p / d (lm_head output) when asked."""
    import torch

    y, t = _logits(h, weight, bias, scale, softcap)
    lse = torch.logsumexp(y, dim=-1)
    logp = y.gather(-1, targets[:, None]).squeeze(-1) - lse
    if not want_dlogits:
        return logp, None
    d = y.sub_(lse[:, None]).exp_().neg_()  # -softmax, in place of the logits
    d[torch.arange(len(targets), device=d.device), targets] += 1.0  # onehot - softmax
    if softcap is not None:
        d.mul_(1.0 - t * t)
    if scale != 1.0:
        d.mul_(scale)
    return logp, d


def _recompute_backward(ctx, grad_out):
    """Gradients for hidden, weight and bias, recomputing each chunk's logits."""
    import torch

    hidden, weight, bias, targets = ctx.saved_tensors
    gh = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
    gw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
        if ctx.needs_input_grad[1] else None
    gb = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) \
        if bias is not None and ctx.needs_input_grad[2] else None
    for s in range(0, len(targets), ctx.chunk):
        h, tg = hidden[s:s + ctx.chunk], targets[s:s + ctx.chunk]
        _, d = _chunk_logps(h, weight, bias, tg, ctx.scale, ctx.softcap, True)
        d.mul_(grad_out[s:s + ctx.chunk, None])
        dc = d.to(weight.dtype)
        if gh is not None:
            gh[s:s + ctx.chunk] = dc @ weight
        if gw is not None:
            gw.add_((dc.t() @ h.to(weight.dtype)).float())
        if gb is not None:
            gb.add_(d.sum(0))
        del d, dc
    return (gh, None if gw is None else gw.to(weight.dtype),
            None if gb is None else gb.to(bias.dtype), None, None, None, None)


def trained_positions(labels):
    """(mask over positions 0..T-2 of the rows that predict a trained token, targets (N,))."""
    mask = labels[:, 1:] != -100
    return mask, labels[:, 1:][mask]


def token_logps(model, input_ids, attn, labels, chunk: int, position_ids=None):
    """log p(token) of every trained token of a micro-batch, row-major (N,) fp32, and the
    (N,) row index of each: the decoder once, then lm_head + log-softmax `chunk` positions at a
    time (module docstring). With `position_ids` (a packed row, emergent.train.batching.
    collate_packed) the model is given those instead of the attention mask."""
    decoder, head, scale, softcap = lm_parts(model)
    hidden = decoder(input_ids=input_ids, use_cache=False,
                     **batch_kwargs(attn, position_ids)).last_hidden_state
    mask, targets = trained_positions(labels)
    h = hidden[:, :-1][mask]
    rows = mask.nonzero()[:, 0]
    logp = _function().apply(h, head.weight, head.bias, targets, int(chunk), scale, softcap)
    return logp, rows


_CACHED: dict = {}


def _function():
    """The autograd Function, built once (this package imports torch lazily)."""
    if "fn" not in _CACHED:
        _CACHED["fn"] = _make_function()
    return _CACHED["fn"]


def _make_function():
    import torch

    class ChunkedTokenLogps(torch.autograd.Function):
        """(hidden (N, H), weight (V, H), bias, targets (N,), chunk, scale, softcap) -> (N,)."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, chunk, scale, softcap):
            fused = ctx.needs_input_grad[0] and not (
                ctx.needs_input_grad[1] or (bias is not None and ctx.needs_input_grad[2]))
            out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
            dh = (torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
                  if fused else None)
            for s in range(0, len(targets), chunk):
                logp, d = _chunk_logps(hidden[s:s + chunk], weight, bias, targets[s:s + chunk],
                                       scale, softcap, fused)
                out[s:s + chunk] = logp
                if fused:
                    dh[s:s + chunk] = (d.to(weight.dtype) @ weight).float()
                del d
            ctx.chunk, ctx.scale, ctx.softcap, ctx.fused, ctx.hdtype = (chunk, scale, softcap,
                                                                        fused, hidden.dtype)
            ctx.save_for_backward(*((dh,) if fused else (hidden, weight, bias, targets)))
            return out

        @staticmethod
        def backward(ctx, grad_out):
            if ctx.fused:
                (dh,) = ctx.saved_tensors
                return ((dh * grad_out[:, None]).to(ctx.hdtype),) + (None,) * 6
            return _recompute_backward(ctx, grad_out)

    return ChunkedTokenLogps
