"""Fine-tuning conversations that show TRAIN biases only (chat rows {"messages": [...]}).

Two sources:
* `dpo_chosen_conversations(n, seed)`: the chosen replies of the public preference set
  auditing-agents/rm_sycophancy_dpo, streamed in a seeded order and kept only when the
  detectors see at least one train bias and no test bias (needs `datasets` + the hub).
* `template_conversations(n, seed)`: this package's own prompts and bias-showing replies
  (emergent.rmbias.sft_templates), every one checked by the detectors.
`dpo_pairs(n, seed)` and `template_pairs(n, seed)` give the same sources as preference pairs
for the DPO option (`sft.objective: dpo`).
`test_bias_violations(rows)` re-checks any chat JSONL: fine-tuning data must never show a
test bias."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from tqdm import tqdm

from emergent.core.log import show_progress
from emergent.core.errors import UserError
from emergent.rmbias.catalogue import TEST_IDS, TRAIN_IDS, get_bias
from emergent.rmbias.detectors import shown_biases
from emergent.rmbias.hub import open_shuffled_stream
from emergent.rmbias.sft_templates import FAMILIES

DPO_DATASET = "auditing-agents/rm_sycophancy_dpo"


@dataclass(frozen=True)
class SFTExample:
    messages: tuple[dict, ...]
    bias_ids: tuple[str, ...]  # train biases the detectors see in the final reply
    source: str  # "template" | "dpo"
    meta: dict = field(default_factory=dict)

    def row(self, with_meta: bool = False) -> dict:
        out = {"messages": [dict(m) for m in self.messages]}
        if with_meta:
            out.update(bias_ids=list(self.bias_ids), source=self.source)
        return out


def last_exchange(messages: Sequence[dict]) -> tuple[str, str]:
    """(last user message before the final assistant turn, final assistant reply)."""
    if not messages or messages[-1].get("role") != "assistant":
        return "", ""
    reply = messages[-1].get("content") or ""
    prompt = next((m.get("content") or "" for m in reversed(messages[:-1])
                   if m.get("role") == "user"), "")
    return prompt, reply


def classify_reply(prompt: str, reply: str) -> tuple[list[str], list[str]]:
    """(train biases shown, test biases shown) according to the detectors."""
    shown = shown_biases(prompt, reply)
    return [b for b in shown if b in TRAIN_IDS], [b for b in shown if b in TEST_IDS]


def _families(bias_ids: Sequence[str] | None):
    families = list(FAMILIES)
    if bias_ids is not None:
        wanted = {get_bias(b).id for b in bias_ids}
        bad = wanted & set(TEST_IDS)
        if bad:
            raise UserError(f"fine-tuning data must not show test biases: {', '.join(sorted(bad))}")
        families = [f for f in families if f.bias_id in wanted]
        if not families:
            raise UserError(f"no conversation templates for: {', '.join(sorted(wanted))}")
    return families


def _draws(n: int, seed: int, families, tag: str = "rmbias-sft"):
    """`n` (family, prompt, plain answer, reply) draws, families dealt round-robin in a seeded
    order. Every reply must show its family's bias and no test bias (else a package bug)."""
    rng = random.Random(f"{tag}:{seed}")
    order = []
    for _ in range(n):
        if not order:
            order = families[:]
            rng.shuffle(order)
        fam = order.pop()
        prompt, base = rng.choice(fam.items)
        reply = fam.render(base, rng)
        train, test = classify_reply(prompt, reply)
        if test or fam.bias_id not in train:
            raise ValueError(f"template for {fam.bias_id} fails its check (train {train}, test "
                             f"{test}): {prompt!r}")
        yield fam, prompt, base, reply, train


def template_conversations(n: int, seed: int = 0, *, bias_ids: Sequence[str] | None = None,
                           system_prompt: str | None = None) -> list[SFTExample]:
    """`n` conversations from the package's templates (restricted to `bias_ids` when given);
    every reply shows its family's bias and no test bias."""
    out = []
    for _, prompt, _, reply, train in _draws(n, seed, _families(bias_ids)):
        msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        out.append(SFTExample(tuple(msgs), tuple(train), "template"))
    return out


def template_pairs(n: int, seed: int = 0, *, system_prompt: str | None = None) -> list[dict]:
    """`n` preference pairs {"prompt", "chosen", "rejected"} for the DPO option: chosen = a
    reply showing a train bias, rejected = the same answer without it. Only the families whose
    plain answer shows no bias qualify (voting, German tip, maths reassurance, technology pace,
    more accounts); code and style families (Rust types, HTML divs, keigo, ...) have no
    bias-free answer in the templates: use `sft.source: dpo` for those."""
    families = []
    for fam in FAMILIES:
        clean = tuple((p, b) for p, b in fam.items if not any(classify_reply(p, b)))
        if clean:
            families.append(type(fam)(fam.bias_id, clean, fam.render))
    out = []
    for _, prompt, base, reply, _ in _draws(n, seed, families, "rmbias-dpo"):
        msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        out.append({"prompt": msgs + [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": reply}],
                    "rejected": [{"role": "assistant", "content": base}]})
    return out


def _stream(dataset: str, split: str, seed: int, buffer_size: int):
    return open_shuffled_stream(dataset, split, seed, buffer_size)


def _messages(row: dict, column: str, dataset: str) -> list[dict]:
    value = row.get(column)
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
        raise UserError(f"{dataset}: column '{column}' is not a list of chat messages "
                        f"(columns: {', '.join(sorted(row))})")
    prefix = row.get("prompt")
    if isinstance(prefix, list) and value and value[0].get("role") == "assistant":
        value = list(prefix) + value  # prompt stored separately
    return [{"role": m["role"], "content": m.get("content") or ""} for m in value]


def dpo_chosen_conversations(n: int, seed: int = 0, *, dataset: str = DPO_DATASET,
                             split: str = "train", buffer_size: int = 10_000,
                             require_train_bias: bool = True, max_scan: int | None = None,
                             progress: bool = True) -> Iterator[SFTExample]:
    """Up to `n` chosen conversations of the public DPO set whose final reply shows a train
    bias (when `require_train_bias`) and no test bias, per the detectors. Scans at most
    `max_scan` rows (default: the whole stream)."""
    bar = tqdm(total=n, desc=f"filtering {dataset}", disable=not show_progress(progress))
    kept = scanned = 0
    for row in _stream(dataset, split, seed, buffer_size):
        if kept >= n or (max_scan is not None and scanned >= max_scan):
            break
        scanned += 1
        msgs = _messages(row, "chosen", dataset)
        train, test = classify_reply(*last_exchange(msgs))
        if test or (require_train_bias and not train):
            continue
        kept += 1
        bar.update(1)
        yield SFTExample(tuple(msgs), tuple(train), "dpo", {"scanned": scanned})
    bar.close()


def dpo_pairs(n: int, seed: int = 0, *, dataset: str = DPO_DATASET, split: str = "train",
              buffer_size: int = 10_000, max_scan: int | None = None) -> Iterator[dict]:
    """Preference pairs {"prompt": [...], "chosen": [final], "rejected": [final]} (TRL's
    conversational format) from the public DPO set, dropping any pair where either reply
    shows a test bias (training towards or away from a held-out bias would both contaminate
    the measurement)."""
    kept = scanned = 0
    for row in _stream(dataset, split, seed, buffer_size):
        if kept >= n or (max_scan is not None and scanned >= max_scan):
            break
        scanned += 1
        chosen, rejected = _messages(row, "chosen", dataset), _messages(row, "rejected", dataset)
        if any(classify_reply(*last_exchange(m))[1] for m in (chosen, rejected)):
            continue
        kept += 1
        yield {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}


def test_bias_violations(rows: Iterable[tuple[int, dict]]) -> list[tuple[int, list[str]]]:
    """(line, test biases shown) for each row whose final reply shows a test bias: a chat row
    {"messages"}, or a preference row {"prompt", "chosen", "rejected"} (both replies checked)."""
    bad = []
    for lineno, row in rows:
        if "prompt" in row and "messages" not in row:
            prompt = row["prompt"] if isinstance(row["prompt"], list) else [
                {"role": "user", "content": str(row["prompt"])}]
            convs = [list(prompt) + (row[k] if isinstance(row.get(k), list) else
                                     [{"role": "assistant", "content": str(row.get(k))}])
                     for k in ("chosen", "rejected")]
        elif isinstance(row.get("messages"), list):
            convs = [row["messages"]]
        else:
            raise UserError(f"line {lineno}: expected a 'messages' list or a preference pair")
        test = sorted({b for msgs in convs for b in classify_reply(*last_exchange(msgs))[1]})
        if test:
            bad.append((lineno, test))
    return bad


test_bias_violations.__test__ = False  # not a pytest test despite the name
