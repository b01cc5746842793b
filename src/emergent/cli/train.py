"""`emergent train CONFIG [key=value ...]`: one adapter through the training loop
(emergent.train.loop)."""
from __future__ import annotations

from emergent.core.config import TrainRecipeConfig, load_config
from emergent.train.loop import train


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train one adapter: emergent train CONFIG [key=value ...]")
    p.add_argument("config", help="YAML config, or a shipped name (`emergent configs list`)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=2e-5")
    p.add_argument("--model", help="base model: hub id or local path (model.name)")
    p.add_argument("--data", help="chat JSONL dataset (data.path)")
    p.add_argument("--output", help="output directory (output_dir)")
    p.set_defaults(func=run)


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
    final = train(cfg)
    print(f"adapter written to {final}" if final.name == "adapter" else f"model written to {final}")
    return 0
