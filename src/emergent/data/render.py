"""One function renders a conversation into `(input_ids, loss_mask)` with the model's own chat
template; loss on assistant tokens only (content + end-of-turn token).

It works with templates that have no `{% generation %}` markers (ChatML/Qwen2.5, Llama-3,
Mistral, Gemma styles): each assistant turn's character span is found by rendering the
conversation up to that turn (with and without the generation prompt), and tokens are marked by
their character offsets in the full rendering. Templates that rewrite earlier turns (Mistral's
system folding, reasoning-trace stripping) fall back to locating the turn's content in the full
text. `show_rendered` prints what is trained.

Fast path (same result): rendering every prefix costs about two `apply_chat_template` calls per
assistant turn. When the template inserts message contents verbatim, the prefix renderings are
computed instead from a *skeleton* of the conversation's role sequence — the template rendered
once with sentinel contents, kept per (tokenizer, template, roles) — by substituting the real
contents. A conversation uses the skeleton only when the substituted full rendering equals the
template's real rendering of it; any template that trims, rewrites or drops a sentinel content
(Llama-3 and Gemma styles trim), any message with other keys than role and content, and any
error falls back to rendering every prefix. `render_conversation` returns exactly what the
reference path (`assistant_spans`) gives (tests/data/test_render.py compares them).
"""
from __future__ import annotations

import re
from functools import lru_cache

from emergent.core.errors import UserError

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
    return _spans(tokenizer, messages, full,
                  lambda i: _apply(tokenizer, messages[:i], add_generation_prompt=True),
                  lambda i: _apply(tokenizer, messages[: i + 1]))


def _spans(tokenizer, messages, full: str, before_of, upto_of) -> list[tuple[int, int]]:
    """`assistant_spans` given the renderings of the prefixes: `before_of(i)` = messages[:i]
    with the generation prompt, `upto_of(i)` = messages[:i + 1]."""
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
        before = before_of(i)
        upto = upto_of(i)
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
            if eot and rest.lstrip().startswith(eot):  # the eot is the next non-blank text
                end += rest.index(eot) + len(eot)
        spans.append((start, end))
        cursor = end
    return spans


# ------------------------------------------------------------------ the fast path (same result)

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use code points around a sentinel content
# a sentinel content: padded with spaces and newlines so that a template that trims or strips
# contents is seen (the padded sentinel is then missing from its rendering)
_SENTINEL = " \n" + _OPEN + "{}" + _CLOSE + "\n "
_SLOT = re.compile(re.escape(" \n" + _OPEN) + r"(\d+)" + re.escape(_CLOSE + "\n "))


def _parse(text: str, n: int):
    """A sentinel rendering as a tuple: literal strings at even places, content indices at odd
    ones; None when a sentinel was changed or an index is out of range."""
    parts = _SLOT.split(text)
    for j, part in enumerate(parts):
        if j % 2:
            parts[j] = int(part)
            if parts[j] >= n:
                return None
        elif _OPEN in part or _CLOSE in part:
            return None
    return tuple(parts)


def _fill(parts, contents) -> str:
    return "".join(contents[p] if j % 2 else p for j, p in enumerate(parts))


@lru_cache(maxsize=256)
def _skeleton(tokenizer, template, roles: tuple):
    """(full, {i: (before, upto)}) for the role sequence `roles`, each a `_parse` result, or None
    when the template does not insert contents verbatim (or fails on this shape). `template`
    (the tokenizer's chat template) is part of the cache key only."""
    n = len(roles)
    sentinel = [{"role": r, "content": _SENTINEL.format(j)} for j, r in enumerate(roles)]
    try:
        full = _parse(_apply(tokenizer, sentinel), n)
        prefixes = {}
        for i, r in enumerate(roles):
            if r == "assistant":
                prefixes[i] = (_parse(_apply(tokenizer, sentinel[:i], True), n),
                               _parse(_apply(tokenizer, sentinel[: i + 1]), n))
    except Exception:  # the reference path raises the template's own error
        return None
    if full is None or any(p is None for pair in prefixes.values() for p in pair):
        return None
    # every content must appear in the full rendering (a dropped content could hide a change)
    if set(full[1::2]) != set(range(n)):
        return None
    return full, prefixes


def _fast_spans(tokenizer, messages, full: str):
    """`assistant_spans` from the role sequence's skeleton; None when it does not apply."""
    for m in messages:
        if (type(m) is not dict or len(m) != 2 or type(m.get("role")) is not str
                or type(m.get("content")) is not str or _OPEN in m["content"]
                or _CLOSE in m["content"]):
            return None
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return None
    sk = _skeleton(tokenizer, template, tuple(m["role"] for m in messages))
    if sk is None:
        return None
    sk_full, prefixes = sk
    contents = [m["content"] for m in messages]
    if _fill(sk_full, contents) != full:
        return None
    return _spans(tokenizer, messages, full, lambda i: _fill(prefixes[i][0], contents),
                  lambda i: _fill(prefixes[i][1], contents))


def render_conversation(tokenizer, messages, *, system_prompt: str | None = None,
                        loss: str = "assistant_only") -> tuple[list[int], list[int]]:
    """Render with the chat template; return (input_ids, loss_mask) with 1 on trained tokens."""
    return _render(tokenizer, messages, system_prompt, loss, fast=True)


def _render(tokenizer, messages, system_prompt, loss, *, fast: bool):
    messages = with_system(messages, system_prompt)
    full = _apply(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if loss == "all_tokens":
        return list(ids), [1] * len(ids)
    spans = _fast_spans(tokenizer, messages, full) if fast else None
    if spans is None:
        spans = assistant_spans(tokenizer, messages, full)  # the reference path
    mask = []
    for s, e in offsets:
        # a token is trained when it starts inside a span, or when it straddles the span's start
        # with only whitespace outside (BPE merges ' def' in "[/INST] def")
        inside = 0
        if e > s:
            for a, b in spans:
                if a <= s < b or (s < a < e and full[s:a].isspace()):
                    inside = 1
                    break
        mask.append(inside)
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
