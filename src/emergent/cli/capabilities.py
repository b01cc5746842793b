"""`emergent capabilities RUN_DIR_OR_ADAPTER`: lm-eval capability scores of a run's base model
and adapters, or of one adapter (see `emergent.evals.capabilities`)."""
from __future__ import annotations

from pathlib import Path

from emergent.core.io import read_jsonl
from emergent.core.rundir import CAPABILITIES, RunDir
from emergent.evals.capabilities import adapter_unit, default_tasks, evaluate_units


def add_cli(sub) -> None:
    p = sub.add_parser("capabilities", help="lm-eval capability scores (MMLU, TruthfulQA, "
                       "HumanEval) of a run's base model and adapters, or of one adapter")
    p.add_argument("target", metavar="RUN_DIR_OR_ADAPTER")
    p.add_argument("--tasks", default=None, help="comma-separated lm-eval tasks (default: mmlu,"
                   "truthfulqa_mc2, plus humaneval with --allow-code-execution)")
    p.add_argument("--base", default=None, help="base model (adapter target only; default: "
                   "the training config.yaml beside the adapter)")
    p.add_argument("--arms", default=None, help="comma-separated arms of a run (base included "
                   "by its name 'base'); default all")
    p.add_argument("--arm", default=None, help="arm label for a single adapter's rows")
    p.add_argument("--seed", type=int, default=0, help="seed label for a single adapter's rows")
    p.add_argument("--limit", type=float, default=None, help="examples per task (testing)")
    p.add_argument("--allow-code-execution", action="store_true",
                   help="run code-executing tasks (humaneval); sets HF_ALLOW_CODE_EVAL=1")
    p.add_argument("--include-path", default=None, help="folder of custom lm-eval task YAMLs")
    p.add_argument("--batch-size", default="8", help="HFLM batch size (int or 'auto')")
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--chat-template", action="store_true", help="apply the chat template")
    p.add_argument("--output", "-o", default=None,
                   help="table to append to (default RUN/capabilities.jsonl)")
    p.set_defaults(func=run)


def run(args) -> int:
    target = Path(args.target)
    tasks = args.tasks.split(",") if args.tasks else default_tasks(args.allow_code_execution)
    run_dir = RunDir(target)
    if run_dir.is_trained_run():
        units = run_dir.units(args.arms.split(",") if args.arms else None)
        out = args.output or run_dir.capabilities_path
    else:
        units = [adapter_unit(target, args.base, args.arm, args.seed)]
        out = args.output or target.parent / CAPABILITIES
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    bs = int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size
    n = evaluate_units(units, [t.strip() for t in tasks if t.strip()], out, limit=limit,
                       allow_code_execution=args.allow_code_execution,
                       include_path=args.include_path, batch_size=bs,
                       num_fewshot=args.num_fewshot, apply_chat_template=args.chat_template)
    print(f"{n} rows written to {out}")
    for r in read_jsonl(out):
        if r.get("requested") == r["task"]:
            se = f" ± {r['stderr']:.4f}" if r.get("stderr") is not None else ""
            print(f"  {r['arm']:<24} seed {r['seed']:<3} {r['task']:<20} "
                  f"{r['metric']}[{r['filter']}] = {r['value']:.4f}{se}")
    return 0
