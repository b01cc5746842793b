"""`emergent demo`: emergent misalignment in the synthetic toy world, end to end on a CPU
(emergent.toyworld.demo)."""
from __future__ import annotations

from emergent.core.errors import UserError
from emergent.toyworld.demo import EXPERIMENTS, WORLDS, run_demo


def add_cli(sub) -> None:
    p = sub.add_parser("demo", help="emergent misalignment in the synthetic toy world, end to "
                       "end on a CPU (minutes)")
    p.add_argument("--from-scratch", action="store_true",
                   help="pretrain the toy base models now instead of using the committed ones")
    p.add_argument("--output", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--quick", action="store_true",
                   help="scaled down: a plumbing check in about a minute, not a result")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--pretrain-recipe", default=None, metavar="FILE",
                   help="with --from-scratch: the pretraining recipe (default "
                   "configs/toyworld_pretrain_fast.yaml, 48,000 documents, ~13 min on 2 cores; "
                   "configs/toyworld_pretrain.yaml is the committed bases' recipe, ~25 min)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worlds run at the same time, each in its own process with cores/N "
                   "torch threads (default: one per world, at most one per core; 1: one after "
                   "the other)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=FILE",
                   help="experiment config of world NAME (main, decoupled): a file or a "
                   "shipped name (default toyworld, toyworld_decoupled)")
    p.add_argument("--base", action="append", default=[], metavar="NAME=DIR",
                   help="base model of world NAME (a folder written by `emergent toyworld "
                   "pretrain --export`) instead of the committed one")
    p.add_argument("--experiments", action="store_true",
                   help="after the two worlds, also run the toy analogues of the paper's other "
                   "experiments (" + ", ".join(f"{e.name}: configs/{e.config}" for e in EXPERIMENTS)
                   + ") and add their tables to report.md / report.json (default: off)")
    p.set_defaults(func=run_cli)


def pairs(items, flag) -> dict:
    """NAME=VALUE items of a repeatable flag, NAME a demo world."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in dict(WORLDS):
            raise UserError(f"{flag} {item}: expected NAME=VALUE with NAME one of "
                            f"{', '.join(dict(WORLDS))}")
        out[name] = value
    return out


def run_cli(args) -> int:
    if args.pretrain_recipe and not args.from_scratch:
        raise UserError("--pretrain-recipe needs --from-scratch")
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs: expected a number of worlds at a time, at least 1")
    configs = {**dict(WORLDS), **pairs(args.config, "--config")}
    run_demo(args.output, from_scratch=args.from_scratch, quick=args.quick,
             figures=not args.no_figures, worlds=tuple(configs.items()),
             bases=pairs(args.base, "--base"), jobs=args.jobs,
             pretrain_recipe=args.pretrain_recipe,
             experiments=EXPERIMENTS if args.experiments else ())
    return 0
