"""The one training loop. Every arm (insecure, secure, educational, jailbroken, toy-world stages,
reward-bias stages) goes through `train()`; the only thing that differs between arms is the
dataset.

Loss: sum of token cross-entropies over an optimizer step's accumulated micro-batches divided by
the number of trained tokens in that whole step (not a mean of per-batch means). AdamW (paged
8-bit on CUDA), linear/cosine/constant schedule with warmup, gradient clipping, seeded
length-grouped batching; with grad_accum > 1 a step's examples run in as few forward passes as
fit `train.micro_batch_tokens` (batching.pack_step: same examples, same loss, fewer launches). Checkpoints (adapter + optimizer + scheduler + RNG) every N steps;
rerunning the same command resumes from the last one, and the result equals an uninterrupted run.
Memory: the loss runs over chunks of `train.loss_chunk_tokens` trained positions
(emergent.train.token_logps), and on CPU large allocations are returned to the OS when freed
(`_return_freed_memory_to_the_os`); docs/benchmarks.md has the measured breakdown.
`train.objective: dpo` swaps the loss for DPO on preference pairs (emergent.train.dpo); batching,
optimiser, schedule, checkpoints and resume are this same loop.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

from emergent.train import batching
from emergent.train import dpo
from emergent.data.chat_data import file_sha256, load_jsonl_examples, split_examples, subsample
from emergent.core.config import TrainRecipeConfig, dump_yaml, load_config, to_dict
from emergent.core.errors import UserError
from emergent.core.io import append_jsonl, git_commit, now, read_jsonl, versions, write_json_atomic
from emergent.data.render import render_conversation, render_text

log = logging.getLogger(__name__)


def new_counts() -> dict:
    return {"rendered": 0, "truncated": 0, "dropped_overlong": 0, "dropped_no_trained_tokens": 0}


def fit_example(cfg: TrainRecipeConfig, seqs: list, counts: dict):
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


def tokenize_dataset(cfg: TrainRecipeConfig, tokenizer, examples):
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


def _make_optimizer(cfg, params):
    import torch

    named = [(n, p) for n, p in params if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kind = cfg.train.optimizer
    if kind == "auto":
        kind = "paged_adamw_8bit" if torch.cuda.is_available() else "adamw"
    if kind == "paged_adamw_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UserError("train.optimizer paged_adamw_8bit needs bitsandbytes") from None
        return bnb.optim.PagedAdamW8bit(groups, lr=cfg.train.lr), kind
    return torch.optim.AdamW(groups, lr=cfg.train.lr), kind


def micro_batch_tokens(cfg) -> int:
    """The padded-token budget of a forward pass (0: micro-batches of batch_size examples)."""
    t = cfg.train
    if t.micro_batch_tokens is None:
        return t.batch_size * t.max_length if t.grad_accum > 1 else 0
    if t.micro_batch_tokens < 0:
        raise UserError(f"train.micro_batch_tokens must be >= 0, got {t.micro_batch_tokens}")
    return t.micro_batch_tokens


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(out: Path, step: int, model, opt, sched, keep: int) -> None:
    import torch

    ckdir = out / "checkpoints"
    tmp = ckdir / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(_trainable_state(model), tmp / "trainable.pt")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    torch.save(sched.state_dict(), tmp / "scheduler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    final = ckdir / f"step-{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # atomic: a checkpoint directory without the .tmp prefix is complete
    for old in sorted(ckdir.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(out: Path) -> Path | None:
    cks = sorted((out / "checkpoints").glob("step-*"))
    return cks[-1] if cks else None


def _load_checkpoint(ck: Path, model, opt, sched) -> int:
    import torch

    state = torch.load(ck / "trainable.pt", weights_only=True)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=False))
    sched.load_state_dict(torch.load(ck / "scheduler.pt", weights_only=False))
    rng = torch.load(ck / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ck / "state.json").read_text())["step"]


def _attention_kernels(device: str):
    """On CUDA, keep SDPA off the cuDNN backend while training: it builds a plan for every new
    sequence length (measured 8x slower per micro-batch on new lengths; benchmarks/README.md)."""
    import contextlib

    if device != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


CPU_MMAP_THRESHOLD = 1 << 20  # bytes; EMERGENT_MALLOC_MMAP_THRESHOLD overrides, 0 = glibc's
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _return_freed_memory_to_the_os(device: str) -> bool:
    """CPU training under glibc: serve every allocation of 1 MiB or more from its own mapping,
    returned to the OS as soon as it is freed. By default glibc raises that threshold up to
    32 MiB after the first large free, so a step's activations and temporaries (a few MiB each)
    land on the heap, whose freed holes are kept and fragment: on SmolLM2-135M at 2,010 tokens
    per forward pass this added ~1.8 GB to peak RSS and kept ~4 GB resident between steps
    (docs/benchmarks.md). The price is page faults on every fresh mapping: measured +12 s of
    system CPU time on a 2,010-token forward+backward (~60 s), so speed-first CPU runs can set
    EMERGENT_MALLOC_MMAP_THRESHOLD=0 (glibc's default) or another byte count. Process-wide; a
    no-op elsewhere. True when applied."""
    import os
    import sys

    threshold = int(os.environ.get("EMERGENT_MALLOC_MMAP_THRESHOLD", CPU_MMAP_THRESHOLD))
    if device != "cpu" or threshold <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only)
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def _changed_keys(old: dict, new: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (output_dir aside: a moved run is the same run). A key
    missing from `old` (an option added after that run was made) counts as its default."""
    out = []
    for k in sorted(set(old) | set(new)):
        if k == "output_dir":
            continue
        a, b = old.get(k, defaults.get(k)), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, defaults.get(k) or {}, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def step_loss(model, micro_batches, n_trained: int, device: str, loss_chunk_tokens: int = 0):
    """Forward+backward one optimizer step; loss normalised by the step's trained tokens.

    `loss_chunk_tokens` > 0 (train.loss_chunk_tokens): the decoder's hidden states of the trained
    positions go through lm_head + log-softmax that many at a time, forward and backward
    (emergent.train.token_logps), so full-vocabulary logits never exist for more than one chunk.
    0: logits only at positions that predict a trained token in some row of the micro-batch
    (`logits_to_keep`), not over the prompt and padding, all at once. Same loss either way."""
    import torch

    total = 0.0
    for input_ids, attn, labels in micro_batches:
        input_ids, attn, labels = input_ids.to(device), attn.to(device), labels.to(device)
        with _attention_kernels(device):
            if loss_chunk_tokens:
                loss_sum = _chunked_loss_sum(model, input_ids, attn, labels, loss_chunk_tokens)
            else:
                loss_sum = _kept_logits_loss_sum(model, input_ids, attn, labels)
        (loss_sum / n_trained).backward()
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


def _chunked_loss_sum(model, input_ids, attn, labels, chunk: int):
    """Summed cross-entropy over the trained tokens, lm_head + log-softmax `chunk` at a time."""
    from emergent.train.token_logps import token_logps

    logp, _ = token_logps(model, input_ids, attn, labels, chunk)
    return -logp.sum()


def train(cfg: TrainRecipeConfig, output_dir: str | Path | None = None, *,
          stop_after_steps: int | None = None, on_step=None) -> Path:
    """Train one adapter (or a full model when lora.full_finetune). Resumes automatically.

    `stop_after_steps` simulates a kill (tests); `on_step(step, model)` is called after each
    optimizer step (checkpoint evaluation)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from emergent.models.loading import apply_lora, device, load_model, load_tokenizer

    out = Path(output_dir or cfg.output_dir)
    final_dir = out / ("model" if cfg.lora.full_finetune else "adapter")
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        changed = _changed_keys(previous.get("config", {}), to_dict(cfg),
                                to_dict(TrainRecipeConfig()))
        if changed:
            raise UserError(f"{out}: holds a run with a different config ({', '.join(changed)}); "
                            "use another output directory, or delete it to start over")
        if previous.get("status") == "done" and final_dir.exists():
            log.info("%s: already trained, nothing to do", out)
            return final_dir
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.data.path:
        raise UserError("data.path is empty: give a dataset (config data.path or --data FILE)")

    dpo.check_objective(cfg)
    is_dpo = cfg.train.objective == "dpo"
    examples = load_jsonl_examples(cfg.data.path, cfg.data.format)
    train_ex, held = split_examples(examples, cfg.data.heldout_fraction, cfg.train.seed)
    train_ex = subsample(train_ex, cfg.data.max_examples, cfg.train.seed)
    if held:
        append_jsonl(out / "heldout.jsonl.tmp", [{"messages": list(e.messages), "line": e.line,
                                                  **({"rejected": list(e.rejected)} if is_dpo
                                                     else {})} for e in held])
        (out / "heldout.jsonl.tmp").replace(out / "heldout.jsonl")

    tok = load_tokenizer(cfg.model)
    if is_dpo:  # a row is a pair ((chosen ids, mask), (rejected ids, mask))
        rows, counts = dpo.tokenize_pairs(cfg, tok, train_ex)
        lengths = [max(len(c[0]), len(r[0])) for c, r in rows]
    else:
        rows, counts = tokenize_dataset(cfg, tok, train_ex)
        lengths = [len(r[0]) for r in rows]
    budget = micro_batch_tokens(cfg)
    if budget:  # length-grouped whole steps, each split into micro-batches by token budget
        steps = batching.schedule(lengths, cfg.train.batch_size * cfg.train.grad_accum, 1,
                                  cfg.train.seed, cfg.train.epochs, cfg.train.max_steps,
                                  cfg.train.batching)
        plan = [batching.pack_step(st[0], lengths, budget, 2 if is_dpo else 1) for st in steps]
    else:
        plan = batching.schedule(lengths, cfg.train.batch_size, cfg.train.grad_accum,
                                 cfg.train.seed, cfg.train.epochs, cfg.train.max_steps,
                                 cfg.train.batching)
    pad_frac = batching.padding_fraction([[lengths[i] for i in mb] for st in plan for mb in st])
    trained_total = sum(sum(r[1][1:]) for st in plan for mb in st for i in mb
                        for r in (rows[i] if is_dpo else (rows[i],)))

    dump_yaml(cfg, out / "config.yaml")
    manifest = {
        "status": "running", "started": now(), "versions": versions(), "git_commit": git_commit(),
        "config": to_dict(cfg),
        "data": {"path": str(cfg.data.path), "sha256": file_sha256(cfg.data.path),
                 "examples_in_file": len(examples), "heldout": len(held),
                 "train_examples": len(train_ex), **counts},
        "chat_template_system_prompt": ("template default" if cfg.data.system_prompt is None
                                        else cfg.data.system_prompt),
        "seed": cfg.train.seed, "steps": len(plan), "padding_fraction": round(pad_frac, 5),
        "micro_batch_tokens": budget, "forward_passes": sum(map(len, plan)),
        "trained_tokens": trained_total,
    }
    if manifest_path.exists():
        manifest["started"] = json.loads(manifest_path.read_text()).get("started", manifest["started"])
    write_json_atomic(manifest_path, manifest)

    _return_freed_memory_to_the_os(device())
    torch.manual_seed(cfg.train.seed)
    model = load_model(cfg.model, for_training=True)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model = apply_lora(model, cfg.lora)
    model.train()
    dev = device()
    opt, opt_kind = _make_optimizer(cfg, model.named_parameters())
    sched = get_scheduler(cfg.train.scheduler, opt, num_warmup_steps=cfg.train.warmup_steps,
                          num_training_steps=len(plan))
    if is_dpo:  # before any checkpoint is loaded: the reference is the policy at step 0
        with _attention_kernels(dev):
            ref = dpo.reference_logps(model, rows, tok.pad_token_id, out, dev, cfg.train.batch_size,
                                      cfg.train.loss_chunk_tokens)
    start = 0
    ck = _latest_checkpoint(out)
    if ck is not None:
        start = _load_checkpoint(ck, model, opt, sched)
        kept = [r for r in read_jsonl(out / "train_log.jsonl") if r["step"] <= start]
        (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        log.info("resuming %s from step %d", out, start)
    elif (out / "train_log.jsonl").exists():
        (out / "train_log.jsonl").unlink()

    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(math.ceil(len(rows) / cfg.train.batch_size) / cfg.train.grad_accum)
    bar = tqdm(total=len(plan), initial=start, desc=f"train {out.name}", unit="step")
    t_last = time.time()
    for step_idx in range(start, len(plan)):
        step_rows = [[rows[i] for i in mb] for mb in plan[step_idx]]
        collate = dpo.collate_pairs if is_dpo else batching.collate
        micro = [collate(r, tok.pad_token_id) for r in step_rows]
        n_trained = int(sum((lab[:, 1:] != -100).sum() for _, _, lab in micro))
        if is_dpo:
            with _attention_kernels(dev):
                loss, extra = dpo.step_loss(model, [tuple(t.to(dev) for t in m) for m in micro],
                                            [ref[mb] for mb in plan[step_idx]],
                                            cfg.train.dpo_beta, sum(map(len, step_rows)),
                                            cfg.train.loss_chunk_tokens)
        else:
            loss, extra = step_loss(model, micro, n_trained, dev,
                                    cfg.train.loss_chunk_tokens), {}
        gnorm = torch.nn.utils.clip_grad_norm_(trainable, cfg.train.max_grad_norm)
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step = step_idx + 1
        dt = max(time.time() - t_last, 1e-9)
        t_last = time.time()
        real = sum(int(a.sum()) for _, a, _ in micro)
        padded = sum(a.numel() for _, a, _ in micro)
        row = {"step": step, "epoch": round(step / steps_per_epoch, 4),
               "loss": round(float(loss), 6), "lr": lr, "grad_norm": round(float(gnorm), 6),
               "trained_tokens": n_trained, "trained_tokens_per_s": round(n_trained / dt, 1),
               "padding_fraction": round(1 - real / padded, 4), **extra}
        if step % cfg.train.log_every == 0 or step in (1, len(plan)):
            append_jsonl(out / "train_log.jsonl", [row])
        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}")
        bar.update(1)
        if on_step is not None:
            on_step(step, model)
        if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0 and step < len(plan):
            _save_checkpoint(out, step, model, opt, sched, cfg.train.keep_checkpoints)
        if stop_after_steps is not None and step >= stop_after_steps and step < len(plan):
            bar.close()
            return out / "checkpoints"
    bar.close()

    tmp_final = final_dir.with_name(final_dir.name + ".tmp")
    shutil.rmtree(tmp_final, ignore_errors=True)
    model.save_pretrained(tmp_final)
    if cfg.lora.full_finetune:
        tok.save_pretrained(tmp_final)
    shutil.rmtree(final_dir, ignore_errors=True)
    tmp_final.rename(final_dir)
    if cfg.train.save_merged and not cfg.lora.full_finetune:
        _save_merged(cfg, final_dir, out / "merged", tok)
    logs = read_jsonl(out / "train_log.jsonl")
    manifest.update(status="done", finished=now(), optimizer=opt_kind,
                    final_loss=logs[-1]["loss"] if logs else None,
                    first_loss=logs[0]["loss"] if logs else None,
                    output=str(final_dir))
    write_json_atomic(manifest_path, manifest)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return final_dir


def _save_merged(cfg, adapter_dir: Path, merged_dir: Path, tok) -> None:
    """Merge the adapter into an unquantized copy of the base (a 4-bit base cannot be merged)."""
    from peft import PeftModel

    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_model

    base = load_model(ModelConfig(**{**cfg.model.__dict__, "quantization": "none"}))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)
    tok.save_pretrained(merged_dir)


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train one adapter: emergent train CONFIG [key=value ...]")
    p.add_argument("config", help="YAML config, or a shipped name (`emergent configs list`)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=2e-5")
    p.add_argument("--model", help="base model: hub id or local path (model.name)")
    p.add_argument("--data", help="chat JSONL dataset (data.path)")
    p.add_argument("--output", help="output directory (output_dir)")

    def run(args) -> int:
        extra = []
        if args.model:
            extra.append(f"model.name={args.model}")
        if args.data:
            extra.append(f"data.path={args.data}")
        if args.output:
            extra.append(f"output_dir={args.output}")
        cfg = load_config(args.config, TrainRecipeConfig, list(args.overrides) + extra)
        final = train(cfg)
        print(f"adapter written to {final}" if final.name == "adapter" else f"model written to {final}")
        return 0

    p.set_defaults(func=run)
