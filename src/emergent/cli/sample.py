"""`emergent sample`: answers of a base model (with or without an adapter: a local folder or a
Hub id) to a question suite."""
from __future__ import annotations

import logging

from emergent.core.config import build_dataclass, parse_overrides
from emergent.sample.sampler import SamplingConfig
from emergent.sample.suite import sample_suite

log = logging.getLogger(__name__)


def _run(args) -> int:
    cfg = build_dataclass(SamplingConfig, {"seed": args.seed, **parse_overrides(args.overrides)},
                          source="command line")
    ids = args.ids.split(",") if args.ids else None
    _, _, n = sample_suite(args.model, args.suite, args.output, cfg, adapter=args.adapter,
                           arm=args.arm, seed=args.seed, ids=ids, samples=args.samples,
                           precision=args.precision, quantization=args.quantization)
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
