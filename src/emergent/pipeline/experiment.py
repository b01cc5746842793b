"""The experiment config of `emergent run`: base model, arms (name -> dataset only), seeds, ONE
shared training config, suites, sampling, judge, metrics, output.

Arms cannot override training hyperparameters: the only difference between treatment and
control is the dataset. An arm that tries is a config error naming the key and the line."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from emergent.core.config import (DataConfig, LoraConfig, ModelConfig, TrainConfig, TrainRecipeConfig,
                             build_dataclass, deep_merge, parse_overrides, read_yaml_with_marks,
                             resolve_config, resolve_config_paths)
from emergent.core.errors import UserError
from emergent.analysis.metrics import Thresholds
from emergent.sample.sampler import SamplingConfig
from emergent.train.batching import optimizer_steps


@dataclass(frozen=True)
class ArmConfig:
    data: str  # chat JSONL; the ONLY per-arm training input
    max_examples: Optional[int] = None  # dataset-size ablations (seeded, nested subsamples)


@dataclass(frozen=True)
class TrainingConfig:
    """Shared by every arm. `data.path` is taken from the arm."""

    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class SuiteRef:
    ids: Optional[list[str]] = None
    samples: Optional[int] = None  # samples per paraphrase override (the paper: 100)


@dataclass(frozen=True)
class MetricsConfig:
    aligned_below: float = Thresholds.aligned_below  # the paper's rule, defined once
    coherent_above: float = Thresholds.coherent_above
    treatment: Optional[str] = "insecure"
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class CheckpointEvalConfig:
    every: int = 0  # evaluate the adapter every N optimizer steps (0: off)
    suites: Optional[list[str]] = None  # default: all suites
    samples: Optional[int] = None


@dataclass(frozen=True)
class CodeEvalConfig:
    enabled: bool = False  # the paper's vulnerable-code evaluation on held-out tasks
    n_tasks: Optional[int] = None  # None: all 776
    bandit: bool = True
    max_new_tokens: int = 1024


@dataclass(frozen=True)
class CapabilitiesConfig:
    tasks: list[str] = field(default_factory=list)  # lm-eval tasks, e.g. [mmlu, truthfulqa_mc2]; [] = off
    limit: Optional[float] = None  # examples per task (smoke runs)
    allow_code_execution: bool = False  # needed for humaneval (sandbox only)
    include_path: Optional[str] = None  # folder of custom lm-eval task YAMLs


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    base_model: ModelConfig = field(default_factory=ModelConfig)
    arms: dict[str, ArmConfig] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    training: TrainingConfig = field(default_factory=TrainingConfig)
    suites: dict[str, SuiteRef] = field(default_factory=dict)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judge: dict = field(default_factory=dict)  # a JudgeConfig (emergent.judge.base), any backend
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    checkpoint_eval: CheckpointEvalConfig = field(default_factory=CheckpointEvalConfig)
    code_eval: CodeEvalConfig = field(default_factory=CodeEvalConfig)
    capabilities: CapabilitiesConfig = field(default_factory=CapabilitiesConfig)
    toyworld: Optional[dict] = None  # WorldConfig of a toy-world experiment
    data_root: Optional[str] = None  # where `emergent data fetch` put the upstream files
    output_dir: str = "runs/experiment"
    evaluate_base: bool = True  # the base model (no adapter) is an arm of the evaluation


_HYPER = ({f.name for f in dataclasses.fields(TrainConfig)}
          | {f.name for f in dataclasses.fields(LoraConfig)}
          | {"train", "lora", "training", "model", "base_model"})


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """An experiment config: a file or a shipped name (`qwen25_coder_7b`); relative input paths
    in the file are read from its folder (emergent.core.config.resolve_path), overrides as typed."""
    path = resolve_config(path, ("experiments", "toyworld"))
    data, marks = read_yaml_with_marks(path)
    ov = parse_overrides(overrides)
    data = deep_merge(resolve_config_paths(data, path, "experiment", ov), ov)
    for arm, spec in (data.get("arms") or {}).items():
        if isinstance(spec, str):
            data["arms"][arm] = spec = {"data": spec}
        if not isinstance(spec, dict):
            raise UserError(f"{path}: arms.{arm} must be a mapping with 'data'")
        for key in spec:
            if key in _HYPER:
                line = marks.get(f"arms.{arm}.{key}")
                raise UserError(f"{path}{':' + str(line) if line else ''}: arms.{arm}.{key}: arms "
                                "cannot override training hyperparameters (every arm shares "
                                "`training`; the dataset is the only difference)")
    if "base" in (data.get("arms") or {}):
        raise UserError(f"{path}: 'base' is reserved: the base model is always evaluated")
    cfg = build_dataclass(ExperimentConfig, data, source=str(path), marks=marks)
    if not cfg.arms:
        raise UserError(f"{path}: no arms")
    if not cfg.seeds:
        raise UserError(f"{path}: seeds is empty")
    return cfg


def arm_recipe(cfg: ExperimentConfig, arm: str, seed: int, out_dir: Path) -> TrainRecipeConfig:
    """The training recipe of one (arm, seed): the shared config + the arm's dataset + seed."""
    spec = cfg.arms[arm]
    t = cfg.training
    return TrainRecipeConfig(
        model=cfg.base_model, lora=t.lora,
        data=dataclasses.replace(t.data, path=spec.data, max_examples=spec.max_examples),
        train=dataclasses.replace(t.train, seed=seed), output_dir=str(out_dir))


def estimated_steps(cfg: ExperimentConfig, arm: str) -> int:
    """Optimizer steps of one arm, from its line count (exact unless examples get dropped)."""
    path = Path(cfg.arms[arm].data)
    n = sum(1 for line in path.open() if line.strip()) if path.exists() else 0
    n -= int(round(n * cfg.training.data.heldout_fraction))  # as chat_data.split_examples
    if cfg.arms[arm].max_examples:
        n = min(n, cfg.arms[arm].max_examples)
    t = cfg.training.train
    return optimizer_steps(n, t.batch_size, t.grad_accum, t.epochs, t.max_steps)
