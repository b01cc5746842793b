"""The `emergent` command. Each subcommand lives in the module that implements it; that module
exposes `add_cli(subparsers)`. To add a command, add its module to COMMAND_MODULES."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from emergent.core.errors import UserError

# One line per module that contributes subcommands (module must define add_cli(sub)).
COMMAND_MODULES = [
    "emergent.models.tiny",
    "emergent.models.gguf",
    "emergent.train.loop",
    "emergent.cli.data",
    "emergent.data.upstream",
    "emergent.data.stats",
    "emergent.cli.toyworld",
    "emergent.cli.sample",
    "emergent.pipeline.estimate",
    "emergent.evals.capabilities", "emergent.analysis.direction",
    "emergent.report.figures",
    "emergent.pipeline.run",
    "emergent.cli.judge", "emergent.report.tables",
    "emergent.toyworld.demo",
    "emergent.cli.rmbias",
    "emergent.cli.configs",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emergent", description="Emergent-misalignment and reward-model-bias experiments: "
        "train arms with one LoRA loop, sample, judge, report, draw the figures.")
    from emergent import __version__

    parser.add_argument("--version", action="version", version=f"emergent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    data_sub = None
    for name in COMMAND_MODULES:
        mod = importlib.import_module(name)
        if hasattr(mod, "add_data_cli"):
            if data_sub is None:
                data_parser = sub.add_parser("data", help="datasets: show, fetch, stats")
                data_sub = data_parser.add_subparsers(dest="data_command", required=True)
            mod.add_data_cli(data_sub)
        if hasattr(mod, "add_cli"):
            mod.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options: `emergent train C --output D train.lr=1e-4`
    if extra:
        if not hasattr(args, "overrides") or any(x.startswith("-") or "=" not in x for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides or []) + extra
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"emergent: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emergent: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
