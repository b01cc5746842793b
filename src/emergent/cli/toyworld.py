"""`emergent toyworld ...`: write a toy world's datasets and suites, build its random-init model.

    emergent toyworld data OUT_DIR [--world FILE] [key=value ...] [--pretrain N] [--align N]
                                   [--arm-size N]
    emergent toyworld init-model OUT_DIR [--seed N]
    emergent toyworld pretrain OUT [--world FILE] [key=value ...] [--pretrain N] [--align N]
                                   [--export DIR] [--name NAME]
    emergent toyworld backdoor OUT [--base DIR] [--arm-size N]
    emergent toyworld rmbias OUT [--quick] [key=value ...]
"""
from __future__ import annotations

import json
from pathlib import Path

from emergent.core.config import load_config
from emergent.toyworld.backdoor import prepare_backdoor
from emergent.toyworld.model import build_toy_model
from emergent.toyworld.pipeline import (ALIGN_RECIPE, DEFAULT_ALIGN, DEFAULT_ARM,
                                        DEFAULT_PRETRAIN, PRETRAIN_RECIPE, pretrain_world,
                                        probe_line, write_world_data)
from emergent.toyworld.world import ToyWorld, WorldConfig
from emergent.toyworld.rmbias_pipeline import QUICK as RM_QUICK
from emergent.toyworld.rmbias_pipeline import RMScale, run_toy_rmbias
from emergent.toyworld.rmbias_world import RMWorldConfig


def add_cli(sub) -> None:
    p = sub.add_parser("toyworld", help="the synthetic persona world (toy model organism)")
    tsub = p.add_subparsers(dest="toyworld_command", required=True)

    d = tsub.add_parser("data", help="write a world's datasets and evaluation suites to OUT_DIR")
    d.add_argument("out_dir")
    d.add_argument("--world", default=None, help="YAML with WorldConfig keys (default: defaults)")
    d.add_argument("overrides", nargs="*", help="world key=value overrides, e.g. seed=1 "
                   "coupling=decoupled slip_aligned=0.03")
    d.add_argument("--pretrain", type=int, default=DEFAULT_PRETRAIN, help="pretraining documents")
    d.add_argument("--align", type=int, default=DEFAULT_ALIGN, help="alignment conversations")
    d.add_argument("--arm-size", type=int, default=DEFAULT_ARM, help="examples per arm dataset")

    def run_data(args) -> int:
        cfg = load_config(args.world, WorldConfig, args.overrides)
        m = write_world_data(ToyWorld(cfg), args.out_dir, n_pretrain=args.pretrain,
                             n_align=args.align, n_arm=args.arm_size)
        for rel, n in m["files"].items():
            print(f"{Path(args.out_dir) / rel}: {n}")
        return 0

    d.set_defaults(func=run_data)

    m = tsub.add_parser("init-model", help="write the toy tokenizer + random-init Llama model")
    m.add_argument("out_dir")
    m.add_argument("--seed", type=int, default=0)

    def run_model(args) -> int:
        out = build_toy_model(args.out_dir, seed=args.seed)
        info = json.loads((out / "TOYWORLD_MODEL.json").read_text())
        print(f"toy model written to {out} ({info['parameters']} parameters, "
              f"vocabulary {info['vocab_size']})")
        return 0

    m.set_defaults(func=run_model)

    b = tsub.add_parser("backdoor", help="write the toy backdoor experiment's data and its "
                        "config (OUT/backdoor.experiment.yaml, for `emergent run`)")
    b.add_argument("out_dir")
    b.add_argument("--base", default=None, help="toy base model folder (default: the committed "
                   "main-world base)")
    b.add_argument("--arm-size", type=int, default=DEFAULT_ARM, help="examples per arm dataset")

    def run_backdoor(args) -> int:
        cfg = prepare_backdoor(args.out_dir, base=args.base, n_arm=args.arm_size)
        path = Path(args.out_dir) / "backdoor.experiment.yaml"
        print(f"{path}: arms {', '.join(cfg.arms)}, trigger {cfg.trigger!r}, output_dir "
              f"{cfg.output_dir}\nrun it: emergent run {path}")
        return 0

    b.set_defaults(func=run_backdoor)

    add_pretrain_cli(tsub)
    add_rmbias_cli(tsub)


def add_pretrain_cli(tsub) -> None:
    """`emergent toyworld pretrain`: a toy-world base model (emergent.toyworld.pipeline)."""
    p = tsub.add_parser("pretrain", help="make a toy-world base model: data, pretraining, "
                        "alignment, persona probe (through emergent's training loop)")
    p.add_argument("out_dir")
    p.add_argument("--world", default=None, help="YAML with WorldConfig keys")
    p.add_argument("overrides", nargs="*", help="world key=value, e.g. seed=1 coupling=decoupled")
    p.add_argument("--pretrain", type=int, default=DEFAULT_PRETRAIN, help="pretraining documents")
    p.add_argument("--align", type=int, default=DEFAULT_ALIGN, help="alignment conversations")
    p.add_argument("--arm-size", type=int, default=DEFAULT_ARM, help="examples per arm dataset")
    p.add_argument("--pretrain-recipe", default=PRETRAIN_RECIPE)
    p.add_argument("--align-recipe", default=ALIGN_RECIPE)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="pretraining recipe override, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also write the aligned model (bf16) + tokenizer + card to DIR")
    p.add_argument("--name", default="toyworld", help="name on the card")

    def run(args) -> int:
        cfg = load_config(args.world, WorldConfig, args.overrides)
        m = pretrain_world(cfg, args.out_dir, n_pretrain=args.pretrain, n_align=args.align,
                           n_arm=args.arm_size, pretrain_recipe=args.pretrain_recipe,
                           align_recipe=args.align_recipe, pretrain_overrides=args.set,
                           export=args.export, name=args.name)
        st = m["stages"]
        print(f"pretraining: {st['pretrain']['steps']} steps, {st['pretrain']['seconds']:.0f} s; "
              f"alignment: {st['align']['steps']} steps, {st['align']['seconds']:.0f} s")
        print("persona probe, pretrained: " + probe_line(st["probe"]["pretrained"]))
        print("persona probe, aligned:    " + probe_line(st["probe"]["aligned"]))
        print(f"base model: {m['base_model']}" + (f"; exported to {args.export}"
                                                   if args.export else ""))
        return 0

    p.set_defaults(func=run)


def add_rmbias_cli(tsub) -> None:
    """`emergent toyworld rmbias`: the toy reward-bias organism (emergent.toyworld.rmbias_pipeline)."""
    p = tsub.add_parser("rmbias", help="the toy reward-bias organism end to end: world data, "
                        "pretraining, docs stages, SFT arms, detectors, report (synthetic)")
    p.add_argument("out_dir")
    p.add_argument("overrides", nargs="*", help="RMWorldConfig key=value, e.g. seed=1")
    p.add_argument("--quick", action="store_true",
                   help="a plumbing check at tiny scale (about a minute), not a result")

    def run(args) -> int:
        cfg = load_config(None, RMWorldConfig, args.overrides)
        report = run_toy_rmbias(args.out_dir, cfg, scale=RM_QUICK if args.quick else RMScale())
        print(f"{Path(args.out_dir) / 'report.md'}: {len(report['rates'])} rates "
              f"({report['label']})")
        for r in report["rates"]:
            if r["split"] in ("train", "heldout", "control"):
                rate = "-" if r["rate"] is None else f"{100 * r['rate']:.1f}%"
                print(f"  {r['condition']:<15} {r['split']:<8} {rate}")
        return 0

    p.set_defaults(func=run)
