"""Sampling free-form answers: one row per answer in `answers.jsonl`.

A `PromptContext` is a sampling condition: turns placed before the question (in-context
examples) and a prefix on its user turn (a backdoor trigger). Its `name` is part of every answer
id and written to the rows' `condition` column (with its own `columns`), so the same question
asked under two conditions gives two answers; the plain question is `PLAIN` (no column).

All samples of one prompt are generated in one batch (left padding, KV cache), seeded per
(seed, question, paraphrase, chunk) so a resumed run draws exactly what an uninterrupted one
would. Rerunning skips answers already written. The questions' `system` field is honoured.
`backend: vllm` uses vLLM (LoRA through LoRARequest), imported lazily.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Optional

from emergent.models.loading import is_hub_adapter
from emergent.core.log import show_progress
from emergent.core.config import at_least, within
from emergent.core.errors import UserError
from emergent.sample.interventions import AblateConfig, SteerConfig, describe, intervention
from emergent.core.io import append_jsonl, read_jsonl


# the LoRA ranks vLLM's engine accepts for max_lora_rank (vllm.config.LoRAConfig)
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def _lora_rank_problem(rank) -> Optional[str]:
    if rank is None or rank in VLLM_LORA_RANKS:
        return None
    return f"must be one of {', '.join(map(str, VLLM_LORA_RANKS))} (vLLM's sizes) or null"


@dataclass(frozen=True)
class VLLMConfig:
    """`sampling.vllm`: the vLLM engine's settings (backend: vllm), passed to `vllm.LLM()`.
    They change how answers are computed, not which are drawn, so they are not part of a
    sampling unit's fingerprint."""

    tensor_parallel_size: int = field(default=1, metadata=at_least(1))  # GPUs one model spans
    gpu_memory_utilization: float = field(default=0.9, metadata=within(0, 1, low_open=True))
    max_model_len: Optional[int] = field(default=None, metadata=at_least(1))  # None: the model's
    # None: the adapter's rank (adapter_config.json `r`) rounded up to a size vLLM accepts
    max_lora_rank: Optional[int] = field(default=None, metadata={"check": _lora_rank_problem})

    def __post_init__(self):
        if self.tensor_parallel_size < 1 or not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("vllm: tensor_parallel_size must be >= 1 and "
                             "gpu_memory_utilization in (0, 1]")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("vllm: max_model_len must be >= 1")
        problem = _lora_rank_problem(self.max_lora_rank)
        if problem:
            raise ValueError(f"vllm: max_lora_rank {problem}")


@dataclass(frozen=True)
class SamplingConfig:
    # the paper: 1.0 / 1.0 / 600; temperature 0 = greedy
    temperature: float = field(default=1.0, metadata=at_least(0))
    top_p: float = field(default=1.0, metadata=within(0, 1, low_open=True))
    max_new_tokens: int = field(default=600, metadata=at_least(1))
    # sequences generated at once; all samples of a prompt when it fits
    batch_size: int = field(default=100, metadata=at_least(1))
    seed: int = 0
    backend: Literal["hf", "vllm"] = "hf"
    system_prompt: Optional[str] = None  # used only for questions without their own `system`
    steer: Optional[SteerConfig] = None  # {direction, layer, scale}: see emergent.sample.interventions
    ablate: Optional[AblateConfig] = None  # {direction, layers}: project it out everywhere
    # sample different prompts in one batch too (seeded by the batch's first answer; batches are
    # planned in a fixed order and written whole, so a resumed run still draws the same answers)
    pack_prompts: bool = False
    vllm: VLLMConfig = field(default_factory=VLLMConfig)  # backend: vllm's engine settings


@dataclass(frozen=True)
class PromptContext:
    """What a sampling condition puts around a question (see the module doc)."""

    name: str = ""  # "" = the plain question; else e.g. "triggered", "icl_insecure_k16"
    messages: tuple = ()  # chat turns before the question ({"role", "content"} dicts)
    user_prefix: str = ""  # put before the question's text in its user turn
    columns: Mapping = field(default_factory=dict)  # extra row columns, e.g. {"trigger": "..."}

    def row_columns(self) -> dict:
        return {"condition": self.name, **self.columns} if self.name else {}


PLAIN = PromptContext()


def arm_label(adapter: str | Path | None) -> str:
    """The default arm of the rows: `base` without an adapter, the Hub id's name for a Hub
    adapter (owner/NAME), else the adapter folder's parent (runs/x/ARM/adapter)."""
    if not adapter:
        return "base"
    if is_hub_adapter(adapter):
        return str(adapter).split("/")[1]
    return Path(adapter).parent.name


def answer_id(arm: str, seed: int, suite: str, qid: str, p: int, s: int,
              condition: str = "") -> str:
    key = f"{arm}|{seed}|{suite}|{qid}|{p}|{s}" + (f"|{condition}" if condition else "")
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def prompt_messages(question, paraphrase: str, default_system: str | None = None,
                    context: PromptContext = PLAIN) -> list[dict]:
    """The chat of one question: its system prompt (else the default), the context's turns,
    then the user turn (the context's prefix + the paraphrase)."""
    system = question.system if question.system is not None else default_system
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + list(context.messages) + [{"role": "user",
                                             "content": context.user_prefix + paraphrase}]


def _system_of(msgs: list[dict]):
    return msgs[0]["content"] if msgs[0]["role"] == "system" else None


def _seed_for(seed: int, qid: str, p: int, start: int) -> int:
    return int(hashlib.sha256(f"{seed}|{qid}|{p}|{start}".encode()).hexdigest()[:8], 16)


def generate_batch(model, tok, prompts: list[str], cfg: SamplingConfig, seed: int):
    """One generate call over `prompts` (left-padded): returns [(text, finish_reason, n_tokens)].
    Sampling passes n copies of one prompt; greedy decoding packs different prompts."""
    import torch

    tok.padding_side = "left"
    enc = tok(list(prompts), return_tensors="pt", add_special_tokens=False, padding=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    torch.manual_seed(seed)
    greedy = cfg.temperature == 0
    with torch.no_grad():
        out = model.generate(**enc, do_sample=not greedy, max_new_tokens=cfg.max_new_tokens,
                             temperature=None if greedy else cfg.temperature,
                             top_p=None if greedy else cfg.top_p, top_k=None,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             use_cache=True)
    gen = out[:, enc["input_ids"].shape[1]:].tolist()
    rows = []
    for seq in gen:
        if tok.eos_token_id in seq:
            seq = seq[: seq.index(tok.eos_token_id) + 1]
            reason = "stop"
        else:
            while seq and seq[-1] == tok.pad_token_id:
                seq = seq[:-1]
            reason = "length"
        rows.append((tok.decode(seq, skip_special_tokens=True), reason, len(seq)))
    return rows


def plan_prompts(questions, suite: str, arm: str, seed: int, done: set[str],
                 condition: str = ""):
    """[(question, p_idx, paraphrase, [sample indices still missing])]"""
    plan = []
    for q in questions:
        for p, text in enumerate(q.paraphrases):
            missing = [s for s in range(q.samples_per_paraphrase)
                       if answer_id(arm, seed, suite, q.id, p, s, condition) not in done]
            if missing:
                plan.append((q, p, text, missing))
    return plan


def _redrawn(missing: list[int], n: int, cfg: SamplingConfig) -> list[int]:
    """The sample indices to generate for a paraphrase whose `missing` samples are not written:
    with per-prompt batches (seeded by their first sample, at multiples of the batch size), every
    sample of each batch holding a missing one, so a batch torn by a kill is drawn again exactly
    as before (only its missing rows are written); otherwise just the missing ones."""
    if cfg.temperature == 0 or cfg.pack_prompts:
        return list(missing)
    bs = cfg.batch_size
    starts = sorted({s - s % bs for s in missing})
    return [s for start in starts for s in range(start, min(start + bs, n))]


def _batches(jobs: list, cfg: SamplingConfig):
    """Sampling: each batch holds samples of ONE prompt, seeded by (prompt, first sample), so a
    resumed run draws what an uninterrupted one would. Greedy decoding (temperature 0) is
    deterministic, so different prompts share a batch (the vulnerable-code evaluation)."""
    if cfg.temperature == 0 or cfg.pack_prompts:
        for i in range(0, len(jobs), cfg.batch_size):
            yield jobs[i:i + cfg.batch_size]
        return
    i = 0
    while i < len(jobs):
        j = i
        while j < len(jobs) and j - i < cfg.batch_size and jobs[j][:2] == jobs[i][:2]:
            j += 1
        yield jobs[i:j]
        i = j


def sample_questions(model, tok, questions, out_path: str | Path, *, suite: str, arm: str,
                     seed: int, model_name: str, adapter: str | None, cfg: SamplingConfig,
                     progress: bool = True, step: int | None = None,
                     fingerprint: str | None = None, context: PromptContext = PLAIN) -> int:
    """Sample every missing answer of `questions` into `out_path`; returns rows written.
    `step`: the training step of a checkpoint adapter (checkpoint evaluation). `fingerprint`:
    the sampling unit's (emergent.pipeline.stages), written to every row; an answer written
    under another fingerprint does not count as done. `context`: the sampling condition
    (PromptContext)."""
    id_arm = arm if step is None else f"{arm}@step{step}"
    cond = context.name
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    done = _done_ids(out_path, fingerprint)
    plan = plan_prompts(questions, suite, id_arm, seed, done, cond)
    total = sum(len(m) for *_, m in plan)
    where = f"{suite}/{cond}" if cond else suite
    bar = tqdm(total=total, desc=f"sample {arm}/s{seed}/{where}", unit="ans", disable=not show_progress(progress))
    written = 0
    hooks, tag = intervention(model, cfg.steer, cfg.ablate), describe(cfg.steer, cfg.ablate)
    # jobs: (question, paraphrase index, text, messages, prompt, sample index)
    jobs = []
    for q, p, text, missing in plan:
        msgs = prompt_messages(q, text, cfg.system_prompt, context)
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        jobs += [(q, p, text, msgs, prompt, s)
                 for s in _redrawn(missing, q.samples_per_paraphrase, cfg)]
    for batch in _batches(jobs, cfg):
        q0, p0, s0 = batch[0][0], batch[0][1], batch[0][5]
        t0 = time.time()
        with hooks:
            outs = generate_batch(model, tok, [j[4] for j in batch], cfg, _seed_for(seed, q0.id, p0, s0))
        rows = [{"answer_id": answer_id(id_arm, seed, suite, q.id, p, s, cond), "suite": suite,
                 **context.row_columns(),
                 "question_id": q.id, "paraphrase_index": p, "sample_index": s,
                 "question": text, "system": _system_of(msgs),
                 "model": model_name, "adapter": adapter, "arm": arm, "seed": seed,
                 "answer": a, "finish_reason": r, "n_tokens": n, "prompt": prompt,
                 "temperature": cfg.temperature, "top_p": cfg.top_p,
                 "seconds": round((time.time() - t0) / len(batch), 4),
                 **({"step": step} if step is not None else {})}
                for (q, p, text, msgs, prompt, s), (a, r, n) in zip(batch, outs)
                if answer_id(id_arm, seed, suite, q.id, p, s, cond) not in done]
        for row in rows if tag else []:
            row["intervention"] = tag
        for row in rows if fingerprint is not None else []:
            row["fingerprint"] = fingerprint
        append_jsonl(out_path, rows)
        written += len(rows)
        bar.update(len(rows))
    bar.close()
    return written


def _done_ids(out_path: Path, fingerprint: str | None) -> set[str]:
    """Answer ids already written (under `fingerprint` when given; rows without one, written
    before fingerprints were recorded, count)."""
    return {r["answer_id"] for r in read_jsonl(out_path)
            if fingerprint is None or r.get("fingerprint") in (None, fingerprint)}


def _adapter_rank(adapter: str) -> Optional[int]:
    """The LoRA rank `r` of a local adapter folder's adapter_config.json, or None."""
    path = Path(adapter) / "adapter_config.json"
    try:
        r = json.loads(path.read_text(encoding="utf-8")).get("r")
    except (OSError, ValueError, AttributeError):
        return None
    return r if isinstance(r, int) and not isinstance(r, bool) and r > 0 else None


def vllm_engine_kwargs(cfg: SamplingConfig, adapter: str | None, seed: int) -> dict:
    """The keyword arguments of `vllm.LLM()` for `cfg.vllm` and the adapter (if any)."""
    v = cfg.vllm
    kw = {"tensor_parallel_size": v.tensor_parallel_size,
          "gpu_memory_utilization": v.gpu_memory_utilization, "seed": seed,
          "enable_lora": adapter is not None}
    if v.max_model_len is not None:
        kw["max_model_len"] = v.max_model_len
    if adapter is not None:
        r = _adapter_rank(adapter)  # None: a hub adapter, or no config to read
        rank = v.max_lora_rank
        if rank is None:  # the smallest size vLLM accepts that holds the adapter
            rank = 64 if r is None else next((k for k in VLLM_LORA_RANKS if k >= r), None)
        if rank is None or (r is not None and r > rank):
            raise UserError(f"sampling.vllm.max_lora_rank: the adapter {adapter} has rank {r}, "
                            f"above {rank or max(VLLM_LORA_RANKS)} (vLLM's limit)")
        kw.update(max_lora_rank=rank, max_loras=1)
    return kw


def sample_with_vllm(model_path: str, adapter: str | None, questions, out_path, *, suite, arm,
                     seed, cfg: SamplingConfig, fingerprint: str | None = None,
                     context: PromptContext = PLAIN) -> int:
    """The same rows through vLLM: one `LLM` per call with `cfg.vllm`'s engine settings
    (`vllm_engine_kwargs`: tensor parallel, memory, context length, LoRA rank) and the
    adapter as one `LoRARequest` on every prompt."""
    if cfg.steer is not None or cfg.ablate is not None:
        raise UserError("sampling.steer / sampling.ablate need backend: hf (hooks on the model)")
    engine = vllm_engine_kwargs(cfg, adapter, seed)  # a bad rank refused before any import
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise UserError("sampling.backend 'vllm' needs vLLM: pip install "
                        "'emergent-misalignment[vllm]' (CUDA only), or use backend: hf") from None
    out_path = Path(out_path)
    done = _done_ids(out_path, fingerprint)
    plan = plan_prompts(questions, suite, arm, seed, done, context.name)
    llm = LLM(model=model_path, **engine)
    tok = llm.get_tokenizer()
    lora = LoRARequest(arm, 1, adapter) if adapter else None
    prompts, keys = [], []
    for q, p, text, missing in plan:
        msgs = prompt_messages(q, text, cfg.system_prompt, context)
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        for s in missing:
            prompts.append(prompt)
            keys.append((q, p, text, s, msgs, prompt))
    params = [SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                             max_tokens=cfg.max_new_tokens,
                             seed=_seed_for(seed, k[0].id, k[1], k[3])) for k in keys]
    outs = llm.generate(prompts, params, lora_request=lora)
    rows = []
    for (q, p, text, s, msgs, prompt), o in zip(keys, outs):
        c = o.outputs[0]
        rows.append({"answer_id": answer_id(arm, seed, suite, q.id, p, s, context.name),
                     "suite": suite, **context.row_columns(),
                     "question_id": q.id, "paraphrase_index": p, "sample_index": s,
                     "question": text, "system": _system_of(msgs),
                     "model": model_path, "adapter": adapter, "arm": arm, "seed": seed,
                     "answer": c.text, "finish_reason": "stop" if c.finish_reason == "stop" else "length",
                     "n_tokens": len(c.token_ids), "prompt": prompt,
                     "temperature": cfg.temperature, "top_p": cfg.top_p,
                     **({"fingerprint": fingerprint} if fingerprint is not None else {})})
    append_jsonl(out_path, rows)
    return len(rows)
