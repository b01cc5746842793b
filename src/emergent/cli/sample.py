"""`emergent sample`: answers of a base model (with or without an adapter: a local folder or a
Hub id) to a question suite."""
from __future__ import annotations

import logging
from pathlib import Path

from emergent.core.config import ModelConfig, build_dataclass, parse_overrides
from emergent.evals.suites import resolve_suite
from emergent.models.loading import load_for_inference, resolve_model_path
from emergent.sample.sampler import (SamplingConfig, arm_label, sample_questions,
                                     sample_with_vllm)

log = logging.getLogger(__name__)


def _run(args) -> int:
    cfg = build_dataclass(SamplingConfig, {"seed": args.seed, **parse_overrides(args.overrides)},
                          source="command line")
    ids = args.ids.split(",") if args.ids else None
    questions = resolve_suite(args.suite, ids=ids, samples=args.samples)
    arm = args.arm or arm_label(args.adapter)
    suite = Path(args.suite).stem if Path(args.suite).suffix else args.suite
    if cfg.backend == "vllm":
        n = sample_with_vllm(resolve_model_path(args.model), args.adapter, questions,
                             args.output, suite=suite, arm=arm, seed=args.seed, cfg=cfg)
    else:
        mcfg = ModelConfig(name=args.model, precision=args.precision,
                           quantization=args.quantization)
        model, tok = load_for_inference(mcfg, args.adapter)
        n = sample_questions(model, tok, questions, args.output, suite=suite, arm=arm,
                             seed=args.seed, model_name=args.model, adapter=args.adapter,
                             cfg=cfg)
    log.info("%d new answers written to %s", n, args.output)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("sample", help="sample free-form answers into answers.jsonl")
    p.add_argument("--model", required=True, help="base model: hub id, local path or 'tiny'")
    p.add_argument("--adapter", default=None, help="peft adapter: a local folder or a Hub id "
                   "(owner/name; omit for the base)")
    p.add_argument("--suite", required=True, help="suite name (main, preregistered, ...) or YAML")
    p.add_argument("--ids", default=None, help="comma-separated question ids")
    p.add_argument("--samples", type=int, default=None, help="samples per paraphrase override")
    p.add_argument("--arm", default=None, help="arm label for the rows (default: base/adapter dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quantization", default="none", choices=["none", "8bit", "4bit"])
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--output", "-o", default="answers.jsonl")
    p.add_argument("overrides", nargs="*", help="sampling keys: temperature=0.7 max_new_tokens=300")
    p.set_defaults(func=_run)
