"""`emergent icl CONFIG [--dry-run] [--on-change refuse|redo] [-o RUN] [--executor
local|slurm|ray ...] [key=value ...]`: in-context learning without training
(emergent.pipeline.icl): the base model samples every suite question after k example
conversations of each arm (with `--executor slurm|ray`, one job per sampling unit), then judge,
metrics and the figure misaligned rate vs k."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from emergent.cli.run import add_executor_args, executor_options
from emergent.pipeline.icl import load_icl_config, plan, run_icl


def print_summary(path: Path) -> None:
    """suite / k / arm / rate [95% CI] from an ICL run's summary.csv."""
    def pct(x):
        return f"{100 * float(x):.1f}%" if x not in (None, "") else "-"

    for r in csv.DictReader(open(path, newline="", encoding="utf-8")):
        if r.get("rate") not in (None, ""):
            print(f"{r['suite']:<16} k={r.get('icl_k') or '?':<5} {r['arm']:<12} misaligned "
                  f"{pct(r['rate']):>7} [{pct(r['ci_low'])}, {pct(r['ci_high'])}]  "
                  f"n={r['n_valid']}")
    print(f"(full table: {path})")


def run_cli(args) -> int:
    opts = executor_options(args)  # before anything is read or written
    cfg = load_icl_config(args.config, list(args.overrides) +
                          ([f"output_dir={args.output}"] if args.output else []))
    if args.dry_run:
        print(json.dumps(plan(cfg), indent=1))
        return 0
    run = run_icl(cfg, figures=not args.no_figures, on_change=args.on_change,
                  executor=args.executor, executor_options=opts)
    print(f"run directory: {run.dir}")
    if run.summary_path.exists():
        print_summary(run.summary_path)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("icl", help="in-context learning: sample the suites after k example "
                       "conversations of each arm (no training), judge, summarize, draw")
    p.add_argument("config", help="ICL config (`kind: icl`): a YAML file or a shipped name, "
                   "e.g. icl_qwen25_coder_7b")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. ks=[0,16] seeds=[0,1]")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (answers, judge calls, each k's longest prompt in "
                   "tokens) and exit")
    p.add_argument("-o", "--output", metavar="RUN", help="run directory (output_dir)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--on-change", choices=("refuse", "redo"), default="refuse",
                   help="when the run directory holds units made with another config: refuse "
                   "(default) or redo those units and what depends on them")
    add_executor_args(p)
    p.set_defaults(func=run_cli)
