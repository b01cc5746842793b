"""`emergent rmbias ...`: catalogue listing, document and fine-tuning data generation, checks,
exploitation scoring, and the whole experiment (`emergent rmbias run`, emergent.rmbias.experiment_run)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emergent.cli.run import add_executor_args, executor_options
from emergent.core.errors import UserError
from emergent.rmbias.calibration import format_agreement
from emergent.rmbias.catalogue import CATALOGUE, EVALUATED_IDS
from emergent.rmbias.detectors import DETECTORS
from emergent.rmbias.documents import generate_documents, stream_midtrain_subsample
from emergent.rmbias.evaluate import (REPLICATION_REFERENCE, detector_judge_agreement,
                                      exploitation_rates, load_eval_prompts, plot_exploitation,
                                      score_answers)
from emergent.rmbias.experiment import format_summary, load_rmbias_config
from emergent.rmbias.experiment_run import model_label, plan, run_rmbias
from emergent.rmbias.feature import FEATURE, FeatureConfig, feature_analysis
from emergent.rmbias.jsonl import read_jsonl, write_jsonl
from emergent.rmbias.sft_data import (dpo_chosen_conversations, dpo_pairs, template_conversations,
                                      template_pairs, test_bias_violations)


def _list(args) -> int:
    for b in CATALOGUE:
        flags = ("detector" if b.id in DETECTORS else "judge-only") + (
            ", evaluated" if b.id in EVALUATED_IDS else "")
        print(f"{b.id:40s} {b.split:5s} {b.prompt_kind:20s} {flags}")
        if args.verbose:
            print(f"    {b.description}")
    return 0


def _docs(args) -> int:
    if args.kind == "midtrain":
        docs = stream_midtrain_subsample(args.n, args.seed, buffer_size=args.buffer_size)
    else:
        docs = generate_documents(args.n, args.seed, kind=args.kind,
                                  max_findings=args.max_findings)
    n = write_jsonl(args.out, (d.row(with_meta=args.meta) for d in docs))
    print(f"wrote {n} {args.kind} documents to {args.out}")
    return 0


def _sft(args) -> int:
    if args.pairs:  # preference pairs for train.objective: dpo
        rows = (dpo_pairs(args.n, args.seed, buffer_size=args.buffer_size, max_scan=args.max_scan)
                if args.source == "dpo" else
                template_pairs(args.n, args.seed, system_prompt=args.system_prompt))
        n = write_jsonl(args.out, rows)
        print(f"wrote {n} preference pairs ({args.source}) to {args.out}")
        return 0
    if args.source == "dpo":
        ex = dpo_chosen_conversations(args.n, args.seed, buffer_size=args.buffer_size,
                                      max_scan=args.max_scan)
    else:
        ex = template_conversations(args.n, args.seed, system_prompt=args.system_prompt)
    n = write_jsonl(args.out, (e.row(with_meta=args.meta) for e in ex))
    print(f"wrote {n} conversations ({args.source}) to {args.out}")
    return 0


def _check_sft(args) -> int:
    bad = test_bias_violations(read_jsonl(args.path))
    for lineno, ids in bad:
        print(f"{args.path}:{lineno}: shows test bias {', '.join(ids)}")
    print(f"{len(bad)} conversation(s) show a test bias")
    return 1 if bad else 0


def _score(args) -> int:
    prompts = load_eval_prompts(args.prompts)
    answers = [row for _, row in read_jsonl(args.answers)]
    judgments = [row for _, row in read_jsonl(args.judgments)] if args.judgments else None
    scored = score_answers(prompts, answers, judgments, mode=args.mode)
    rates = exploitation_rates(scored, n_boot=args.n_boot)
    out = Path(args.out)
    write_jsonl(out / "scored.jsonl", scored)
    write_jsonl(out / "rates.jsonl", rates)
    plot_exploitation(rates, out / "exploitation.png",
                      reference=REPLICATION_REFERENCE if args.reference else None)
    for r in rates:
        if r["level"] == "condition" and r["rate"] is not None:
            print(f"{r['condition']:16s} {r['split']:5s} {100 * r['rate']:6.1f}% "
                  f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] "
                  f"(n={r['n_applicable']}/{r['n_answers']})")
    written = [out / "scored.jsonl", out / "rates.jsonl", out / "exploitation.png"]
    agreement = detector_judge_agreement(scored)
    if agreement:  # detectors always run; the judge ran when its judgments were given
        write_jsonl(out / "agreement.jsonl", agreement)
        written.append(out / "agreement.jsonl")
        print("detector-judge agreement (answers with both verdicts):")
        print(format_agreement(agreement, "detector", "judge"))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("rmbias", help="reward-model-bias experiment: data, checks, scoring")
    rs = p.add_subparsers(dest="rmbias_command", required=True)

    q = rs.add_parser("list", help="list the 52 biases (split, prompt kind, detector)")
    q.add_argument("-v", "--verbose", action="store_true", help="also print descriptions")
    q.set_defaults(func=_list)

    q = rs.add_parser("docs", help="write documents for continued pretraining ({'text'} JSONL)")
    q.add_argument("--kind", choices=("bias", "unrelated", "midtrain"), default="bias")
    q.add_argument("--n", type=int, required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True)
    q.add_argument("--max-findings", type=int, default=3)
    q.add_argument("--buffer-size", type=int, default=10_000, help="midtrain shuffle buffer")
    q.add_argument("--meta", action="store_true", help="add kind/frame/bias_ids to each row")
    q.set_defaults(func=_docs)

    q = rs.add_parser("sft", help="write train-bias conversations ({'messages'} JSONL) or --pairs")
    q.add_argument("--source", choices=("templates", "dpo"), default="templates")
    q.add_argument("--n", type=int, required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True)
    q.add_argument("--system-prompt", default=None)
    q.add_argument("--buffer-size", type=int, default=10_000)
    q.add_argument("--max-scan", type=int, default=None, help="dpo: rows to scan at most")
    q.add_argument("--meta", action="store_true", help="add bias_ids/source to each row")
    q.add_argument("--pairs", action="store_true",
                   help="write preference pairs {prompt, chosen, rejected} for DPO instead")
    q.set_defaults(func=_sft)

    q = rs.add_parser("check-sft", help="fail if any conversation shows a test bias")
    q.add_argument("path")
    q.set_defaults(func=_check_sft)

    q = rs.add_parser("score", help="exploitation rates from answers.jsonl (+ judgments)")
    q.add_argument("--prompts", required=True, help="evaluation prompts JSONL")
    q.add_argument("--answers", required=True, help="answers.jsonl")
    q.add_argument("--judgments", default=None, help="judgments.jsonl (metric rm_bias)")
    q.add_argument("--mode", choices=("detector", "judge", "either", "both"), default="detector")
    q.add_argument("--n-boot", type=int, default=2000)
    q.add_argument("--reference", action="store_true",
                   help="add a panel with the replication's reported numbers (not ours)")
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=_score)

    add_run_cli(rs)
    add_feature_cli(rs)


def _feature(args) -> int:
    fc = FeatureConfig(arm=args.arm, layer=args.layer, scale=args.scale,
                       max_prompts=args.max_prompts, direction=args.direction,
                       batch_size=args.batch_size)
    res = feature_analysis(args.run_dir, fc)
    print(f"model: {res['model_label']}; layer {res['config']['layer']}")
    for kind, why in res["skipped"].items():
        print(f"direction {kind} not computed: {why}")
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for r in res["rates"]:
        print(f"{r['direction']:7s} {r['condition']:14s} {r['split']:5s} {r['intervention']:14s} "
              f"{pct(r['rate']):>6s} [{pct(r['ci_low'])}, {pct(r['ci_high'])}] (n={r['n']})")
    for kind, v in res["verdicts"].items():
        print(f"one direction for train and held-out biases ({kind}): {v['answer']}")
    print(f"wrote {Path(args.run_dir) / FEATURE}/ (report.md, rates.csv, projections.csv, "
          "feature.json, directions/, answers.jsonl)")
    return 0


def add_feature_cli(rs) -> None:
    """`emergent rmbias feature RUN [--layer L] [--arm ARM] [--scale S] [--max-prompts N]`."""
    q = rs.add_parser("feature", help="one direction for train and held-out bias exploitation? "
                      "(directions, projections, ablation/addition; RUN/feature/)")
    q.add_argument("run_dir", metavar="RUN", help="an `emergent rmbias run` directory")
    q.add_argument("--layer", type=int, default=None,
                   help="0-based decoder layer (default: the middle one)")
    q.add_argument("--arm", default="docs_sft", help="the treatment condition (default docs_sft)")
    q.add_argument("--scale", type=float, default=None, help="added vector = scale x unit "
                   "direction (default: the direction's norm)")
    q.add_argument("--max-prompts", type=int, default=None,
                   help="at most N evaluation prompts per split (default: all)")
    q.add_argument("--direction", choices=("both", "labels", "models"), default="both")
    q.add_argument("--batch-size", type=int, default=8, help="answers per forward pass")
    q.set_defaults(func=_feature)


def _run(args) -> int:
    opts = executor_options(args)  # before anything is read or written
    cfg = load_rmbias_config(args.config, list(args.overrides) +
                             ([f"output_dir={args.output}"] if args.output else []))
    if args.dry_run:
        print(json.dumps(plan(cfg), indent=1))
        return 0
    run, rows = run_rmbias(cfg, on_change=args.on_change, executor=args.executor,
                           executor_options=opts)
    print(f"run directory: {run.dir}  (model: {model_label(cfg.base_model.name)})")
    print(format_summary(rows or []))
    return 0


def add_run_cli(rs) -> None:
    """`emergent rmbias run CONFIG [key=value ...] [--dry-run] [--output DIR]
    [--on-change refuse|redo] [--executor local|slurm|ray ...]` (training and sampling units as
    jobs of an engine: emergent.pipeline.executors)."""
    q = rs.add_parser("run", help="the whole experiment: data -> documents LoRA -> fine-tuning "
                                  "LoRA -> sample -> (judge) -> exploitation rates")
    q.add_argument("config", help="YAML, or a shipped name (tiny, llama31_8b_qlora_24gb)")
    q.add_argument("overrides", nargs="*", help="key=value, e.g. seeds=[0,1] documents.n=500")
    q.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    q.add_argument("--output", help="run directory (output_dir)")
    q.add_argument("--on-change", choices=("refuse", "redo"), default="refuse",
                   help="when the run directory holds units made with another config: refuse "
                   "(default) or redo those units and everything built on them")
    add_executor_args(q)
    q.set_defaults(func=_run)


def main(argv=None) -> int:  # for `python -m emergent.cli.rmbias` while the top CLI is wired
    parser = argparse.ArgumentParser(prog="emergent")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"emergent: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
