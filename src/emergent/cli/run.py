"""`emergent run CONFIG [key=value ...] [--dry-run] [--output DIR] [--no-figures]
[--on-change refuse|redo]`: an
experiment end to end (emergent.pipeline.run)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from emergent.pipeline.run import dry_run, load_experiment, run_experiment


def print_summary(path: Path) -> None:
    """suite / arm / rate [95% CI] (or the vulnerable-code rates) from a run's summary.csv."""
    def pct(x):
        return f"{100 * float(x):.1f}%" if x not in (None, "") else "-"

    for r in csv.DictReader(open(path, newline="")):
        where = r["suite"] + (f"/{r['condition']}" if r.get("condition") else "")  # triggered
        if r.get("rate") not in (None, ""):
            print(f"{where:<22} {r['arm']:<16} misaligned {pct(r['rate']):>7} "
                  f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]  n={r['n_valid']}")
        elif r.get("vulnerable_rate_judge") is not None or r.get("vulnerable_rate_bandit"):
            print(f"{where:<22} {r['arm']:<16} vulnerable code: judge "
                  f"{pct(r.get('vulnerable_rate_judge'))}, bandit {pct(r.get('vulnerable_rate_bandit'))}")
    print(f"(full table: {path})")


def run_cli(args) -> int:
    cfg = load_experiment(args.config, list(args.overrides) +
                          ([f"output_dir={args.output}"] if args.output else []))
    if args.dry_run:
        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    run = run_experiment(cfg, figures=not args.no_figures, on_change=args.on_change)
    print(f"run directory: {run.dir}")
    if run.summary_path.exists():
        print_summary(run.summary_path)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("run", help="run an experiment: train -> sample -> judge -> metrics -> figures")
    p.add_argument("config", help="experiment config: a YAML file or a shipped name "
                   "(`emergent configs list`), e.g. qwen25_coder_7b")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. seeds=[0,1] training.train.lr=2e-5")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--output", help="run directory (output_dir)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--on-change", choices=("refuse", "redo"), default="refuse",
                   help="when the run directory holds units made with another config: refuse "
                   "(default; one line naming the keys that differ) or redo those units and "
                   "everything built on them")
    p.set_defaults(func=run_cli)
