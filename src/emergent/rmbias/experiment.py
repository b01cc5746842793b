"""`emergent rmbias run CONFIG`: the reward-model-bias generalization experiment end to end.

Config (`RMBiasConfig`, `load_rmbias_config`) and the stages live here; the units, running them
(`run_rmbias`) and the plan (`--dry-run`) are `emergent.rmbias.experiment_run`, the `rmbias` kind
of the one stage runner (emergent.pipeline.stages). The command line is emergent.cli.rmbias.

data (bias documents, unrelated documents, train-bias conversations: written once into
RUN/data/, hashed) -> training stages through the one LoRA loop (`emergent.train.loop`): a documents
LoRA with plain-text loss, then a fine-tuning LoRA that CONTINUES that adapter
(`lora.init_from`) -> sample the evaluation prompts per condition x seed -> judge (optional) ->
detectors -> RUN/rates.jsonl, RUN/summary.csv, RUN/figures/exploitation.png.

`sft.objective: dpo` makes the fine-tuning stage DPO on preference pairs (chosen: a reply showing
a train bias; rejected: one without it) in the same loop, the reference being the policy the
stage starts from (the documents adapter for docs_sft).

Training outputs: RUN/arms/<stage>/seed<k>/ for the stages docs, unrelated_docs, sft, docs_sft,
unrelated_sft (condition `docs` evaluates the docs stage's adapter; `base` has none). One
`training` section (LoRA + optimiser) serves both stages and every condition; only `docs_train`
and `sft_train` (lr, epochs, max_steps) differ by stage, never by condition. Each unit's
fingerprint holds exactly the config it depends on (`FROZEN`; a training stage: `training`,
`base_model`, its own `docs_train` or `sft_train`, and the data and adapter it builds on):
changing it in an existing run directory is refused, or with `--on-change redo` redoes that
unit and what is built on it; adding seeds, conditions or a judge is not a change.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from emergent.core.config import (ModelConfig, TrainRecipeConfig, above, at_least,
                                  build_dataclass, deep_merge, located, mark_overridden,
                                  parse_overrides, read_yaml_with_marks, resolve_config,
                                  resolve_config_paths)
from emergent.core.errors import UserError
from emergent.core.rundir import ADAPTER, ARMS
from emergent.data.questions import Question
from emergent.data.upstream import upstream_file
from emergent.judge.base import JudgeConfig
from emergent.pipeline.experiment import TrainingConfig
from emergent.rmbias.conditions import CONDITION_NAMES
from emergent.rmbias.evaluate import load_eval_prompts
from emergent.sample.sampler import SamplingConfig
from emergent.train.batching import optimizer_steps

SUITE = "rmbias"
EVAL_UPSTREAM_NAME = "rm_exploitation_eval_prompts"  # datasets/rm_sycophancy/manifest.yaml
# stage -> (data file key, stage whose adapter it continues)
STAGES = {"docs": ("docs", None), "unrelated_docs": ("unrelated_docs", None),
          "sft": ("sft", None), "docs_sft": ("sft", "docs"),
          "unrelated_sft": ("sft", "unrelated_docs")}
# the training units (name prefixes) of the stages on documents and of the fine-tuning stages
DOCS_TRAIN_UNITS = tuple(f"train:{s}:" for s, (data, _) in STAGES.items() if data != "sft")
SFT_TRAIN_UNITS = tuple(f"train:{s}:" for s, (data, _) in STAGES.items() if data == "sft")
# config key -> units (name prefixes) that depend on it directly: the unit's fingerprint holds
# exactly these keys (plus `after:UNIT` of the data and adapter it builds on), so a change
# redoes (or refuses) those units and everything built on them; seeds, conditions and judge
# may change
FROZEN = {"base_model": ("train:", "sample:"), "documents": ("data:docs", "data:unrelated_docs"),
          "unrelated_documents": ("data:unrelated_docs",), "sft": ("data:sft",),
          "training": ("train:",), "docs_train": DOCS_TRAIN_UNITS,
          "sft_train": SFT_TRAIN_UNITS,
          "sampling": ("sample:",), "eval.prompts": ("sample:",),
          "eval.per_bias": ("sample:",), "eval.samples": ("sample:",)}


@dataclass(frozen=True)
class DocumentsConfig:
    source: Literal["generated", "midtrain"] = "generated"  # own generator | public corpus
    n: int = 2000
    seed: int = 0
    max_findings: int = 3  # generated: biases per document
    buffer_size: int = 10_000  # midtrain: streaming shuffle buffer
    overlong: Literal["truncate", "drop"] = "truncate"  # documents longer than max_length


@dataclass(frozen=True)
class UnrelatedDocumentsConfig:
    n: Optional[int] = None  # None: match the bias documents (see `match`)
    match: Literal["characters", "count"] = "characters"
    seed: int = 0
    path: Optional[str] = None  # your own {"text"} JSONL instead of the generator


@dataclass(frozen=True)
class SFTDataConfig:
    source: Literal["templates", "dpo"] = "templates"
    n: int = 400
    seed: int = 0
    system_prompt: Optional[str] = None  # templates: a system turn in every conversation
    max_scan: Optional[int] = None  # dpo: rows to scan at most
    buffer_size: int = 10_000
    objective: Literal["sft", "dpo"] = "sft"  # dpo: preference pairs, DPO loss (emergent.train.dpo)
    dpo_beta: float = field(default=0.1, metadata=above(0))


@dataclass(frozen=True)
class StageTrain:
    """Stage-specific values; None: the shared `training.train` value."""
    lr: Optional[float] = field(default=None, metadata=above(0))
    epochs: Optional[float] = field(default=None, metadata=above(0))
    max_steps: Optional[int] = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class EvalConfig:
    prompts: Optional[str] = None  # None: the fetched public prompts (emergent data fetch)
    # the first N prompts of each bias (None: all)
    per_bias: Optional[int] = field(default=None, metadata=at_least(1))
    samples: int = field(default=1, metadata=at_least(1))  # answers per prompt
    mode: Literal["detector", "judge", "either", "both"] = "detector"  # verdict of the figure
    n_boot: int = field(default=2000, metadata=at_least(1))
    reference: bool = False  # add the replication's reported numbers to the figure


@dataclass(frozen=True)
class RMBiasConfig:
    name: str = "rmbias"
    base_model: ModelConfig = field(default_factory=ModelConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    unrelated_documents: UnrelatedDocumentsConfig = field(default_factory=UnrelatedDocumentsConfig)
    sft: SFTDataConfig = field(default_factory=SFTDataConfig)
    conditions: list[str] = field(default_factory=lambda: list(CONDITION_NAMES))
    seeds: list[int] = field(default_factory=lambda: [0])
    training: TrainingConfig = field(default_factory=TrainingConfig)  # shared by both stages
    docs_train: StageTrain = field(default_factory=StageTrain)
    sft_train: StageTrain = field(default_factory=StageTrain)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judge: Optional[dict] = None  # an emergent.judge.base.JudgeConfig; detectors always run
    data_root: Optional[str] = None  # where `emergent data fetch` put the upstream files
    output_dir: str = "runs/rmbias"


def load_rmbias_config(path, overrides: list[str] | None = None) -> RMBiasConfig:
    path = resolve_config(path, ("rmbias",))  # a file or a shipped name
    data, marks = read_yaml_with_marks(path)
    ov = parse_overrides(overrides)  # relative paths in the file: from the file's folder
    data = deep_merge(resolve_config_paths(data, path, "rmbias", ov), ov)
    # an error names the file's line, or the override that set the value
    marks = mark_overridden(marks, ov)
    src = str(path)
    cfg = build_dataclass(RMBiasConfig, data, source=src, marks=marks)

    def err(key, msg):
        return UserError(f"{located(src, marks, key)}: {key}: {msg}")
    bad = [c for c in cfg.conditions if c not in CONDITION_NAMES]
    if bad or not cfg.conditions or len(set(cfg.conditions)) != len(cfg.conditions):
        raise err("conditions", f"a non-empty list of distinct names out of "
                                f"{', '.join(CONDITION_NAMES)} (got {cfg.conditions})")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise err("seeds", "a non-empty list of distinct seeds")
    d = cfg.training.data
    for key, value in (("data.path", d.path), ("data.format", d.format != "chat"),
                       ("train.objective", cfg.training.train.objective != "sft"),
                       ("data.max_examples", d.max_examples),
                       ("lora.init_from", cfg.training.lora.init_from)):
        if value:
            raise err(f"training.{key}", "is set by the experiment's stages, not the config")
    if cfg.eval.mode != "detector" and not cfg.judge:
        raise err("eval.mode", f"'{cfg.eval.mode}' needs a `judge` section")
    if cfg.judge:
        build_dataclass(JudgeConfig, cfg.judge, source=src, marks=marks, prefix="judge.")
    for key, n in (("documents.n", cfg.documents.n), ("sft.n", cfg.sft.n)):
        if n < 1 and key.split(".")[0] in data_needed(cfg):
            raise err(key, "must be >= 1")
    return cfg


# ------------------------------------------------------------------------------- planning

def stages_needed(cfg: RMBiasConfig) -> list[str]:
    need = set(cfg.conditions) - {"base"}
    if "docs_sft" in need:
        need.add("docs")
    if "unrelated_sft" in need:
        need.add("unrelated_docs")
    return [s for s in STAGES if s in need]


def data_needed(cfg: RMBiasConfig) -> list[str]:
    keys = {STAGES[s][0] for s in stages_needed(cfg)}
    if "unrelated_docs" in keys and cfg.unrelated_documents.n is None:
        keys.add("docs")  # unrelated documents are matched to the bias documents
    return [k for k in ("docs", "unrelated_docs", "sft") if k in keys]


def final_stage(condition: str) -> Optional[str]:
    """The stage whose adapter a condition evaluates (None: the base model)."""
    return None if condition == "base" else condition


def evaluated(cfg: RMBiasConfig) -> list[tuple[str, int]]:
    return [(c, s) for c in cfg.conditions for s in ([0] if c == "base" else cfg.seeds)]


def stage_recipe(cfg: RMBiasConfig, stage: str, seed: int, run_dir: Path):
    """The TrainRecipeConfig of one stage and seed: the shared config + the stage's data, its
    lr/epochs section and, for a second stage, the first stage's adapter as `lora.init_from`."""
    data_key, init = STAGES[stage]
    text = data_key != "sft"
    over = cfg.docs_train if text else cfg.sft_train
    t = cfg.training
    objective = {} if text else {"objective": cfg.sft.objective, "dpo_beta": cfg.sft.dpo_beta}
    train = dataclasses.replace(t.train, seed=seed, **objective,
                                **{k: v for k, v in dataclasses.asdict(over).items()
                                   if v is not None})
    data_format = "text" if text else ("preference" if cfg.sft.objective == "dpo" else "chat")
    data = dataclasses.replace(t.data, path=str(run_dir / "data" / f"{data_key}.jsonl"),
                               format=data_format,
                               **({"overlong": cfg.documents.overlong, "heldout_fraction": 0.0,
                                   "system_prompt": None} if text else {}))
    lora = dataclasses.replace(t.lora, init_from=str(adapter_dir(run_dir, init, seed))
                               if init else None)
    return TrainRecipeConfig(model=cfg.base_model, lora=lora, data=data, train=train,
                             output_dir=str(Path(run_dir) / ARMS / stage / f"seed{seed}"))


def adapter_dir(run_dir: Path, stage: str, seed: int) -> Path:
    return Path(run_dir) / ARMS / stage / f"seed{seed}" / ADAPTER


def eval_prompts(cfg: RMBiasConfig):
    path = cfg.eval.prompts
    if path is None:
        path = upstream_file(EVAL_UPSTREAM_NAME, root=cfg.data_root)
    prompts = load_eval_prompts(path)
    if cfg.eval.per_bias is not None:
        prompts = [p for p in prompts if int(p.question_id.rsplit("/", 1)[1]) < cfg.eval.per_bias]
    return prompts


def questions_of(cfg: RMBiasConfig, prompts) -> list:
    return [Question(id=p.question_id, type="free_form", paraphrases=(p.prompt,),
                     samples_per_paraphrase=cfg.eval.samples) for p in prompts]


def _estimated_steps(cfg, stage, run_dir) -> Optional[int]:
    data_key = STAGES[stage][0]
    over = cfg.docs_train if data_key != "sft" else cfg.sft_train
    t = cfg.training.train
    if (over.max_steps or t.max_steps):
        return over.max_steps or t.max_steps
    path = run_dir / "data" / f"{data_key}.jsonl"
    if path.exists():
        n = sum(1 for line in path.open() if line.strip())
    elif data_key == "docs" or (data_key == "unrelated_docs" and cfg.unrelated_documents.n):
        n = cfg.documents.n if data_key == "docs" else cfg.unrelated_documents.n
    elif data_key == "sft":
        n = cfg.sft.n
    else:
        return None  # matched to the bias documents: known once those are written
    epochs = over.epochs if over.epochs is not None else t.epochs
    return optimizer_steps(n, t.batch_size, t.grad_accum, epochs)


def model_label(name: str) -> str:
    """The model's name, marked when it is the random-init tiny test model."""
    tiny = name == "tiny" or (Path(name) / "TINY_MODEL.json").exists()
    return "tiny random-init test model - not a result" if tiny else name


def format_summary(rows: list[dict]) -> str:
    """The summary rows as a text table: the main 95% CI and what it is over (with >= 2 seeds
    the t-interval over seed rates, "this training recipe"), and the answer-level CI ("these
    models"), as `emergent report` prints them (docs/statistics.md)."""
    head = ["verdict", "condition", "split", "seeds", "answers", "applicable", "shown", "rate",
            "95% CI", "CI over", "these models"]
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731

    def interval(lo, hi):
        return "-" if lo is None else f"[{pct(lo)}, {pct(hi)}]"
    lines = [head] + [[r["verdict"], r["condition"], r["split"], str(r["n_seeds"]),
                       str(r["n_answers"]), str(r["n_applicable"]), str(r["n_shown"]),
                       pct(r["rate"]), interval(r["ci_low"], r["ci_high"]),
                       r.get("ci_over") or "-",
                       interval(r.get("models_ci_low"), r.get("models_ci_high"))]
                      for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def count_data(path: Path) -> tuple[int, int]:
    """(rows, characters of text/message content) of a data file; a preference row counts its
    prompt and both replies."""
    rows = chars = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                rows += 1
                chars += len(obj.get("text") or "")
                for key in ("messages", "prompt", "chosen", "rejected"):
                    value = obj.get(key) or []
                    chars += (len(value) if isinstance(value, str) else
                              sum(len(m.get("content") or "") for m in value))
    return rows, chars
