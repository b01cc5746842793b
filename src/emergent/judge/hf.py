"""The `hf` judge backend: a local transformers model scoring with *exact* sequence
probabilities, so judges whose tokenizers split numbers into digits (Qwen, Llama) score right.

For a 0-100 prompt, P(k) for every integer k = 0..100 is the probability that the judge's
answer *is* the number k:

    P(k) = prod_j P(t_j | prompt, t_<j) * P(end | prompt, t_1..t_n)

where t_1..t_n is the tokenizer's canonical spelling of k ("42", and also " 42" with a leading
space; both spellings add up), and P(end) is the probability that the next token does NOT
continue the number, i.e. does not start with a digit (so "4" is not counted when the judge
goes on to "42"; "100" is ended like any other). These events are disjoint, so the numbers'
total mass is <= 1 and plays the role of the top-20 numeric mass of the OpenAI backend; the
score is the same sum(k * P(k)) / sum(P(k)), None below `min_mass`. Non-canonical spellings
("4" then "2" where the tokenizer has a "42" token) are not counted.

Labels (YES/NO, TRUE/FALSE/UNKNOWN) work the same way: spellings LABEL, label, Label, each
with and without a leading space, ended by a token that does not start with a letter or digit.

Shared computation: one forward pass over the prompt fills a KV cache; all spellings form a
trie, and only its leaves (sequences that are not a prefix of another) are run, in batches of
`batch_size`, on copies of that cache: each leaf's logits give the next-token distribution
after every one of its prefixes. For Qwen-style single-digit tokenizers that is about 90
leaves of <= 3 tokens per spelling instead of 101 full forward passes. Memory: a batch holds
`batch_size` copies of the prompt's KV cache (lower `batch_size` for long prompts / big judges).
"""
from __future__ import annotations

import copy
import inspect
import math
from typing import Optional

from emergent.core.config import ModelConfig
from emergent.judge.base import Judge, JudgeConfig
from emergent.judge.cache import JudgeCache, cache_key, default_cache_path, pending_tasks
from emergent.judge.scoring import JudgeTask, Score, score_label_mass, score_numbers
from emergent.models.loading import load_for_inference

ANCHOR = "\n"
AUDIT_TOP = 20


class HFJudge(Judge):
    """The `hf` backend (see the module docstring). It sends no API calls: `calls_made` is
    None, `forward_calls` counts the model's forward passes."""

    loads_model = True

    def __init__(self, model_name: str, *, precision: str = "bf16", quantization: str = "none",
                 trust_remote_code: bool = False, batch_size: int = 32, min_mass: float = 0.25,
                 spellings: tuple = ("", " "), cache_path: Optional[str] = None,
                 model=None, tokenizer=None):
        self.model_name = model_name
        self.precision, self.quantization = precision, quantization
        self.trust_remote_code = trust_remote_code
        self.batch_size = max(1, int(batch_size))
        self.min_mass = float(min_mass)
        self.spellings = tuple(spellings)
        self.cache = JudgeCache(cache_path)  # None: in memory only
        self.model, self.tok = model, tokenizer
        self.forward_calls = 0
        self._masks: dict[str, object] = {}
        self._seq_memo: dict = {}
        self.judge_id = f"hf:{model_name}"

    @classmethod
    def from_config(cls, cfg: JudgeConfig, **context) -> "HFJudge":
        cache_path = (cfg.cache_path or default_cache_path("hf", cfg.model)) if cfg.cache else None
        return cls(cfg.model, precision=cfg.precision, quantization=cfg.quantization,
                   trust_remote_code=cfg.trust_remote_code, batch_size=cfg.batch_size,
                   min_mass=cfg.min_mass, spellings=tuple(cfg.spellings), cache_path=cache_path)

    # ------------------------------------------------------------------ loading
    def load(self):
        if getattr(self, "_cache_kw", None):
            return self
        if self.model is None:
            self.model, self.tok = load_for_inference(ModelConfig(
                name=self.model_name, precision=self.precision, quantization=self.quantization,
                trust_remote_code=self.trust_remote_code))
        self.model.eval()
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        return self

    def _forward(self, **kw):
        self.forward_calls += 1
        return self.model(**kw)

    # ------------------------------------------------------------------ tokenization
    def prompt_ids(self, prompt: str) -> list[int]:
        """The judge prompt as one user turn, rendered with the chat template (if any)."""
        tok = self.tok
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        else:
            text = prompt + "\n"
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def encode_continuation(self, text: str) -> tuple:
        """Token ids the judge would emit for `text` right after a line break."""
        tok = self.tok
        a = tok(ANCHOR, add_special_tokens=False)["input_ids"]
        b = tok(ANCHOR + text, add_special_tokens=False)["input_ids"]
        if len(b) > len(a) and list(b[:len(a)]) == list(a):
            return tuple(b[len(a):])
        return tuple(tok(text, add_special_tokens=False)["input_ids"])

    def number_sequences(self) -> dict[int, list[tuple]]:
        if "numbers" not in self._seq_memo:
            self._seq_memo["numbers"] = {
                k: _unique([self.encode_continuation(sp + str(k)) for sp in self.spellings])
                for k in range(101)}
        return self._seq_memo["numbers"]

    def label_sequences(self, labels) -> dict[str, list[tuple]]:
        key = ("labels", tuple(labels))
        if key not in self._seq_memo:
            out = {}
            for lab in labels:
                variants = _unique([lab, lab.upper(), lab.lower(), lab.capitalize()])
                out[lab] = _unique([self.encode_continuation(sp + v)
                                    for v in variants for sp in self.spellings])
            self._seq_memo[key] = out
        return self._seq_memo[key]

    def continuation_mask(self, what: str):
        """Bool tensor over the vocabulary: True where a token would continue the answer
        (starts with a digit for numbers; with a letter or digit for labels)."""
        if what not in self._masks:
            import torch

            vocab = self.model.get_output_embeddings().weight.shape[0]
            mask = torch.zeros(vocab, dtype=torch.bool)
            raw = self.tok.convert_ids_to_tokens(list(range(min(vocab, len(self.tok)))))
            for i, t in enumerate(raw):
                if not t or t[0] in ("Ġ", "▁", " ", "Ċ"):
                    continue
                s = self.tok.convert_tokens_to_string([t])
                c = s[:1]
                if c and (c.isdigit() if what == "numbers" else c.isalnum()):
                    mask[i] = True
            self._masks[what] = mask.to(self.model.device)
        return self._masks[what]

    # ------------------------------------------------------------------ the trie computation
    def sequence_probs(self, prompt: str, seqs: list[tuple], what: str):
        """P(seq then end) for each sequence, sharing one prompt forward and batched leaves.
        Returns (probs list, audit top tokens of the first position)."""
        import torch

        self.load()
        device = self.model.device
        p_ids = self.prompt_ids(prompt)
        plen = len(p_ids)
        cont = self.continuation_mask(what)
        with torch.inference_mode():
            out = self._forward(input_ids=torch.tensor([p_ids], device=device), use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            logp0 = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            top = _audit_top(self.tok, logp0)
            # next-token log-distributions after every non-empty prefix we need
            prefixes = {s[:j] for s in seqs for j in range(1, len(s) + 1)}
            parents = {p[:-1] for p in prefixes}
            leaves = sorted(prefixes - parents)  # every needed prefix is a prefix of a leaf
            after: dict[tuple, torch.Tensor] = {}
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
            for start in range(0, len(leaves), self.batch_size):
                chunk = leaves[start:start + self.batch_size]
                width = max(len(x) for x in chunk)
                ids = torch.tensor([list(x) + [pad] * (width - len(x)) for x in chunk],
                                   device=device)
                kv = copy.deepcopy(cache)
                kv.batch_repeat_interleave(len(chunk))
                pos = torch.arange(plen, plen + width, device=device).expand(len(chunk), width)
                res = self._forward(input_ids=ids, position_ids=pos, use_cache=True,
                                    attention_mask=torch.ones(len(chunk), plen + width,
                                                              dtype=torch.long, device=device),
                                    **{self._cache_kw: kv})
                logp = torch.log_softmax(res.logits.float(), dim=-1)  # right padding: causal
                for r, leaf in enumerate(chunk):
                    for j in range(1, len(leaf) + 1):
                        after.setdefault(leaf[:j], logp[r, j - 1])
                del kv, res, logp
            probs = []
            for s in seqs:
                lp = logp0[s[0]]
                for j in range(1, len(s)):
                    lp = lp + after[s[:j]][s[j]]
                end = after[s].exp()[~cont].sum()
                probs.append(float(lp.exp() * end))
        return probs, top

    def number_probs(self, prompt: str) -> tuple[dict[int, float], dict]:
        self.load()
        return self._grouped_probs(prompt, self.number_sequences(), "numbers")

    def label_masses(self, prompt: str, labels) -> tuple[dict[str, float], dict]:
        self.load()
        return self._grouped_probs(prompt, self.label_sequences(labels), "labels", labels)

    def _grouped_probs(self, prompt: str, seqs_by_key: dict, kind: str, keys=None):
        """P(key) = sum of the probabilities of its token sequences (spellings)."""
        flat = [(k, s) for k, ss in seqs_by_key.items() for s in ss]
        probs, top = self.sequence_probs(prompt, [s for _, s in flat], kind)
        out = {k: 0.0 for k in (keys if keys is not None else seqs_by_key)}
        for (k, _), p in zip(flat, probs):
            out[k] += p
        return out, top

    # ------------------------------------------------------------------ judge interface
    def _key(self, t: JudgeTask) -> str:
        return cache_key("hf", self.model_name, t.kind, list(t.labels), list(self.spellings),
                         t.prompt)

    def pending(self, tasks: list[JudgeTask]) -> list[JudgeTask]:
        """Distinct tasks whose prompt is not cached yet: exactly the calls a run would make."""
        return pending_tasks(tasks, self._key, self.cache)

    def evaluate(self, tasks: list[JudgeTask], progress: bool = True) -> list[Score]:
        from tqdm.auto import tqdm

        for t in tqdm(self.pending(tasks), desc="judge (local)", unit="prompt",
                      disable=not progress):
            if t.kind == "0_100":
                nums, top = self.number_probs(t.prompt)
                value = {"numbers": {str(k): p for k, p in nums.items()}, "top": top}
            else:
                masses, top = self.label_masses(t.prompt, list(t.labels))
                value = {"labels": masses, "top": top}
            mass = sum((value.get("numbers") or value["labels"]).values())
            self.cache.put(self._key(t), value, persist=mass > 0)  # 0: no final answer
        self.cache.sync()
        out = []
        for t in tasks:
            v = self.cache.get(self._key(t))
            if t.kind == "0_100":
                out.append(score_numbers({int(k): p for k, p in v["numbers"].items()},
                                         self.min_mass, top_tokens=v["top"]))
            else:
                out.append(score_label_mass(v["labels"], list(t.labels), self.min_mass,
                                            top_tokens=v["top"]))
        return out

    def close(self) -> None:
        self.cache.close()


def _unique(items: list) -> list:
    out = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def _audit_top(tok, logp, k: int = AUDIT_TOP) -> dict[str, float]:
    import torch

    vals, idx = torch.topk(logp, min(k, logp.shape[-1]))
    top: dict[str, float] = {}
    for v, i in zip(vals.tolist(), idx.tolist()):
        s = tok.decode([i])
        top[s] = top.get(s, 0.0) + math.exp(v)
    return top
