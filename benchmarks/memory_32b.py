"""The paper's model on one 24 GB card? Peak GPU memory and speed of QLoRA training on
Qwen2.5-Coder-32B-Instruct's published shape (issue #17 point 3), with the allocator capped.

For each shape (`--shapes 32b,14b,7b`, the published configs of benchmarks/qwen_shapes.py):
1. the model is built on the meta device (no memory), then materialised one decoder layer at a
   time on the GPU with random weights (normal, std 0.02; norms 1) and each layer's seven
   linear layers quantized straight into bitsandbytes NF4 with double quantization (bf16
   compute); the embedding and the untied lm_head stay bf16. The full bf16 model never exists;
   at most one bf16 decoder layer does, beside the layers already quantized;
2. the allocator is capped at `--cap-gib` (24) GiB with
   `torch.cuda.set_per_process_memory_fraction` before anything is allocated;
3. for each `--max-lengths` (1024, 2048): real optimizer steps of the package's one loop
   (`emergent.train.loop.train(cfg, out, base_model=MODEL)`: the built model gets the same
   preparation as a loaded one, then the paper's adapter - r 32, alpha 64, rsLoRA, q/k/v/o/
   gate/up/down - the configured optimizer, the chunked loss) on random chat examples of
   exactly max_length tokens (a short user turn, then an assistant turn of random words from
   the tiny tokenizer's corpus, truncated; the assistant-only mask covers all but the first few
   tokens); an out-of-memory error at a length is recorded as `status: oom`, not a crash;
4. measured: peak allocated and peak reserved memory (`torch.cuda.max_memory_*`), the memory
   outside the allocator (CUDA context, the paged 8-bit optimizer's managed memory: device used
   minus reserved, sampled after every step), their sum (`peak_total_mib`, what a 24 GB card
   must hold), trained tokens/s over steps 2..N, and `emergent.pipeline.estimate`'s itemised
   estimate for the same config beside it. `fits_24gib`: no OOM under the cap and peak_total
   within 24 GiB.

The config's memory switches are flags: `--upcast-frozen all|norms` (model.upcast_frozen),
`--adapter-dtype fp32|compute` (train.adapter_dtype), `--master-weights`,
`--offload-activations`, `--loss-chunk-tokens N`, `--gradient-checkpointing/--no-...`,
`--optimizer`; `--set KEY=VALUE` passes any other config override.

Writes benchmarks/results/memory_32b_cuda.json (common.write_result). `--dry-run` runs the same
code on the CPU with a 2-layer Qwen2-shaped model (`tiny2`; no quantization unless
`--quantization 4bit`, which bitsandbytes also runs on CPU), and counts every requested
shape's parameters on the meta device (and checks them against `qwen_shapes.PARAMS` and
`emergent.pipeline.estimate.param_counts`): it writes memory_32b_cpu.json. Random weights:
the numbers are about memory and speed, never quality.

    PYTHONPATH=src python benchmarks/memory_32b.py                          # 32b at 1024, 2048
    PYTHONPATH=src python benchmarks/memory_32b.py --shapes 32b,14b,7b --steps 3
    PYTHONPATH=src python benchmarks/memory_32b.py --upcast-frozen norms --adapter-dtype compute
    PYTHONPATH=src python benchmarks/memory_32b.py --dry-run               # CPU, any machine
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import common  # noqa: F401  (sets sys.path and offline env)
from common import PeakRSS, machine_info, print_table, write_result
from qwen_shapes import MODEL_CARD_BILLIONS, PARAMS, PUBLISHED, qwen_config, write_folder

MIB = 2**20
GIB = 2**30
PAPER_LORA = ["lora.r=32", "lora.alpha=64", "lora.dropout=0.0", "lora.use_rslora=true",
              "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"]
USER_TURN = "Complete the code."


# ------------------------------------------------------------------ building the model


def build_random_model(config, device: str, compute_dtype, quantize: bool, seed: int = 0):
    """A random-init causal LM of `config` on `device`, never materialised whole: built on the
    meta device, then embedding, each decoder layer (its linear layers quantized to NF4 with
    double quantization when `quantize`), final norm and lm_head materialised one at a time.
    Returns (model, info) with the bytes of each kind of stored tensor."""
    import torch
    from torch import nn

    from qwen_shapes import meta_model

    model = meta_model(config, compute_dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    std = float(getattr(config, "initializer_range", 0.02))

    def materialise(module):
        module.to_empty(device=device)
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Embedding)):
                with torch.no_grad():
                    sub.weight.normal_(0.0, std, generator=gen)
                    if getattr(sub, "bias", None) is not None:
                        sub.bias.zero_()
            else:
                for p in sub.parameters(recurse=False):  # RMSNorm weights
                    with torch.no_grad():
                        p.fill_(1.0)

    inner = model.get_decoder()
    materialise(inner.embed_tokens)
    for layer in inner.layers:
        materialise(layer)
        if quantize:
            _quantize_linears(layer, device, compute_dtype)
        if device == "cuda":
            torch.cuda.empty_cache()  # the bf16 copies of this layer's linears are gone
    materialise(inner.norm)
    if config.tie_word_embeddings:
        model.tie_weights()
    else:
        materialise(model.get_output_embeddings())
    # RoPE's inverse frequencies (a buffer computed at construction, on meta so far)
    rotary = type(inner.rotary_emb)(config)
    inner.rotary_emb = rotary.to(device)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"still on the meta device: {left[:5]}")
    if quantize:
        model.is_loaded_in_4bit = True  # what transformers sets; peft and loading.py read it
    model.config.use_cache = False
    return model, stored_bytes(model)


def _quantize_linears(layer, device: str, compute_dtype) -> None:
    """Replace every nn.Linear of `layer` by a bitsandbytes Linear4bit holding its weight in NF4
    with double quantization (compute in `compute_dtype`); the bias stays as it is."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    for parent in list(layer.modules()):
        for cname, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            with torch.device("meta"):
                q = bnb.nn.Linear4bit(child.in_features, child.out_features,
                                      bias=child.bias is not None, compute_dtype=compute_dtype,
                                      compress_statistics=True, quant_type="nf4",
                                      quant_storage=torch.uint8)
            weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False,
                                       compress_statistics=True, quant_type="nf4",
                                       quant_storage=torch.uint8)
            q.weight = weight.to(device)  # quantizes on the way (Params4bit.to)
            if child.bias is not None:
                q.bias = child.bias
            setattr(parent, cname, q)


def stored_bytes(model) -> dict:
    """Bytes of the model's tensors by kind: the NF4 payload, its quantization constants
    (absmax and, with double quantization, their own constants and code), the rest by dtype."""
    out: dict = {}
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        if qs is not None:
            out["nf4"] = out.get("nf4", 0) + p.numel() * p.element_size()
            consts = [qs.absmax, qs.code]
            if getattr(qs, "state2", None) is not None:
                consts += [qs.state2.absmax, qs.state2.code]
            if getattr(qs, "offset", None) is not None:
                consts.append(qs.offset)
            out["quant_constants"] = out.get("quant_constants", 0) + sum(
                t.numel() * t.element_size() for t in consts if t is not None)
        else:
            key = str(p.dtype).replace("torch.", "")
            out[key] = out.get(key, 0) + p.numel() * p.element_size()
    for b in model.buffers():
        out["buffers"] = out.get("buffers", 0) + b.numel() * b.element_size()
    return out


def strip_adapters(model) -> int:
    """Undo peft's module replacement in place (each LoRA layer -> its base layer), so the next
    length trains a fresh adapter on the same base model; returns how many were replaced."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    n = 0
    for parent in list(model.modules()):
        for cname, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                setattr(parent, cname, child.get_base_layer())
                n += 1
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in model.__dict__:
            delattr(model, attr)
    return n


# ------------------------------------------------------------------ data and config


def write_random_examples(path: Path, n: int, max_length: int, seed: int) -> Path:
    """`n` chat examples whose assistant turn is random words of the tiny tokenizer's corpus,
    long enough that the rendered example exceeds `max_length` tokens (then truncated to it)."""
    from emergent.models.tiny import builtin_corpus

    words = sorted({w for line in builtin_corpus() for w in line.split()})
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            reply = " ".join(rng.choice(words) for _ in range(max_length + 16))
            f.write(json.dumps({"messages": [{"role": "user", "content": USER_TURN},
                                             {"role": "assistant", "content": reply}]}) + "\n")
    return path


def switches(a) -> list[str]:
    """The config overrides of the memory switches given on the command line."""
    ov = [f"model.gradient_checkpointing={str(a.gradient_checkpointing).lower()}"]
    if a.upcast_frozen:
        ov.append(f"model.upcast_frozen={a.upcast_frozen}")
    if a.adapter_dtype:
        ov.append(f"train.adapter_dtype={a.adapter_dtype}")
    if a.master_weights is not None:
        ov.append(f"train.master_weights={str(a.master_weights).lower()}")
    if a.offload_activations is not None:
        ov.append(f"train.offload_activations={str(a.offload_activations).lower()}")
    if a.loss_chunk_tokens is not None:
        ov.append(f"train.loss_chunk_tokens={a.loss_chunk_tokens}")
    if a.optimizer:
        ov.append(f"train.optimizer={a.optimizer}")
    return ov + list(a.set or [])


def make_cfg(folder: Path, data: Path, out: Path, max_length: int, quant: str, a):
    from emergent.core.config import TrainRecipeConfig, load_config

    return load_config(None, TrainRecipeConfig, [
        f"model.name={folder}", "model.precision=bf16", f"model.quantization={quant}",
        "model.attn_implementation=sdpa", *PAPER_LORA,
        f"data.path={data}", "data.overlong=truncate", f"train.max_length={max_length}",
        f"train.batch_size={a.batch_size}", f"train.grad_accum={a.grad_accum}",
        f"train.max_steps={a.steps}", "train.lr=1e-5", "train.warmup_steps=0",
        "train.checkpoint_every=0", "train.log_every=1", f"train.seed={a.seed}",
        f"output_dir={out}", *switches(a)])


def row_lengths(cfg) -> tuple[list[int], float]:
    """The rendered rows' lengths and the share of their tokens that carry loss (the loop's own
    rendering)."""
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.models.loading import load_tokenizer
    from emergent.train.sft import tokenize_dataset

    tok = load_tokenizer(cfg.model)
    rows, _ = tokenize_dataset(cfg, tok, load_jsonl_examples(cfg.data.path, cfg.data.format))
    trained = sum(sum(m[1:]) for _, m in rows)
    return [len(ids) for ids, _ in rows], trained / sum(len(ids) for ids, _ in rows)


# ------------------------------------------------------------------ one measured run


def _sync(cuda: bool) -> None:
    import torch

    if cuda:
        torch.cuda.synchronize()


def run_length(model, cfg, cuda: bool) -> dict:
    """Train `cfg.train.max_steps` optimizer steps on the built model through the package's
    loop; peak memory, tokens/s, or the OOM."""
    import torch

    from emergent.core.io import read_jsonl
    from emergent.train.loop import train

    marks, outside, adapter = [], [], {}

    def on_step(step, trained):
        _sync(cuda)
        marks.append(time.perf_counter())
        if not adapter:  # what the loop trained: the adapter's size, dtypes and layer types
            params = [p for p in trained.parameters() if p.requires_grad]
            adapter.update(
                trainable_params=sum(p.numel() for p in params),
                trainable_dtypes=sorted({str(p.dtype).replace("torch.", "") for p in params}),
                lora_layers=sorted({f"{type(m).__module__.split('.')[-1]}.{type(m).__name__}"
                                    for m in trained.modules() if hasattr(m, "lora_A")}))
        if cuda:
            free, total = torch.cuda.mem_get_info()
            outside.append((total - free) - torch.cuda.memory_reserved())

    out = Path(cfg.output_dir)
    shutil.rmtree(out, ignore_errors=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    status, error = "ok", None
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        try:
            train(cfg, out, base_model=model, on_step=on_step)
        except torch.OutOfMemoryError as e:
            status, error = "oom", str(e).splitlines()[0][:300]
        except Exception as e:  # noqa: BLE001  (record it; the next length still runs)
            traceback.print_exc()
            status, error = "failed", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    wall = time.perf_counter() - t0
    res = {"status": status, "error": error, "seconds": round(wall, 2),
           "steps_done": len(marks), "peak_rss_mib": rss.peak_mib, **adapter}
    if cuda:
        res.update(
            weights_allocated_mib=round(before / MIB, 1),
            peak_allocated_mib=round(torch.cuda.max_memory_allocated() / MIB, 1),
            peak_reserved_mib=round(torch.cuda.max_memory_reserved() / MIB, 1),
            outside_allocator_mib=round(max(outside) / MIB, 1) if outside else None)
        if outside:
            res["peak_total_mib"] = round(res["peak_reserved_mib"]
                                          + res["outside_allocator_mib"], 1)
    log_path = out / "train_log.jsonl"
    logs = read_jsonl(log_path) if log_path.exists() else []
    if len(marks) >= 2 and len(logs) >= len(marks):
        tokens = sum(r["trained_tokens"] for r in logs[1:len(marks)])
        res["trained_tokens_per_s"] = round(tokens / (marks[-1] - marks[0]), 1)
    if logs:
        res.update(trained_tokens_per_step=logs[0]["trained_tokens"], first_loss=logs[0]["loss"],
                   last_loss=logs[-1]["loss"])
    man = out / "manifest.json"
    if man.exists():
        res["optimizer"] = json.loads(man.read_text()).get("optimizer")
    return res


def estimate_for(folder: Path, cfg, seq_len: int, device: str) -> dict:
    from emergent.pipeline.estimate import estimate_memory, model_shape

    est = estimate_memory(model_shape(str(folder)), cfg, seq_len=seq_len, device=device)
    return {"estimate_total_mib": round(est["total_gib"] * 1024, 1),
            "estimate_parts_mib": {k: round(v * 1024, 1) for k, v in est["parts_gib"].items()}}


def check_counts(names: list[str]) -> list[dict]:
    """Every shape's parameters counted on the meta device, against qwen_shapes.PARAMS, the
    package's own formula (emergent.pipeline.estimate.param_counts) and the model card."""
    from emergent.pipeline.estimate import param_counts, shape_from_config

    from qwen_shapes import count_meta_params

    rows = []
    for name in names:
        meta = count_meta_params(qwen_config(name))
        formula = param_counts(shape_from_config(PUBLISHED[name], name, "qwen_shapes"))["total"]
        rows.append({"shape": name, "published": PUBLISHED[name]["hub_id"],
                     "params_meta": meta, "params_expected": PARAMS.get(name),
                     "params_estimate_formula": formula,
                     "model_card_billions": MODEL_CARD_BILLIONS.get(name),
                     "counts_agree": meta == PARAMS.get(name) == formula})
    return rows


# ------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="32b",
                   help="comma list of: " + ", ".join(k for k in PUBLISHED if k != "tiny2"))
    p.add_argument("--max-lengths", default="1024,2048",
                   help="comma list of sequence lengths; every example is exactly this long")
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per length")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--cap-gib", type=float, default=24.0,
                   help="torch.cuda.set_per_process_memory_fraction to this many GiB (0 = none)")
    p.add_argument("--quantization", choices=["4bit", "none"], default=None,
                   help="default 4bit on CUDA, none with --dry-run")
    p.add_argument("--upcast-frozen", choices=["all", "norms"], default=None,
                   help="model.upcast_frozen (default: the config's)")
    p.add_argument("--adapter-dtype", choices=["fp32", "compute"], default=None,
                   help="train.adapter_dtype (default: the config's)")
    p.add_argument("--master-weights", action=argparse.BooleanOptionalAction, default=None,
                   help="train.master_weights")
    p.add_argument("--offload-activations", action=argparse.BooleanOptionalAction, default=None,
                   help="train.offload_activations")
    p.add_argument("--loss-chunk-tokens", type=int, default=None, help="train.loss_chunk_tokens")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                   default=True, help="model.gradient_checkpointing (default on)")
    p.add_argument("--optimizer", choices=["auto", "adamw", "paged_adamw_8bit"], default=None,
                   help="train.optimizer (default auto: paged 8-bit AdamW on CUDA)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other config override (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true",
                   help="CPU: the same code on a 2-layer Qwen2-shaped model (tiny2); counts the "
                   "requested shapes' parameters on the meta device")
    p.add_argument("--note", default=None)
    p.add_argument("--name", default=None,
                   help="result name (default memory_32b_cuda, memory_32b_cpu with --dry-run)")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda and not a.dry_run:
        print("memory_32b: no CUDA device visible to torch; run it on a CUDA machine, or "
              "--dry-run for the CPU check of this script", file=sys.stderr)
        return 2
    shapes = [s.strip() for s in a.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in PUBLISHED]
    if unknown:
        print(f"memory_32b: unknown shape {unknown[0]!r} (known: {', '.join(PUBLISHED)})",
              file=sys.stderr)
        return 2
    lengths = [int(x) for x in a.max_lengths.split(",") if x.strip()]
    quant = a.quantization or ("none" if a.dry_run else "4bit")
    device = "cuda" if cuda else "cpu"
    machine = machine_info(a.note)
    cap = None
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        total = torch.cuda.get_device_properties(0).total_memory
        if a.cap_gib:
            cap = min(1.0, a.cap_gib * GIB / total)
            torch.cuda.set_per_process_memory_fraction(cap)
    counts = check_counts([s for s in shapes if s != "tiny2"])
    for c in counts:
        print(f"{c['shape']}: {c['params_meta']:,} parameters on the meta device "
              f"(expected {c['params_expected']:,}; card {c['model_card_billions']}B)")
    from emergent.models.loading import torch_dtype

    compute_dtype = torch_dtype("bf16") if cuda else torch.float32
    runs = []
    work = Path(tempfile.mkdtemp(prefix="emergent-memory-32b-"))
    try:
        for shape in (["tiny2"] if a.dry_run else shapes):
            config = qwen_config(shape)
            folder = write_folder(config, work / f"model-{shape}")
            t0 = time.perf_counter()
            try:
                with PeakRSS() as rss:
                    model, stored = build_random_model(config, device, compute_dtype,
                                                       quant == "4bit", a.seed)
            except torch.OutOfMemoryError as e:
                print(f"{shape}: out of memory while building: {str(e).splitlines()[0]}")
                runs.append({"shape": shape, "status": "oom_building",
                             "error": str(e).splitlines()[0][:300]})
                gc.collect()
                torch.cuda.empty_cache()
                continue
            built = {"shape": shape, "quantization": quant, "build_seconds":
                     round(time.perf_counter() - t0, 1),
                     "stored_bytes": stored,
                     "parameters": sum(p.numel() * (2 if getattr(p, "quant_state", None)
                                                    is not None else 1)
                                       for p in model.parameters()),
                     "build_peak_rss_mib": rss.peak_mib}
            if cuda:
                built["built_allocated_mib"] = round(torch.cuda.memory_allocated() / MIB, 1)
            print(f"== {shape}: built in {built['build_seconds']} s, stored (MiB) "
                  f"{ {k: round(v / MIB, 1) for k, v in stored.items()} }", flush=True)
            for length in lengths:
                data = write_random_examples(
                    work / f"data-{length}.jsonl", a.steps * a.batch_size * a.grad_accum,
                    length, a.seed)
                cfg = make_cfg(folder, data, work / f"out-{shape}-{length}", length, quant, a)
                lens, trained_share = row_lengths(cfg)
                r = {**built, "max_length": length, "row_lengths": sorted(set(lens)),
                     "trained_share": round(trained_share, 4),
                     "cap_gib": a.cap_gib if cap else None,
                     "switches": switches(a)}
                r.update(run_length(model, cfg, cuda))
                r.update(estimate_for(folder, cfg, length, device))
                if cuda:
                    r["fits_24gib"] = bool(r["status"] == "ok" and r.get("peak_total_mib")
                                           and r["peak_total_mib"] <= 24 * 1024)
                print(json.dumps({k: v for k, v in r.items() if k != "estimate_parts_mib"}),
                      flush=True)
                runs.append(r)
                strip_adapters(model)
            del model
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(runs, ["shape", "max_length", "status", "steps_done", "peak_allocated_mib",
                       "peak_reserved_mib", "outside_allocator_mib", "peak_total_mib",
                       "estimate_total_mib", "trained_tokens_per_s", "peak_rss_mib", "fits_24gib"])
    write_result(a.name or ("memory_32b_cuda" if cuda else "memory_32b_cpu"),
                 {"args": vars(a), "device": device, "cap_fraction": cap,
                  "shape_counts": counts, "runs": runs,
                  "models_note": "random-init models of published shapes built offline "
                                 "(benchmarks/qwen_shapes.py): memory and speed only"
                                 + ("; dry run on CPU: tiny2 shape, numbers are plumbing checks"
                                    if a.dry_run else "")},
                 machine, a.results_dir)
    return 0 if all(r.get("status") in ("ok", "oom") for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
