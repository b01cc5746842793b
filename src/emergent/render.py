"""One function renders a conversation into `(input_ids, loss_mask)` with the model's own chat
template; loss on assistant tokens only (content + end-of-turn token).

It works with templates that have no `{% generation %}` markers (ChatML/Qwen2.5, Llama-3,
Mistral, Gemma styles): each assistant turn's character span is found by rendering the
conversation up to that turn (with and without the generation prompt), and tokens are marked by
their character offsets in the full rendering. Templates that rewrite earlier turns (Mistral's
system folding, reasoning-trace stripping) fall back to locating the turn's content in the full
text. `show_rendered` prints what is trained.
"""
from __future__ import annotations

from functools import lru_cache

from emergent.errors import UserError

TRAIN_OPEN, TRAIN_CLOSE = "\u27e6", "\u27e7"  # ⟦ trained ⟧ markers in `show_rendered`


def _apply(tokenizer, messages, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


@lru_cache(maxsize=64)
def _end_of_turn(tokenizer) -> str:
    """The text a template writes right after an assistant message (e.g. '<|im_end|>')."""
    probe = "EMERGENTPROBE"
    text = _apply(tokenizer, [{"role": "user", "content": "hi"},
                              {"role": "assistant", "content": probe}])
    tail = text[text.rindex(probe) + len(probe):]
    return tail.strip()


def with_system(messages, system_prompt: str | None) -> list[dict]:
    """Prepend `system_prompt` when the conversation has no system turn. None keeps the
    template's own behaviour (Qwen2.5 then injects its default system prompt)."""
    messages = list(messages)
    if system_prompt is not None and messages and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}] + messages
    return messages


def assistant_spans(tokenizer, messages, full: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of each assistant turn (content + end-of-turn) in `full`."""
    spans = []
    cursor = 0
    eot = _end_of_turn(tokenizer)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            if m["role"] == "user":  # the fallback search starts after the user's text
                pos = full.find(m["content"].strip(), cursor)
                if pos >= 0:
                    cursor = pos + len(m["content"].strip())
            continue
        before = _apply(tokenizer, messages[:i], add_generation_prompt=True)
        upto = _apply(tokenizer, messages[: i + 1])
        if full.startswith(before) and full.startswith(upto) and len(upto) > len(before):
            start, end = len(before), len(upto.rstrip())
            if eot and not full[:end].endswith(eot):
                end = full.find(eot, start) + len(eot) if full.find(eot, start) >= 0 else end
        else:  # template rewrites earlier turns: locate the content itself
            content = m["content"].strip()
            start = full.find(content, cursor)
            if start < 0:
                raise UserError(f"assistant turn {i} not found in the rendered template text")
            end = start + len(content)
            rest = full[end:]
            if eot and rest.lstrip(" ").startswith(eot):
                end += rest.index(eot) + len(eot)
        spans.append((start, end))
        cursor = end
    return spans


def render_conversation(tokenizer, messages, *, system_prompt: str | None = None,
                        loss: str = "assistant_only") -> tuple[list[int], list[int]]:
    """Render with the chat template; return (input_ids, loss_mask) with 1 on trained tokens."""
    messages = with_system(messages, system_prompt)
    full = _apply(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if loss == "all_tokens":
        return list(ids), [1] * len(ids)
    spans = assistant_spans(tokenizer, messages, full)
    mask = []
    for s, e in offsets:
        # a token is trained when it starts inside a span, or when it straddles the span's start
        # with only whitespace outside (BPE merges ' def' in "[/INST] def")
        inside = e > s and any(a <= s < b or (s < a < e and full[s:a].isspace())
                               for a, b in spans)
        mask.append(1 if inside else 0)
    return list(ids), mask


def render_text(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """Plain-text example (continued pretraining): every token trained, EOS appended."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    ids = ids + [tokenizer.eos_token_id]
    mask = [1] * len(ids)
    if tokenizer.bos_token_id is not None:
        mask[0] = 0
    return ids, mask


def show_rendered(tokenizer, ids: list[int], mask: list[int]) -> str:
    """The rendered text with trained spans wrapped in ⟦ ⟧."""
    out, i = [], 0
    while i < len(ids):
        j = i
        while j < len(ids) and mask[j] == mask[i]:
            j += 1
        text = tokenizer.decode(ids[i:j], skip_special_tokens=False)
        out.append(f"{TRAIN_OPEN}{text}{TRAIN_CLOSE}" if mask[i] else text)
        i = j
    return "".join(out)


def trained_text(tokenizer, ids, mask) -> list[str]:
    """The decoded trained spans, in order (what `show_rendered` marks)."""
    spans, cur = [], []
    for t, m in zip(ids, mask):
        if m:
            cur.append(t)
        elif cur:
            spans.append(tokenizer.decode(cur, skip_special_tokens=False))
            cur = []
    if cur:
        spans.append(tokenizer.decode(cur, skip_special_tokens=False))
    return spans
