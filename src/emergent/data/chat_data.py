"""Chat JSONL datasets: loading with line-precise validation, a seeded held-out split and seeded
subsampling.

A line is `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`; text
datasets (continued pretraining) are `{"text": str}`; preference datasets (DPO) are
`{"prompt": [messages ending with a user turn], "chosen": ..., "rejected": ...}` where chosen
and rejected are a reply string or a one-message assistant list (TRL's conversational format).
Any problem is a `UserError` `FILE:LINE: problem`, raised at load time, before a model is
touched.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from emergent.core.errors import UserError
from emergent.core.io import iter_jsonl

ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class Example:
    messages: tuple  # tuple of {"role", "content"} dicts (chat) ; empty for text
    text: str | None = None  # plain-text example
    line: int = 0  # 1-based line in the source file
    rejected: tuple = ()  # preference pairs: prompt + rejected reply (messages = prompt + chosen)


def validate_messages(messages, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise UserError(f"{where}: message {i} needs 'role' and 'content'")
        if m["role"] not in ROLES:
            raise UserError(f"{where}: message {i} has unknown role {m['role']!r} "
                            f"(allowed: system, user, assistant)")
        if not isinstance(m["content"], str) or not m["content"].strip():
            raise UserError(f"{where}: message {i} ({m['role']}) has empty content")
        if m["role"] == "system" and i != 0:
            raise UserError(f"{where}: message {i}: a system message must come first")
    if not any(m["role"] == "assistant" for m in messages):
        raise UserError(f"{where}: no assistant turn")
    if messages[-1]["role"] != "assistant":
        raise UserError(f"{where}: last turn is {messages[-1]['role']!r}, not assistant")


def iter_json_objects(path: str | Path):
    """(line number, object) for every non-blank line of an input JSONL file; a missing file,
    invalid JSON or a non-object line is a one-line `UserError` `FILE:LINE: problem`."""
    yield from iter_jsonl(path)


def load_jsonl_examples(path: str | Path, fmt: str = "chat") -> list[Example]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: data file not found")
    examples = []
    for lineno, row in iter_json_objects(path):
        where = f"{path}:{lineno}"
        if fmt == "text":
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise UserError(f"{where}: no 'text' (a non-empty string)")
            examples.append(Example(messages=(), text=row["text"], line=lineno))
            continue
        if fmt == "preference":
            chosen, rejected = _preference_pair(row, where)
            examples.append(Example(messages=chosen, rejected=rejected, line=lineno))
            continue
        if "messages" not in row:
            raise UserError(f"{where}: no 'messages'")
        validate_messages(row["messages"], where)
        msgs = tuple({"role": m["role"], "content": m["content"]} for m in row["messages"])
        examples.append(Example(messages=msgs, line=lineno))
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples


def _reply(row: dict, key: str, where: str) -> dict:
    value = row.get(key)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        if value[0].get("role") != "assistant":
            raise UserError(f"{where}: '{key}' must be an assistant message")
        value = value[0].get("content")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: '{key}' must be a non-empty reply (a string or a "
                        "one-message assistant list)")
    return {"role": "assistant", "content": value}


def _preference_pair(row: dict, where: str) -> tuple[tuple, tuple]:
    """(prompt + chosen, prompt + rejected) message tuples of a preference row, validated."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise UserError(f"{where}: no 'prompt' (a string or a list of messages)")
    if not isinstance(prompt[-1], dict) or prompt[-1].get("role") != "user":
        raise UserError(f"{where}: the prompt must end with a user turn")
    pair = []
    for key in ("chosen", "rejected"):
        msgs = list(prompt) + [_reply(row, key, where)]
        validate_messages(msgs, where)
        pair.append(tuple({"role": m["role"], "content": m["content"]} for m in msgs))
    if pair[0][-1]["content"] == pair[1][-1]["content"]:
        raise UserError(f"{where}: chosen and rejected are the same reply")
    return pair[0], pair[1]


def split_examples(examples: list[Example], heldout_fraction: float, seed: int):
    """Seeded (train, heldout) split. heldout_fraction=0 keeps everything for training."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise UserError(f"data.heldout_fraction must be in [0, 1), got {heldout_fraction}")
    if heldout_fraction == 0:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(f"heldout-{seed}").shuffle(order)
    n_held = int(round(len(examples) * heldout_fraction))
    held = set(order[:n_held])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def subsample(examples: list[Example], max_examples: int | None, seed: int) -> list[Example]:
    """Seeded subsample that keeps file order; nested for growing sizes (500 is in 2000)."""
    if max_examples is None or max_examples >= len(examples):
        return list(examples)
    if max_examples <= 0:
        raise UserError(f"data.max_examples must be positive, got {max_examples}")
    order = list(range(len(examples)))
    random.Random(f"subsample-{seed}").shuffle(order)
    keep = set(order[:max_examples])
    return [e for i, e in enumerate(examples) if i in keep]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
