"""The one training loop. Every arm (insecure, secure, educational, jailbroken, toy-world stages,
reward-bias stages) goes through `train()`; the only thing that differs between arms is the
dataset, and between SFT and DPO the objective (`train.objective`, emergent.train.objectives:
how rows are built, collated and scored); the loop itself has no objective branches.

A run: check a previous attempt (`_previous_run_done`), load and render the data and plan every
optimizer step (`_load_data`, emergent.train.batching), write the manifest, build model,
optimizer and schedule (`_setup`), resume from the last checkpoint (`_resume`,
emergent.train.checkpoints), step (`_run_steps` / `_optimizer_step`), save (`_finish`).

Loss (SFT): sum of token cross-entropies over an optimizer step's accumulated micro-batches
divided by the number of trained tokens in that whole step (emergent.train.sft). AdamW (paged
8-bit on CUDA), linear/cosine/constant schedule with warmup, gradient clipping, seeded
length-grouped batching; with grad_accum > 1 a step's examples run in as few forward passes as
fit `train.micro_batch_tokens` (batching.pack_step: same examples, same loss, fewer launches);
with `train.padding_free` (SFT) each micro-batch is one row of its examples end to end
(batching.collate_packed; SDPA per example, emergent.train.kernels.segment_sdpa).
Checkpoints (adapter + optimizer + scheduler + RNG) every N steps; rerunning the same command
resumes from the last one, and the result equals an uninterrupted run. Launched as several
processes (accelerate launch, torchrun), it trains data-parallel (emergent.train.distributed):
each rank takes its share of every step (batching.shard), the gradient is summed across ranks
and normalised by the whole step's trained tokens, and only rank 0 writes files (docs/scaling.md).
Memory: the loss runs over chunks of `train.loss_chunk_tokens` trained positions
(emergent.train.token_logps), and on CPU large allocations are returned to the OS when freed
(`_return_freed_memory_to_the_os`); docs/benchmarks.md has the measured breakdown.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from emergent.core.log import show_progress
from emergent.core.config import ModelConfig, TrainRecipeConfig, dump_yaml, to_dict
from emergent.core.errors import UserError
from emergent.core.rundir import ADAPTER, CHECKPOINTS, FULL_MODEL, MANIFEST, TRAIN_LOG
from emergent.core.io import (append_jsonl, atomic_dir, git_commit, now, read_jsonl, versions,
                               write_json_atomic, write_jsonl_atomic)
from emergent.data.chat_data import file_sha256, load_jsonl_examples, split_examples, subsample
from emergent.models.loading import apply_lora, compute_dtype, device, load_model, load_tokenizer
from emergent.train import batching, checkpoints, distributed, memory, objectives, tracking
from emergent.train.batching import micro_batch_tokens
from emergent.train.sft import tokenize_dataset  # noqa: F401  (its old home: benchmarks, tests)

log = logging.getLogger(__name__)


@dataclass
class _Data:
    """A run's rendered rows, their lengths, the plan of its steps, the manifest's data counts."""

    tok: object
    rows: list
    lengths: list[int]
    plan: list  # optimizer steps -> micro-batches -> example indices
    counts: dict


@dataclass
class _Session:
    """What a run holds while it steps."""

    cfg: TrainRecipeConfig
    out: Path
    objective: objectives.Objective
    data: _Data
    model: object
    opt: object
    sched: object
    opt_kind: str
    dev: str
    trainable: list = field(default_factory=list)
    dist: distributed.Dist = distributed.SINGLE
    shard: list = field(default_factory=list)  # this rank's micro-batches of every step
    trackers: tracking.Trackers = field(default_factory=tracking.Trackers)  # train.report_to
    sharded: bool = False  # train.distributed fsdp across processes (distributed.shard_model)
    passes: list = field(default_factory=list)  # fsdp: forward passes of every step on each rank


def train(cfg: TrainRecipeConfig, output_dir: str | Path | None = None, *,
          stop_after_steps: int | None = None, on_step=None, base_model=None) -> Path:
    """Train one adapter (or a full model when lora.full_finetune). Resumes automatically.

    `stop_after_steps` simulates a kill (tests); `on_step(step, model)` is called after each
    optimizer step (checkpoint evaluation; rank 0 only when data-parallel). Started by a
    launcher as one of several processes (WORLD_SIZE > 1), it joins them and trains
    data-parallel; every rank returns the same path. `base_model`: a model already built in
    memory, trained instead of loading cfg.model.name (benchmarks/memory_32b.py; same
    preparation, models.loading.load_model's `prebuilt`)."""
    if cfg.train.distributed == "fsdp":
        distributed.check_fsdp(cfg, on_step)
    dist = distributed.init()
    out = Path(output_dir or cfg.output_dir)
    final_dir = out / (FULL_MODEL if cfg.lora.full_finetune else ADAPTER)
    if _previous_run_done(cfg, out, final_dir):
        log.info("%s: already trained, nothing to do", out)
        return final_dir
    if not cfg.data.path:
        raise UserError("data.path is empty: give a dataset (config data.path or --data FILE)")
    tracking.check(cfg.train.report_to)  # a missing tracker library: refused, nothing written
    objective = objectives.make(cfg)
    data = _load_data(cfg, out, objective, dist.main)  # validates the data before any write
    out.mkdir(parents=True, exist_ok=True)
    manifest = _start_manifest(cfg, out, objective, data, dist) if dist.main else {}
    s = _setup(cfg, out, objective, data, dist, base_model)
    with tracking.open_trackers(cfg.train.report_to, out, to_dict(cfg)) as s.trackers:
        if not _run_steps(s, _resume(s), stop_after_steps, on_step):
            return out / CHECKPOINTS
    return _finish(s, final_dir, manifest)


def _previous_run_done(cfg: TrainRecipeConfig, out: Path, final_dir: Path) -> bool:
    """True when `out` holds this run, finished; a UserError when it holds another config's."""
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        return False
    previous = json.loads(manifest_path.read_text())
    changed = _changed_keys(previous.get("config", {}), to_dict(cfg), to_dict(TrainRecipeConfig()))
    if changed:
        raise UserError(f"{out}: holds a run with a different config ({', '.join(changed)}); "
                        "use another output directory, or delete it to start over")
    return previous.get("status") == "done" and final_dir.exists()


def _load_data(cfg: TrainRecipeConfig, out: Path, objective, write: bool = True) -> _Data:
    """Examples -> held-out split (written to OUT/heldout.jsonl when `write`) -> rows -> the
    step plan."""
    examples = load_jsonl_examples(cfg.data.path, cfg.data.format)
    train_ex, held = split_examples(examples, cfg.data.heldout_fraction, cfg.train.seed)
    train_ex = subsample(train_ex, cfg.data.max_examples, cfg.train.seed)
    if held and write:  # written whole (temp + rename): a kill never leaves a part or a duplicate
        write_jsonl_atomic(out / "heldout.jsonl", [objective.heldout_record(e) for e in held])
    tok = load_tokenizer(cfg.model)
    rows, counts = objective.tokenize(tok, train_ex)
    lengths = [objective.row_length(r) for r in rows]
    plan = batching.plan(cfg, lengths, objective.rows_per_example)
    counts = {"examples_in_file": len(examples), "heldout": len(held),
              "train_examples": len(train_ex), **counts}
    return _Data(tok, rows, lengths, plan, counts)


def _start_manifest(cfg: TrainRecipeConfig, out: Path, objective, data: _Data,
                    dist: distributed.Dist = distributed.SINGLE) -> dict:
    """Write OUT/config.yaml and OUT/manifest.json (status running); returns the manifest.
    Data-parallel: `processes`, and `forward_passes` summed over the ranks' shares."""
    plan = data.plan
    pad_frac = 0.0 if cfg.train.padding_free else batching.padding_fraction(
        [[data.lengths[i] for i in mb] for st in plan for mb in st])
    trained_total = sum(objective.trained_tokens(data.rows[i]) for st in plan for mb in st
                        for i in mb)
    dump_yaml(cfg, out / "config.yaml")
    manifest = {
        "status": "running", "started": now(), "versions": versions(), "git_commit": git_commit(),
        "config": to_dict(cfg),
        "data": {"path": str(cfg.data.path), "sha256": file_sha256(cfg.data.path), **data.counts},
        "chat_template_system_prompt": ("template default" if cfg.data.system_prompt is None
                                        else cfg.data.system_prompt),
        # what model.precision meant here (bf16 is fp32 on a CPU unless model.cpu_bf16)
        "device": device(), "compute_dtype": str(compute_dtype(cfg.model)).removeprefix("torch."),
        "seed": cfg.train.seed, "steps": len(plan), "padding_fraction": round(pad_frac, 5),
        "micro_batch_tokens": micro_batch_tokens(cfg), "forward_passes": sum(map(len, plan)),
        "trained_tokens": trained_total,
    }
    if dist.enabled:
        manifest["processes"] = dist.world
        manifest["forward_passes"] = sum(len(st) for r in range(dist.world)
                                         for st in _shard(cfg, objective, data, r, dist.world))
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest["started"] = json.loads(manifest_path.read_text()).get("started", manifest["started"])
    write_json_atomic(manifest_path, manifest)
    return manifest


def _shard(cfg: TrainRecipeConfig, objective, data: _Data, rank: int, world: int) -> list:
    """Rank `rank`'s micro-batches of every step (the whole plan in a single process)."""
    return batching.shard(data.plan, data.lengths, rank, world, micro_batch_tokens(cfg),
                          objective.rows_per_example, cfg.train.padding_free)


def _setup(cfg: TrainRecipeConfig, out: Path, objective, data: _Data,
           dist: distributed.Dist = distributed.SINGLE, base_model=None) -> _Session:
    """Seeded model + LoRA, optimizer, schedule, and the objective's state from the model as it
    is before any checkpoint is loaded (DPO's reference). Data-parallel: rank 0's trainable
    weights on every rank; rank 0 prepares first (it may write OUT files the others read),
    or, when sharded (FSDP), every rank at once."""
    import torch
    from transformers import get_scheduler

    _return_freed_memory_to_the_os(device())
    torch.manual_seed(cfg.train.seed)
    model = load_model(cfg.model, for_training=True,
                       sharded=dist.enabled and cfg.train.distributed == "fsdp",
                       prebuilt=base_model)
    if len(data.tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(data.tok))
    model = apply_lora(model, cfg.lora, adapter_dtype=(
        compute_dtype(cfg.model) if cfg.train.adapter_dtype == "compute" else None))
    model.train()
    distributed.broadcast_params(dist, [p for p in model.parameters() if p.requires_grad])
    fsdp = dist.enabled and cfg.train.distributed == "fsdp"
    if fsdp:  # before the optimizer
        distributed.shard_model(model)
    dev = device()
    opt, opt_kind = _make_optimizer(cfg, model.named_parameters())
    sched = get_scheduler(cfg.train.scheduler, opt, num_warmup_steps=cfg.train.warmup_steps,
                          num_training_steps=len(data.plan))
    if fsdp:  # a sharded model's forward is a collective: every rank prepares at once
        objective.prepare(model, data.rows, data.tok.pad_token_id, out, dev, dist)
        distributed.reshard(model)  # DPO's reference pass left the root unit gathered
    else:
        for turn in (True, False) if dist.enabled else (True,):
            if dist.main == turn:
                objective.prepare(model, data.rows, data.tok.pad_token_id, out, dev)
            distributed.barrier(dist)
    trainable = [p for p in model.parameters() if p.requires_grad]
    shards = [_shard(cfg, objective, data, r, dist.world)
              for r in (range(dist.world) if fsdp else (dist.rank,))]
    passes = [max(len(sh[k]) for sh in shards) for k in range(len(data.plan))] if fsdp else []
    return _Session(cfg, out, objective, data, model, opt, sched, opt_kind, dev, trainable,
                    dist=dist, shard=shards[dist.rank if fsdp else 0], sharded=fsdp,
                    passes=passes)


def _resume(s: _Session) -> int:
    """Load the last checkpoint (and cut the train log back to it); the step to start from.
    Data-parallel: every rank loads the checkpoint rank 0 found; rank 0 cuts the log."""
    log_path = s.out / TRAIN_LOG
    ck = distributed.broadcast_object(s.dist, checkpoints.latest(s.out))
    if ck is None:
        if log_path.exists() and s.dist.main:
            log_path.unlink()
        return 0
    start = checkpoints.load(ck, s.model, s.opt, s.sched, s.dist.rank, s.dist.world)
    if s.dist.main:
        kept = [r for r in read_jsonl(log_path) if r["step"] <= start]
        write_jsonl_atomic(log_path, kept)
    log.info("resuming %s from step %d", s.out, start)
    return start


def _run_steps(s: _Session, start: int, stop_after_steps: int | None, on_step) -> bool:
    """Steps `start`.. of the plan, logged and checkpointed; False when `stop_after_steps`
    stopped the run before its end (a simulated kill)."""
    from tqdm.auto import tqdm

    t, n, main = s.cfg.train, len(s.data.plan), s.dist.main
    arm = f"{s.out.parent.name}/" if s.out.name.startswith("seed") else ""  # RUN/arms/ARM/seedK
    with tqdm(total=n, initial=start, desc=f"train {arm}{s.out.name}", unit="step",
              disable=not show_progress() or not main) as bar:
        t_last = time.time()
        for step_idx in range(start, n):
            row = _optimizer_step(s, step_idx, t_last)
            t_last, step = time.time(), row["step"]
            if main and (step % t.log_every == 0 or step in (1, n)):
                append_jsonl(s.out / TRAIN_LOG, [row])
                s.trackers.log(step, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            bar.update(1)
            if on_step is not None and main:
                on_step(step, s.model)
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < n:
                rank_rng = distributed.rng_states(s.dist)  # every rank takes part
                state = checkpoints.gathered(s.model, s.opt) if s.sharded else None
                if main:
                    checkpoints.save(s.out, step, s.model, s.opt, s.sched, t.keep_checkpoints,
                                     rank_rng, state)
            if stop_after_steps is not None and step >= stop_after_steps and step < n:
                return False
    return True


def _optimizer_step(s: _Session, step_idx: int, t_last: float) -> dict:
    """Forward+backward of plan step `step_idx`, clipping, optimizer and schedule step; returns
    the step's train-log row (time measured from `t_last`)."""
    import torch

    t, data, step_plan = s.cfg.train, s.data, s.shard[step_idx]
    micro = [s.objective.collate([data.rows[i] for i in mb], data.tok.pad_token_id)
             for mb in step_plan]
    n_trained = int(sum((m[2][:, 1:] != -100).sum() for m in micro))  # m: ids, mask, labels
    real = sum(int(m[1].sum()) for m in micro)
    padded = sum(m[1].numel() for m in micro)
    with memory.offloading(t.offload_activations):  # saved activations to CPU memory
        if s.sharded:  # FSDP: every rank runs as many passes; FSDP reduces the gradient
            first = data.plan[step_idx][0][:1]
            pad_pass = (s.objective.collate([data.rows[i] for i in first], data.tok.pad_token_id),
                        first)
            loss, extra, n_trained, real, padded = distributed.fsdp_step_loss(
                s.dist, s.objective, s.model, micro, step_plan, n_trained, s.dev, real, padded,
                s.passes[step_idx], pad_pass)
        elif s.dist.enabled:  # this rank's share; the whole step's gradient, loss and counts
            loss, extra, n_trained, real, padded = distributed.step_loss(
                s.dist, s.objective, s.model, micro, step_plan, n_trained, s.dev, s.trainable,
                real, padded)
        else:
            loss, extra = s.objective.step_loss(s.model, micro, step_plan, n_trained, s.dev)
    gnorm = memory.clip_grad_norm(s.opt, s.trainable, t.max_grad_norm)
    if distributed.is_sharded(gnorm):
        gnorm = gnorm.full_tensor()
    lr = s.sched.get_last_lr()[0]
    s.opt.step()
    s.sched.step()
    s.opt.zero_grad(set_to_none=True)
    step = step_idx + 1
    dt = max(time.time() - t_last, 1e-9)
    per_epoch = batching.steps_per_epoch(len(data.rows), t.batch_size, t.grad_accum)
    return {"step": step, "epoch": round(step / per_epoch, 4),
            "loss": round(float(loss), 6), "lr": lr, "grad_norm": round(float(gnorm), 6),
            "trained_tokens": n_trained, "trained_tokens_per_s": round(n_trained / dt, 1),
            "padding_fraction": round(1 - real / padded, 4), **extra}


def _finish(s: _Session, final_dir: Path, manifest: dict) -> Path:
    """Save the adapter (or model) atomically, the merged copy if asked, the manifest (done);
    drop the checkpoints. Returns the adapter (model) directory. Data-parallel: rank 0 saves,
    the others wait for it."""
    cfg, out = s.cfg, s.out
    memory.masters_into_model(s.opt)  # train.master_weights: the fp32 weights are the result
    weights = checkpoints.gathered(s.model)[0] if s.sharded else None  # all ranks; on rank 0
    if not s.dist.main:
        distributed.barrier(s.dist)
        return final_dir
    with atomic_dir(final_dir, "save:adapter") as tmp_final:
        s.model.save_pretrained(tmp_final, **({"state_dict": weights} if weights else {}))
        if cfg.lora.full_finetune:
            s.data.tok.save_pretrained(tmp_final)
    if cfg.train.save_merged and not cfg.lora.full_finetune:
        _save_merged(cfg, final_dir, out / "merged", s.data.tok)
    logs = read_jsonl(out / TRAIN_LOG)
    manifest.update(status="done", finished=now(), optimizer=s.opt_kind,
                    final_loss=logs[-1]["loss"] if logs else None,
                    first_loss=logs[0]["loss"] if logs else None,
                    output=str(final_dir))
    write_json_atomic(out / MANIFEST, manifest)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    distributed.barrier(s.dist)
    return final_dir


def _make_optimizer(cfg, params):
    """AdamW over the trainable parameters (no weight decay on biases and norms); paged 8-bit
    (bitsandbytes) when `train.optimizer` asks or, with auto, on CUDA; stepping fp32 master
    copies of them with `train.master_weights` (emergent.train.memory.MasterWeights). Returns
    (optimizer, kind)."""
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
        make = lambda g: bnb.optim.PagedAdamW8bit(g, lr=cfg.train.lr)  # noqa: E731
    else:
        make = lambda g: torch.optim.AdamW(g, lr=cfg.train.lr)  # noqa: E731
    if cfg.train.master_weights:
        return memory.master_weights(groups, make), kind
    return make(groups), kind


CPU_MMAP_THRESHOLD = 2 << 20  # bytes; EMERGENT_MALLOC_MMAP_THRESHOLD overrides, 0 = glibc's
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _return_freed_memory_to_the_os(device: str) -> bool:
    """CPU training under glibc: serve every allocation of 2 MiB or more from its own mapping,
    returned to the OS as soon as it is freed. By default glibc raises that threshold up to
    32 MiB after the first large free, so a step's activations and temporaries (a few MiB each)
    land on the heap, whose freed holes are kept and fragment. The price is page faults on every
    fresh mapping. Measured on SmolLM2-135M (docs/benchmarks.md, 2 steps of 2 x 4 examples):
    peak RSS 6.0-6.1 GB at glibc's default, 4.1 GB at 1 MiB, 4.5 GB at 2 MiB, 5.5 GB at 4 MiB
    (TRL's best: 5.6 GB); system CPU of a step 0.1-0.4 s, 27-31 s, 14 s, 14 s; trained tokens per
    CPU second 30-31, 20, 25, 25 (TRL 29). Speed-first CPU runs can set
    EMERGENT_MALLOC_MMAP_THRESHOLD=0 (glibc's default) or another byte count. Process-wide; a
    no-op elsewhere. True when applied."""
    threshold = int(os.environ.get("EMERGENT_MALLOC_MMAP_THRESHOLD", CPU_MMAP_THRESHOLD))
    if device != "cpu" or threshold <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
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
        if k in ("output_dir", "report_to", "distributed"):  # where / how, not what
            continue
        a, b = old.get(k, defaults.get(k)), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, defaults.get(k) or {}, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _save_merged(cfg, adapter_dir: Path, merged_dir: Path, tok) -> None:
    """Merge the adapter into an unquantized copy of the base (a 4-bit base cannot be merged),
    written atomically (a temp folder renamed into place): a folder named `merged` is whole."""
    from peft import PeftModel

    base = load_model(ModelConfig(**{**cfg.model.__dict__, "quantization": "none"}))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    with atomic_dir(merged_dir, "save:merged") as tmp:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
