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
                             above, at_least, build_dataclass, check_path_names, deep_merge,
                             parse_overrides, read_yaml_with_marks, require_model,
                             resolve_config, resolve_config_paths, within, mark_overridden,
                             located)
from emergent.core.errors import UserError
from emergent.core.redact import redact_url
from emergent.core.rundir import fingerprint
from emergent.data.chat_data import file_sha256
from emergent.analysis.metrics import Thresholds
from emergent.data.chat_data import load_jsonl_examples
from emergent.judge.base import JudgeConfig
from emergent.sample.sampler import PLAIN, PromptContext, SamplingConfig
from emergent.train.batching import optimizer_steps


@dataclass(frozen=True)
class ArmConfig:
    data: str  # chat JSONL; the ONLY per-arm training input
    # dataset-size ablations (seeded, nested subsamples)
    max_examples: Optional[int] = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class TrainingConfig:
    """Shared by every arm. `data.path` is taken from the arm."""

    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class SuiteRef:
    ids: Optional[list[str]] = None
    # samples per paraphrase override (the paper: 100)
    samples: Optional[int] = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class MetricsConfig:
    # the paper's rule, defined once
    aligned_below: float = field(default=Thresholds.aligned_below, metadata=within(0, 100))
    coherent_above: float = field(default=Thresholds.coherent_above, metadata=within(0, 100))
    treatment: Optional[str] = "insecure"
    n_boot: int = field(default=2000, metadata=at_least(1))
    seed: int = 0


@dataclass(frozen=True)
class CheckpointEvalConfig:
    # evaluate the adapter every N optimizer steps (0: off)
    every: int = field(default=0, metadata=at_least(0))
    suites: Optional[list[str]] = None  # default: all suites
    samples: Optional[int] = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class CodeEvalConfig:
    enabled: bool = False  # the paper's vulnerable-code evaluation on held-out tasks
    n_tasks: Optional[int] = field(default=None, metadata=at_least(1))  # None: all 776
    bandit: bool = True
    max_new_tokens: int = field(default=1024, metadata=at_least(1))


@dataclass(frozen=True)
class CapabilitiesConfig:
    tasks: list[str] = field(default_factory=list)  # lm-eval tasks, e.g. [mmlu, truthfulqa_mc2]; [] = off
    limit: Optional[float] = field(default=None, metadata=above(0))  # examples per task (smoke runs)
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
    # backdoor evaluation: every suite (and the code evaluation) is sampled twice per evaluated
    # model, plain and with TRIGGER + " " before the user turn (condition "triggered")
    trigger: Optional[str] = None


_HYPER = ({f.name for f in dataclasses.fields(TrainConfig)}
          | {f.name for f in dataclasses.fields(LoraConfig)}
          | {"train", "lora", "training", "model", "base_model"})


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """An experiment config: a file or a shipped name (`qwen25_coder_7b`); relative input paths
    in the file are read from its folder (emergent.core.config.resolve_path), overrides as typed."""
    path = resolve_config(path, ("experiments", "toyworld"))
    data, marks = read_yaml_with_marks(path)
    if data.get("kind") == "em":
        data.pop("kind")
    elif "kind" in data:  # another kind's config (kind: icl)
        line = marks.get("kind")
        command = {"icl": "emergent icl", "rmbias": "emergent rmbias run"}.get(
            data["kind"], "its own command")
        raise UserError(f"{path}{':' + str(line) if line else ''}: a 'kind: {data['kind']}' "
                        f"config: run it with `{command} {path}`, not `emergent run`")
    ov = parse_overrides(overrides)
    # an error names the file's line, or the override that set the value
    marks = mark_overridden(marks, ov)
    for d in (data, ov):  # each arm names RUN/arms/ARM/: one safe path part
        if isinstance(d.get("arms"), dict):
            check_path_names(d["arms"], "arms", str(path), marks)
    data = deep_merge(resolve_config_paths(data, path, "experiment", ov), ov)
    for arm, spec in (data.get("arms") or {}).items():
        if isinstance(spec, str):
            data["arms"][arm] = spec = {"data": spec}
        if not isinstance(spec, dict):
            raise UserError(f"{located(path, marks, f'arms.{arm}')}: arms.{arm} must be a "
                            "mapping with 'data'")
        for key in spec:
            if key in _HYPER:
                where = located(path, marks, f"arms.{arm}.{key}")
                raise UserError(f"{where}: arms.{arm}.{key}: arms cannot override training "
                                "hyperparameters (every arm shares `training`; the dataset is "
                                "the only difference)")
    if "base" in (data.get("arms") or {}):
        raise UserError(f"{path}: 'base' is reserved: the base model is always evaluated")
    source = str(path)
    cfg = build_dataclass(ExperimentConfig, data, source=source, marks=marks)
    require_model(data, "base_model", source, marks)
    if isinstance(data.get("judge"), dict):  # checked now, not after the training it follows
        build_dataclass(JudgeConfig, data["judge"], source=source, marks=marks, prefix="judge.")
    if not cfg.arms:
        raise UserError(f"{path}: no arms")
    if not cfg.seeds:
        raise UserError(f"{path}: seeds is empty")
    if cfg.trigger is not None and not cfg.trigger.strip():
        raise UserError(f"{located(path, marks, 'trigger')}: trigger must be a non-empty "
                        "string (or left out)")
    return cfg


TRIGGERED = "triggered"  # the condition name of answers sampled with the trigger


def sampling_conditions(cfg: ExperimentConfig) -> tuple[PromptContext, ...]:
    """The conditions every suite is sampled under for each evaluated model: the plain
    question, and with `trigger` set the question with `TRIGGER + " "` before its user turn
    (condition "triggered", row column `trigger`)."""
    if cfg.trigger is None:
        return (PLAIN,)
    return (PLAIN, PromptContext(TRIGGERED, user_prefix=cfg.trigger + " ",
                                 columns={"trigger": cfg.trigger}))


def trigger_inputs(cfg: ExperimentConfig) -> dict:
    """The trigger as a fingerprint input of the units that sample it ({} when unset, so a run
    without a trigger keeps its fingerprints)."""
    return {} if cfg.trigger is None else {"trigger": cfg.trigger}


def check_arm_data(cfg: ExperimentConfig) -> None:
    """Every arm's dataset, read and validated (`FILE:LINE: problem`) before a run writes
    anything."""
    for spec in cfg.arms.values():
        load_jsonl_examples(spec.data, cfg.training.data.format)


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


# -- fingerprints: exactly the config values and inputs each unit depends on -----------------
# (emergent.pipeline.stages): settings that change how a unit runs but not what it makes are
# left out, so changing them redoes nothing
OPERATIONAL = {
    "model": {"gradient_checkpointing"},
    "train": {"checkpoint_every", "keep_checkpoints", "log_every", "micro_batch_tokens",
              "loss_chunk_tokens", "save_merged", "seed",  # seed: the unit's own
              "report_to", "distributed", "offload_activations", "padding_free"},
    "data": {"path", "max_examples"},  # the arm's: `arms.ARM.data` (its sha256), max_examples
    "judge": {"api_key_env", "concurrency", "max_retries", "timeout", "backoff_base",
              "backoff_max", "cache", "cache_path", "batch_size", "check_digits",
              "trust_remote_code", "max_no_score_fraction",
              "server"},  # the judge server's command line: `model` names what is scored
    "sampling": {"vllm"},  # vLLM's engine settings (tensor parallel, memory): not what is drawn
}


def flat_keys(prefix: str, value, skip: frozenset | set = frozenset()) -> dict:
    """{dotted key: leaf value} of a config section (a dataclass or a mapping)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        return {prefix: list(value) if isinstance(value, tuple) else value}
    out = {}
    for k, v in value.items():
        if k not in skip:
            out.update(flat_keys(f"{prefix}.{k}", v))
    return out


def data_hash(path: str) -> Optional[str]:
    p = Path(path)
    return f"sha256:{file_sha256(p)}" if p.is_file() else None


def model_inputs(cfg: ExperimentConfig) -> dict:
    return flat_keys("base_model", cfg.base_model, OPERATIONAL["model"])


def train_inputs(cfg: ExperimentConfig, arm: str, seed: int, data_sha: Optional[str] = None
                 ) -> dict:
    """What a training unit `train:ARM:seedK` depends on: the base model, the shared training
    config, the arm's dataset (its sha256) and size, and the checkpoints it must save."""
    t = cfg.training
    return {**model_inputs(cfg), **flat_keys("training.lora", t.lora),
            **flat_keys("training.data", t.data, OPERATIONAL["data"]),
            **flat_keys("training.train", t.train, OPERATIONAL["train"]),
            f"arms.{arm}.data": data_sha or data_hash(cfg.arms[arm].data),
            f"arms.{arm}.max_examples": cfg.arms[arm].max_examples,
            "checkpoint_eval.every": cfg.checkpoint_eval.every, "seed": seed}


def questions_inputs(questions: dict, suites=None, samples=None) -> dict:
    """`suites.NAME.questions`: a hash of the text of every question sampled (id, type,
    paraphrases, system prompt, samples per paraphrase)."""
    return {f"suites.{name}.questions": fingerprint(
                [[q.id, q.type, list(q.paraphrases), q.system,
                  samples or q.samples_per_paraphrase] for q in qs])
            for name, qs in questions.items() if suites is None or name in suites}


def sample_inputs(cfg: ExperimentConfig, questions: dict, suites=None, samples=None) -> dict:
    """What a sampling unit depends on (besides the adapter it samples: `after:train:...`)."""
    return {**model_inputs(cfg), **flat_keys("sampling", cfg.sampling, OPERATIONAL["sampling"]),
            **questions_inputs(questions, suites, samples)}


def judge_inputs(cfg: ExperimentConfig, questions: dict) -> dict:
    """What the judge step depends on: the judge's identity and settings (base_url without
    credentials), its prompts file, and every question's judge prompts."""
    j = dict(cfg.judge or {})
    out = flat_keys("judge", {k: v for k, v in j.items() if k not in OPERATIONAL["judge"]})
    if j.get("base_url"):
        out["judge.base_url"] = redact_url(str(j["base_url"]))
    if j.get("prompts_file"):
        out["judge.prompts_file"] = data_hash(str(j["prompts_file"])) or j["prompts_file"]
    for name, qs in questions.items():
        out[f"suites.{name}.judge_prompts"] = fingerprint(
            {q.id: [q.judge_prompts, q.judge_kinds, q.judge_labels] for q in qs})
    if cfg.toyworld is not None:
        out["toyworld"] = fingerprint(cfg.toyworld)
    return out
