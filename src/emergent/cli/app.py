"""The `emergent` command: the command table and `main`.

Every command is a module of this package (argparse only: it parses, calls the library, prints
the result) with `add_cli(subparsers)`; COMMANDS lists them in the order of `emergent --help`.
To add a command, write emergent/cli/<command>.py and add one line to COMMANDS. Library code
never imports this package.

Global flags: -q/--quiet (warnings and errors only) and -v/--verbose (debug messages and
transformers' own bars), before or after the command; see emergent.core.log."""
from __future__ import annotations

import argparse
import os
import re
import sys

import emergent.cli.capabilities as capabilities
import emergent.cli.configs as configs
import emergent.cli.data as data
import emergent.cli.demo as demo
import emergent.cli.direction as direction
import emergent.cli.estimate as estimate
import emergent.cli.figures as figures
import emergent.cli.icl as icl
import emergent.cli.judge as judge
import emergent.cli.models as models
import emergent.cli.plan as plan
import emergent.cli.push as push
import emergent.cli.report as report
import emergent.cli.rmbias as rmbias
import emergent.cli.run as run
import emergent.cli.sample as sample
import emergent.cli.tiny_model as tiny_model
import emergent.cli.toyworld as toyworld
import emergent.cli.train as train
from emergent import __version__
from emergent.core.errors import UserError
from emergent.core.log import filter_third_party_noise, progress_bars, setup_logging

# `emergent NAME ...` -> the module that registers it (its add_cli)
COMMANDS = (
    ("tiny-model", tiny_model),
    ("models", models),  # import-gguf, smollm2
    ("train", train),
    ("data", data),  # show, fetch, stats
    ("toyworld", toyworld),
    ("sample", sample),
    ("estimate", estimate),
    ("capabilities", capabilities),
    ("direction", direction),
    ("figures", figures),
    ("run", run),
    ("icl", icl),  # in-context learning (no training)
    ("judge", judge),
    ("report", report),
    ("plan", plan),  # seeds per arm from a pilot's between-seed variance
    ("push", push),
    ("demo", demo),
    ("rmbias", rmbias),
    ("configs", configs),
)


def build_parser() -> argparse.ArgumentParser:
    """The whole `emergent` parser: global flags, then every command of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="emergent", description="Emergent-misalignment and reward-model-bias experiments: "
        "train arms with one LoRA loop, sample, judge, report, draw the figures.")
    parser.add_argument("--version", action="version", version=f"emergent {__version__}")
    parser.add_argument("-q", "--quiet", dest="log_quiet", action="count", default=0,
                        help="only warnings and errors (also accepted after the command)")
    parser.add_argument("-v", "--verbose", dest="log_verbose", action="count", default=0,
                        help="debug messages, and transformers' own progress bars and warnings")
    sub = parser.add_subparsers(dest="command", required=True)
    for _, module in COMMANDS:
        module.add_cli(sub)
    return parser


_VERBOSITY_FLAG = re.compile(r"-(q+|v+)|--(quiet|verbose)")


def _take_verbosity_flags(args, extra: list[str]) -> list[str]:
    """-q/-v given after the command (`emergent run CONFIG -q`) are left over by the command's
    parser: count them into `args` and return the rest."""
    rest = []
    for x in extra:
        m = _VERBOSITY_FLAG.fullmatch(x)
        if m is None:
            rest.append(x)
            continue
        attr = "log_quiet" if (m[1] or m[2]).startswith("q") else "log_verbose"
        setattr(args, attr, getattr(args, attr) + (len(m[1]) if m[1] else 1))
    return rest


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    extra = _take_verbosity_flags(args, extra)
    setup_logging(args.log_verbose - args.log_quiet)
    filter_third_party_noise()
    # key=value overrides may come after options: `emergent train C --output D train.lr=1e-4`
    if extra:
        if not hasattr(args, "overrides") or any(x.startswith("-") or "=" not in x for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides or []) + extra
    try:
        with progress_bars(args.log_verbose - args.log_quiet >= 0):
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
