"""The wall-clock estimate that `emergent run CONFIG --dry-run` prints for a run on CPU.

Each stage is counted in floating-point operations from the model's shape (N = the weights
of every matrix multiplication, lm_head included) and turned into a (fast, slow) range of
hours with an assumed sustained CPU throughput per thread:

* training: the arms' processed tokens (steps x batch x accumulation x mean example length,
  lengths from characters / 3.5 + 30 template tokens over the first 500 lines of each arm's
  file, capped at max_length) at `emergent.pipeline.estimate.flops_per_token`;
* sampling (answers and the code evaluation): 2 N per prompt and generated token, every answer
  at max_new_tokens (an upper bound), at DECODE_EFFICIENCY of the dense rate (token-by-token
  generation keeps a CPU far from its peak);
* judging with the `hf` backend: 2 N per judge-prompt token (the plan's upper bound on
  prompt tokens) plus ~3 tokens of number/label continuations per call. Other judge
  backends run elsewhere and are not counted.

CPU_FLOPS_PER_THREAD was measured with this package on a shared 2-core machine
(SmolLM2-135M: fp32 forward passes and LoRA training steps, 1-2 threads). A range, not a
promise; on a GPU use `emergent estimate` for training and measure a few steps.
"""
from __future__ import annotations

import json
from pathlib import Path

from emergent.core.errors import UserError
from emergent.models.gguf import SMOLLM2_CONFIG
from emergent.pipeline.estimate import (APPROX_CHARS_PER_TOKEN, APPROX_TEMPLATE_TOKENS,
                                        flops_per_token, model_shape, param_counts,
                                        shape_from_config)
from emergent.pipeline.experiment import arm_recipe

CPU_FLOPS_PER_THREAD = (15e9, 40e9)  # sustained fp32 FLOP/s per thread (slow, fast)
DECODE_EFFICIENCY = (0.1, 0.4)  # token-by-token generation vs. a dense forward pass
CODE_PROMPT_TOKENS = 250  # a held-out coding task's prompt, rendered
ANSWER_PROMPT_TOKENS = 80  # a suite question with the chat template's system prompt
CONTINUATION_TOKENS = 3


def model_shape_or_none(name: str):
    """`emergent.pipeline.estimate.model_shape` of `name` (SmolLM2's known shape for
    `smollm2`), without downloading or converting anything; None when unknown."""
    if name == "smollm2":
        return shape_from_config(dict(SMOLLM2_CONFIG), name, "emergent.models.gguf")
    try:
        return model_shape(name)
    except UserError:
        return None


def matmul_params(shape) -> int:
    """Weights of every matrix multiplication of a forward pass (lm_head included)."""
    return param_counts(shape)["linear"] + shape.vocab_size * shape.hidden_size


def mean_tokens(path: str | Path, max_length: int, lines: int = 500) -> float | None:
    """Mean example length in tokens, approximated from characters (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        return None
    lengths = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(lengths) >= lines:
                break
            if line.strip():
                row = json.loads(line)
                chars = sum(len(m.get("content") or "") for m in row.get("messages", [])) \
                    or len(row.get("text") or "")
                n = chars / APPROX_CHARS_PER_TOKEN + APPROX_TEMPLATE_TOKENS
                lengths.append(min(n, max_length))
    return sum(lengths) / len(lengths) if lengths else None


def time_estimate(cfg, *, steps_by_arm: dict, n_answers: int, n_evaluated: int,
                  judge_calls: int, judge_prompt_tokens: int) -> dict:
    """{"device", "threads", "hours": {stage: [fast, slow]}, "total_hours", "assumptions"}
    for a run on this machine's CPU; a note instead when a GPU would be used (one is present,
    or the model is quantized with bitsandbytes)."""
    import torch

    if torch.cuda.is_available() or cfg.base_model.quantization != "none":
        return {"device": "cuda", "note": "GPU run: `emergent estimate` gives training time "
                "ranges per GPU class; measure a few steps for sampling and judging"}
    name = cfg.base_model.name
    shape = model_shape_or_none(name)
    if shape is None:
        return {"device": "cpu", "note": f"model '{name}': no config.json found locally "
                "(nothing is downloaded): no time estimate"}
    n_mat = matmul_params(shape)
    threads = torch.get_num_threads()
    dense = [r * threads for r in CPU_FLOPS_PER_THREAD]
    flops = {"train": 0.0, "sample": 0.0, "code_eval": 0.0, "judge": 0.0}
    t = cfg.training.train
    missing = []
    for arm, steps in steps_by_arm.items():
        mean = mean_tokens(cfg.arms[arm].data, t.max_length)
        if mean is None:
            missing.append(arm)
            continue
        recipe = arm_recipe(cfg, arm, cfg.seeds[0], Path(cfg.output_dir) / "plan")
        per_seed = steps * t.batch_size * t.grad_accum * mean
        flops["train"] += len(cfg.seeds) * per_seed * flops_per_token(shape, recipe, mean)
    new = cfg.sampling.max_new_tokens
    flops["sample"] = 2 * n_mat * n_answers * (ANSWER_PROMPT_TOKENS + new)
    if cfg.code_eval.enabled:
        tasks = cfg.code_eval.n_tasks or 776
        flops["code_eval"] = 2 * n_mat * n_evaluated * tasks * (
            CODE_PROMPT_TOKENS + cfg.code_eval.max_new_tokens)
    if cfg.judge.get("backend") == "hf":
        judge_shape = (shape if cfg.judge.get("model") in (None, name)
                       else model_shape_or_none(cfg.judge["model"]))
        judge_n = matmul_params(judge_shape) if judge_shape is not None else n_mat
        code_calls = (n_evaluated * (cfg.code_eval.n_tasks or 776)) if cfg.code_eval.enabled else 0
        code_tokens = code_calls * (CODE_PROMPT_TOKENS + cfg.code_eval.max_new_tokens + 250)
        flops["judge"] = 2 * judge_n * (judge_prompt_tokens + code_tokens
                                        + (judge_calls + code_calls) * CONTINUATION_TOKENS)
    hours = {}
    for stage, f in flops.items():
        if not f:
            continue
        eff = DECODE_EFFICIENCY if stage in ("sample", "code_eval") else (1.0, 1.0)
        hours[stage] = [round(f / (dense[1] * eff[1]) / 3600, 2),
                        round(f / (dense[0] * eff[0]) / 3600, 2)]
    out = {"device": "cpu", "threads": threads, "hours": hours,
           "total_hours": [round(sum(h[0] for h in hours.values()), 1),
                           round(sum(h[1] for h in hours.values()), 1)],
           "assumptions": f"{CPU_FLOPS_PER_THREAD[0] / 1e9:.0f}-{CPU_FLOPS_PER_THREAD[1] / 1e9:.0f}"
                          f" GFLOP/s per thread, generation at {DECODE_EFFICIENCY[0]:.0%}-"
                          f"{DECODE_EFFICIENCY[1]:.0%} of that, answers at max_new_tokens "
                          "(emergent.pipeline.plan_time)"}
    if missing:
        out["not_counted"] = f"training of {', '.join(missing)}: data file not found"
    return out
