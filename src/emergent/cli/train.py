"""`emergent train CONFIG [key=value ...]`: one adapter through the training loop
(emergent.train.loop). `--num-processes N` (N > 1) trains data-parallel: the command runs
itself again as N processes through `--launcher` (accelerate, the default, or torchrun;
emergent.train.distributed); `accelerate launch -m emergent train ...` does the same."""
from __future__ import annotations

import logging
import os
import subprocess

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.data.chat_data import load_jsonl_examples
from emergent.train import distributed
from emergent.train.loop import train


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train one adapter: emergent train CONFIG [key=value ...]")
    p.add_argument("config", help="YAML config, or a shipped name (`emergent configs list`)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=2e-5")
    p.add_argument("--model", help="base model: hub id or local path (model.name)")
    p.add_argument("--data", help="chat JSONL dataset (data.path)")
    p.add_argument("--output", help="output directory (output_dir)")
    p.add_argument("--num-processes", type=int, default=1, metavar="N",
                   help="data-parallel processes (one per GPU; default 1: this process)")
    p.add_argument("--launcher", choices=distributed.LAUNCHERS, default="accelerate",
                   help="what starts the N processes (default accelerate)")
    p.add_argument("--cpu", action="store_true",
                   help="train on CPU, GPUs hidden (several processes: gloo)")
    p.set_defaults(func=run)


def _train_argv(args) -> list[str]:
    """The `emergent` arguments of this command, without the launch flags."""
    argv = ["-q"] * args.log_quiet + ["-v"] * args.log_verbose
    argv += ["train", args.config, *args.overrides]
    for flag, value in (("--model", args.model), ("--data", args.data),
                        ("--output", args.output)):
        if value:
            argv += [flag, value]
    return argv


def run(args) -> int:
    """Load the config with the flags as overrides, train, say where the result went."""
    extra = []
    if args.model:
        extra.append(f"model.name={args.model}")
    if args.data:
        extra.append(f"data.path={args.data}")
    if args.output:
        extra.append(f"output_dir={args.output}")
    cfg = load_config(args.config, TrainRecipeConfig, list(args.overrides) + extra)
    here = distributed.from_env()
    if args.num_processes > 1:
        if here.enabled:
            raise UserError("--num-processes: this process is already one of "
                            f"{here.world} launched processes; drop the flag")
        return _launch(args, cfg)
    if args.num_processes < 1:
        raise UserError(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.cpu:  # before torch is imported
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if not here.main:  # ranks > 0: warnings and errors only, rank 0 speaks for the run
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    try:
        final = train(cfg)  # joins the process group when launched as one of several
    finally:
        distributed.close(here)
    if here.main:
        print(f"adapter written to {final}" if final.name == "adapter"
              else f"model written to {final}")
    return 0


def _launch(args, cfg) -> int:
    """Check the data (one FILE:LINE line here rather than one per process), then run this
    command as `args.num_processes` processes through the launcher."""
    if not cfg.data.path:
        raise UserError("data.path is empty: give a dataset (config data.path or --data FILE)")
    load_jsonl_examples(cfg.data.path, cfg.data.format)
    cmd, env = distributed.launch_command(args.launcher, args.num_processes, _train_argv(args),
                                          cpu=args.cpu)
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if rc != 0:
        raise UserError(f"{args.launcher} launch of {args.num_processes} training processes "
                        f"failed (exit {rc}; the processes' messages are above); rerunning the "
                        "same command resumes from the last checkpoint")
    return 0
