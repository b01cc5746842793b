"""`emergent estimate CONFIG [CONFIG ...] [key=value ...]`: GPU memory (or CPU RAM), steps and
time of a training config, or of every arm of an experiment config, before starting; per GPU
on several (`--num-gpus N --strategy ddp|fsdp`) (emergent.pipeline.estimate). Every part is
printed (weights by dtype, quantization constants, adapter, gradients, master weights,
optimizer states, activations, loss chunk, dequantization buffers, allocator slack, CUDA
context), with what torch's allocator holds and the host memory of offloaded activations;
`--json` carries them."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from emergent.core.errors import UserError
from emergent.pipeline.estimate import estimate, format_report, recipes_of


def _run(args) -> int:
    """Print one report per recipe (or all of them as JSON with --json)."""
    items = list(args.configs) + list(args.overrides or [])
    ov = [x for x in items if "=" in x and not Path(x).is_file()]
    files = [x for x in items if x not in ov]
    if not files:
        raise UserError("estimate: give at least one training or experiment config")
    reports = []
    for f in files:
        for label, cfg in recipes_of(f, ov):
            rep = estimate(cfg, config_json=args.config_json, examples=args.examples,
                           mean_tokens=args.mean_tokens, gpu_gib=args.gpu_gib,
                           device=args.device, num_gpus=args.num_gpus,
                           strategy=args.strategy)
            reports.append(rep)
            if not args.json:
                print(format_report(rep, label))
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=1, default=str))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("estimate", help="GPU memory, steps and time of a training config, "
                       "before starting: emergent estimate CONFIG [CONFIG ...] [key=value ...]")
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="training config YAML(s) (one per arm) or an experiment config (every "
                   "arm); key=value items are overrides")
    p.add_argument("overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    p.add_argument("--config-json", help="the model's config.json, when it is not found locally")
    p.add_argument("--examples", type=int, help="number of training examples (no data file)")
    p.add_argument("--mean-tokens", type=float, help="mean tokens per example (no data file)")
    p.add_argument("--gpu-gib", type=float, default=24.0,
                   help="card (or, with --device cpu, RAM) to check against (GB)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: GPU memory (default); cpu: the training process's peak RSS "
                   "(fp32 compute for bf16, fp32 AdamW, the Python runtime instead of a CUDA "
                   "context)")
    p.add_argument("--num-gpus", type=int, default=1, metavar="N",
                   help="memory per GPU and time on N GPUs (default 1)")
    p.add_argument("--strategy", choices=("ddp", "fsdp"),
                   help="with --num-gpus N > 1: ddp (every GPU holds the whole model; default) "
                   "or fsdp (weights, gradients and optimizer states sharded 1/N: "
                   "train.distributed fsdp)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=_run)
