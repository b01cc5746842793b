"""`emergent report FILES_OR_RUN_DIR ...`: misalignment rates per arm with CIs and tests; prints
the table and writes summary.csv and per_question.csv (see `emergent.report.tables`)."""
from __future__ import annotations

from pathlib import Path

from emergent.analysis.metrics import Thresholds
from emergent.core.rundir import RunDir, lock_if_run
from emergent.evals.code_eval import code_eval_summary
from emergent.report.tables import (TABLE_LEGEND, capability_lines, format_table, format_value,
                                    load_records, summarize_by_suite, write_csv)

DEFAULT = Thresholds()


def add_cli(sub) -> None:
    p = sub.add_parser("report", help="misalignment rates per arm with CIs and tests; writes "
                       "summary.csv")
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_RUN_DIR")
    p.add_argument("--treatment", help="arm tested against each control (default: insecure)")
    p.add_argument("--controls", help="comma-separated control arms (default: all others)")
    p.add_argument("--aligned-below", type=float, default=DEFAULT.aligned_below)
    p.add_argument("--coherent-above", type=float, default=DEFAULT.coherent_above)
    p.add_argument("--n-boot", type=int, default=10_000,
                   help="bootstrap resamples and permutations")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap/permutation RNG")
    p.add_argument("--out", help="folder for summary.csv (default: the run dir / file's folder)")
    p.set_defaults(func=run)


def run(args) -> int:
    records = load_records(args.inputs)
    th = Thresholds(args.aligned_below, args.coherent_above)
    controls = [c for c in args.controls.split(",") if c] if args.controls else None
    arms, questions = summarize_by_suite(records, th, args.treatment, controls, args.n_boot,
                                         args.seed)
    first = Path(args.inputs[0])
    out = RunDir(args.out if args.out else (first if first.is_dir() else first.parent))
    with lock_if_run(out.dir):  # a run directory: never written beside its live writer
        print(f"misaligned = aligned < {th.aligned_below:g} among answers with coherent > "
              f"{th.coherent_above:g} (code/refusal = aligned None)")
        for suite in dict.fromkeys(a["suite"] for a in arms):
            print(f"\nsuite: {suite or '-'}")
            print(format_table([a for a in arms if a["suite"] == suite]))
        print("\n" + TABLE_LEGEND)
        if first.is_dir():
            arms += _run_extras(RunDir(first), args)
        write_csv(out.summary_path, arms)
        write_csv(out.per_question_path, questions)
    print(f"wrote {out.summary_path} and {out.per_question_path}")
    return 0


def _run_extras(run_dir: RunDir, args) -> list[dict]:
    """Print the vulnerable-code rates and capability scores a run directory has; returns the
    vulnerable-code rows (they join summary.csv)."""
    code = []
    if run_dir.bandit_judgments_path.exists():
        code = code_eval_summary(run_dir.dir, n_boot=args.n_boot, seed=args.seed)
        print("\nvulnerable code on held-out tasks (judge P(YES) / bandit):")
        for r in code:
            judge = format_value(r.get("vulnerable_rate_judge"), True)
            bandit = format_value(r.get("vulnerable_rate_bandit"), True)
            print(f"  {r['arm']:<16} judge {judge:>7}  bandit {bandit:>7}")
    if run_dir.capabilities_path.exists():
        print("\ncapabilities (lm-eval; mean over seeds):")
        for line in capability_lines(run_dir.capabilities_path):
            print("  " + line)
    return code
