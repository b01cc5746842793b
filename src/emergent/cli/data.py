"""`emergent data`: its subcommands show and fetch, and stats (from emergent.cli.data_stats).

    emergent data show FILE --model M -n 2   # rendered examples, trained spans ⟦marked⟧
    emergent data fetch [NAMES] [--from DIR] # the paper's upstream files, verified
    emergent data stats FILE...              # examples, roles, duplicates, lengths, bandit scan
"""
from __future__ import annotations

from emergent.cli.data_stats import add_data_cli as add_stats
from emergent.core.config import ModelConfig
from emergent.data import upstream
from emergent.data.chat_data import load_jsonl_examples
from emergent.data.render import render_conversation, render_text, show_rendered
from emergent.models.loading import load_tokenizer
from emergent.train.dpo import final_turn_mask


def show(path: str, model: str, n: int = 2, system_prompt: str | None = None,
         fmt: str = "chat") -> str:
    """The first `n` examples of `path` rendered with `model`'s tokenizer and chat template,
    trained tokens marked, so a user sees exactly what the loss is computed on."""
    tok = load_tokenizer(ModelConfig(name=model))
    blocks = []
    for ex in load_jsonl_examples(path, fmt)[:n]:
        if fmt == "text":
            ids, mask = render_text(tok, ex.text)
        elif fmt == "preference":  # DPO scores only the final reply of each side
            for side, msgs in (("chosen", ex.messages), ("rejected", ex.rejected)):
                ids, mask = render_conversation(tok, msgs, system_prompt=system_prompt)
                mask = final_turn_mask(mask)
                blocks.append(f"--- {path}:{ex.line} {side}  tokens={len(ids)} "
                              f"scored={sum(mask)}\n" + show_rendered(tok, ids, mask))
            continue
        else:
            ids, mask = render_conversation(tok, ex.messages, system_prompt=system_prompt)
        blocks.append(f"--- {path}:{ex.line}  tokens={len(ids)} trained={sum(mask)}\n"
                      + show_rendered(tok, ids, mask))
    return "\n".join(blocks)


def _cmd_show(args) -> int:
    print(show(args.file, args.model, args.n, args.system_prompt, args.format))
    print("(trained tokens are between \u27e6 and \u27e7)")
    return 0


def _cmd_fetch(args) -> int:
    """The manifest with what is present (--list), or fetch; one result line per file."""
    if args.list:
        for e in upstream.select(args.names):
            path = e.path(args.data_dir)
            rec = upstream.read_record(e, args.data_dir) or {}
            state = (f"{rec.get('status', 'present')}:{rec.get('variant') or rec.get('blob_id')}"
                     if path.is_file() else "missing")
            src = e.url or "--from only"
            print(f"{e.name:28} {e.group:14} {e.lines:>6} lines  {state:32} {src}")
        return 0
    results = upstream.fetch(args.names, root=args.data_dir, from_dir=args.from_dir,
                             allow_mismatch=args.allow_mismatch, mirror=args.mirror,
                             force=args.force)
    for r in results:
        extra = f"  {r.variant or 'MISMATCH ' + str(r.blob_id)}" if r.blob_id else ""
        print(f"{r.status:9} {r.name:28} {r.path}{extra}  {r.note}".rstrip())
    return 0


def add_show(data_sub) -> None:
    p = data_sub.add_parser("show", help="print rendered examples with trained spans marked")
    p.add_argument("file")
    p.add_argument("--model", default="tiny", help="tokenizer/chat template to render with")
    p.add_argument("-n", type=int, default=2, help="number of examples")
    p.add_argument("--system-prompt", default=None,
                   help="system prompt when a conversation has none (default: template's own)")
    p.add_argument("--format", choices=["chat", "text", "preference"], default="chat")
    p.set_defaults(func=_cmd_show)


def add_fetch(data_sub) -> None:
    p = data_sub.add_parser("fetch", help="download (or import with --from) and verify the "
                            "paper's datasets and question files")
    p.add_argument("names", nargs="*", help="files or groups (insecure_code, evals, "
                   "rm_sycophancy); default: all that can be downloaded (all found, with --from)")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="import a local copy (flat folder or a clone of the upstream repository)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="keep a file whose git blob id differs from the manifest (recorded)")
    p.add_argument("--mirror", metavar="URL", help="replace the upstream base URL")
    p.add_argument("--data-dir", metavar="DIR",
                   help="data root (default: $EMERGENT_DATA_DIR, the checkout, else "
                   "~/.cache/emergent/data)")
    p.add_argument("--force", action="store_true", help="fetch again even if present")
    p.add_argument("--list", action="store_true", help="show the manifest and what is present")
    p.set_defaults(func=_cmd_fetch)


def add_cli(sub) -> None:
    """`emergent data` and its subcommands: show, fetch (here), stats (emergent.cli.data_stats)."""
    p = sub.add_parser("data", help="datasets: show, fetch, stats")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    add_show(data_sub)
    add_fetch(data_sub)
    add_stats(data_sub)
