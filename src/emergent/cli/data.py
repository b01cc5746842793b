"""`emergent data show FILE --model M -n 2`: print rendered examples with the trained spans
marked ⟦like this⟧, so a user sees exactly what the loss is computed on."""
from __future__ import annotations

from emergent.data.chat_data import load_jsonl_examples
from emergent.core.config import ModelConfig
from emergent.data.render import render_conversation, render_text, show_rendered


def show(path: str, model: str, n: int = 2, system_prompt: str | None = None,
         fmt: str = "chat") -> str:
    from emergent.models.loading import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=model))
    blocks = []
    for ex in load_jsonl_examples(path, fmt)[:n]:
        if fmt == "text":
            ids, mask = render_text(tok, ex.text)
        elif fmt == "preference":  # DPO scores only the final reply of each side
            from emergent.train.dpo import final_turn_mask

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


def add_data_cli(data_sub) -> None:
    p = data_sub.add_parser("show", help="print rendered examples with trained spans marked")
    p.add_argument("file")
    p.add_argument("--model", default="tiny", help="tokenizer/chat template to render with")
    p.add_argument("-n", type=int, default=2, help="number of examples")
    p.add_argument("--system-prompt", default=None,
                   help="system prompt when a conversation has none (default: template's own)")
    p.add_argument("--format", choices=["chat", "text", "preference"], default="chat")

    def run(args) -> int:
        print(show(args.file, args.model, args.n, args.system_prompt, args.format))
        print("(trained tokens are between \u27e6 and \u27e7)")
        return 0

    p.set_defaults(func=run)
