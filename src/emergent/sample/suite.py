"""Sampling one question suite from a model (with or without an adapter) into an answers table:
what `emergent sample` and `emergent.sample_answers` both do."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from emergent.core.config import ModelConfig
from emergent.evals.suites import resolve_suite
from emergent.models.loading import load_for_inference, resolve_model_path
from emergent.sample.sampler import SamplingConfig, arm_label, sample_questions, sample_with_vllm


def suite_label(suite: str) -> str:
    """The `suite` column of a suite's rows: a file's stem, else the suite's name."""
    return Path(suite).stem if Path(suite).suffix else suite


def sample_suite(model: str, suite: str, output: str | Path, cfg: SamplingConfig, *,
                 adapter: str | Path | None = None, arm: Optional[str] = None, seed: int = 0,
                 ids: Optional[Sequence[str]] = None, samples: Optional[int] = None,
                 precision: str = "bf16", quantization: str = "none",
                 progress: bool = True) -> tuple[str, str, int]:
    """Sample every missing answer of `suite` (a name or a suite file) from `model` (hub id,
    local path or "tiny") with `adapter` into `output`, with the sampling backend of `cfg`.
    Returns (suite label, arm label, new rows written); the arm defaults to `arm_label`."""
    questions = resolve_suite(suite, ids=list(ids) if ids else None, samples=samples)
    arm = arm or arm_label(adapter)
    label = suite_label(suite)
    adapter = str(adapter) if adapter else None
    if cfg.backend == "vllm":
        n = sample_with_vllm(resolve_model_path(model), adapter, questions, output, suite=label,
                             arm=arm, seed=seed, cfg=cfg)
    else:
        mcfg = ModelConfig(name=model, precision=precision, quantization=quantization)
        llm, tok = load_for_inference(mcfg, adapter)
        n = sample_questions(llm, tok, questions, output, suite=label, arm=arm, seed=seed,
                             model_name=model, adapter=adapter, cfg=cfg, progress=progress)
    return label, arm, n
