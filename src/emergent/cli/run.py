"""`emergent run CONFIG [key=value ...] [--dry-run] [--output DIR] [--no-figures]
[--on-change refuse|redo] [--executor local|slurm|ray ...]`: an experiment end to end
(emergent.pipeline.run); with `--executor slurm|ray`, training and sampling units run as jobs
of that engine (emergent.pipeline.executors, docs/scaling.md). `add_executor_args` and
`executor_options` are the executor flags of every command that runs a plan."""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from emergent.core.errors import UserError
from emergent.pipeline.executors import CHOICES, LOCAL, SUBMITIT_CLUSTERS, ExecutorOptions
from emergent.pipeline.run import dry_run, load_experiment, run_experiment

# flag -> the executor it belongs to (given with another one: refused)
_ENGINE_FLAGS = {"slurm_partition": "slurm", "slurm_time": "slurm", "slurm_mem_gb": "slurm",
                 "slurm_cluster": "slurm", "slurm_option": "slurm", "ray_address": "ray",
                 "workers": None, "gpus_per_unit": None, "cpus_per_unit": None}


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


def _value(text: str):
    return int(text) if text.lstrip("-").isdigit() else text


def executor_options(args) -> ExecutorOptions:
    """The --executor flags as ExecutorOptions; a flag of another executor is refused."""
    for name, engine in _ENGINE_FLAGS.items():
        given = getattr(args, name) not in (None, [])
        if given and (args.executor == LOCAL or engine not in (None, args.executor)):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} needs --executor {engine or 'slurm or ray'}")
    options = {}
    for item in args.slurm_option or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--slurm-option {item!r}: expected KEY=VALUE, e.g. account=mylab")
        options[key.strip().removeprefix("slurm_")] = _value(value.strip())
    kw = {"workers": args.workers, "gpus_per_unit": args.gpus_per_unit,
          "cpus_per_unit": args.cpus_per_unit, "mem_gb": args.slurm_mem_gb,
          "time_min": args.slurm_time, "slurm_partition": args.slurm_partition,
          "slurm_cluster": args.slurm_cluster, "slurm_options": options,
          "ray_address": args.ray_address}
    return ExecutorOptions(**{k: v for k, v in kw.items() if v is not None})


def run_cli(args) -> int:
    opts = executor_options(args)  # before anything is read or written
    cfg = load_experiment(args.config, list(args.overrides) +
                          ([f"output_dir={args.output}"] if args.output else []))
    if args.dry_run:
        print(json.dumps(dry_run(cfg), indent=1))
        return 0
    run = run_experiment(cfg, figures=not args.no_figures, on_change=args.on_change,
                         executor=args.executor, executor_options=opts)
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
    add_executor_args(p)
    p.set_defaults(func=run_cli)


def add_executor_args(p) -> None:
    """The --executor flags of every command that runs a plan (`emergent run`, `emergent icl`,
    `emergent rmbias run`); read back by `executor_options`."""
    g = p.add_argument_group("executors (docs/scaling.md; pip extra "
                             "emergent-misalignment[cluster])")
    g.add_argument("--executor", choices=CHOICES, default=LOCAL,
                   help="local: one unit after another in this process (default); slurm "
                   "(submitit) or ray: each training and sampling unit (and the code "
                   "evaluation's sampling, capabilities) as one job, this process coordinating "
                   "and then judging")
    g.add_argument("--workers", type=_positive, metavar="N",
                   help="most units in flight at once (default: as the engine allows; 2 with "
                   "--slurm-cluster local)")
    g.add_argument("--gpus-per-unit", type=_count, metavar="G",
                   help="GPUs of one job (default: 1 on SLURM; Ray: 1 when the cluster has GPUs)")
    g.add_argument("--cpus-per-unit", type=_positive, metavar="C",
                   help="CPUs of one job (default 1)")
    g.add_argument("--slurm-partition", metavar="P", help="SLURM partition of the jobs")
    g.add_argument("--slurm-time", type=_positive, metavar="MIN",
                   help="time limit of one job in minutes (default 240)")
    g.add_argument("--slurm-mem-gb", type=_gigabytes, metavar="GB", help="memory of one job")
    g.add_argument("--slurm-cluster", choices=SUBMITIT_CLUSTERS,
                   help="submitit's cluster: slurm (default), local (jobs as processes on this "
                   "machine, to try a sweep without SLURM)")
    g.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                   help="another submitit slurm_* parameter, e.g. account=mylab, qos=high, "
                   "constraint=a100 (repeatable)")
    g.add_argument("--ray-address", metavar="ADDR", help="a running Ray cluster (default: "
                   "$RAY_ADDRESS, else a Ray instance started on this machine for the run)")


def _integer(text: str, low: int) -> int:
    """argparse type: an integer >= low (argparse prints the message after the flag)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {n}")
    return n


def _positive(text: str) -> int:
    return _integer(text, 1)


def _count(text: str) -> int:
    return _integer(text, 0)


def _gigabytes(text: str) -> float:
    """argparse type: a finite number of GB > 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return x
