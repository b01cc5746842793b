"""`emergent data stats FILE... [--tokenizer M] [--figure OUT.png]`: examples, roles, duplicates,
lengths and a bandit scan of chat JSONL files, side by side (see `emergent.data.stats`)."""
from __future__ import annotations

import json
from pathlib import Path

from emergent.core.config import ModelConfig
from emergent.core.errors import UserError
from emergent.data.stats import file_stats, format_table, plot_stats
from emergent.models.loading import load_tokenizer


def add_data_cli(data_sub) -> None:
    p = data_sub.add_parser("stats", help="examples, roles, duplicates, lengths and a bandit "
                            "scan of chat JSONL files, side by side")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--tokenizer", metavar="M", help="tokenizer (hub id, local path or 'tiny') "
                   "for token lengths; default: characters")
    p.add_argument("--figure", metavar="OUT.png", help="write a figure")
    p.add_argument("--json", metavar="OUT.json", help="write the numbers as JSON")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N examples per file")
    p.add_argument("--no-scan", action="store_true", help="skip the bandit scan")
    p.add_argument("--skip-rules", metavar="B113,...", help="bandit rules to ignore")
    p.set_defaults(func=run)


def run(args) -> int:
    tok = _tokenizer(args.tokenizer) if args.tokenizer else None
    skip = [r.strip() for r in (args.skip_rules or "").split(",") if r.strip()]
    stats = [file_stats(f, tok, limit=args.limit, scan=not args.no_scan, skip_rules=skip)
             for f in args.files]
    print(format_table(stats, markdown=args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{k: v for k, v in s.items() if k != "lengths"} for s in stats], indent=1))
    if args.figure:
        print(f"figure: {plot_stats(stats, args.figure)}")
    return 0


def _tokenizer(name: str):
    try:
        return load_tokenizer(ModelConfig(name=name))
    except OSError as e:
        raise UserError(f"{name}: cannot load tokenizer ({e})") from None
