"""`emergent tiny-model OUT_DIR`: build the tiny offline model (emergent.models.tiny)."""
from __future__ import annotations

import logging

from emergent.models.tiny import build_tiny_model

log = logging.getLogger(__name__)


def _run(args) -> int:
    out = build_tiny_model(args.out_dir, seed=args.seed, hidden_size=args.hidden_size,
                           num_layers=args.layers)
    log.info("tiny model written to %s", out)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("tiny-model",
                       help="build the tiny offline model (tokenizer + Qwen2) in OUT_DIR")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.set_defaults(func=_run)
