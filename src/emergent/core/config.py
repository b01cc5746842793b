"""Experiment configs: YAML -> frozen dataclasses, validated.

* an unknown key or a wrong type is a `UserError` naming the file, line and key;
* so is a value out of its range: ranges are declared next to the fields
  (`field(metadata=above(0))`, `at_least(1)`, `within(0, 1, high_open=True)`, or any
  `{"check": fn}` returning the problem) and checked by `build_dataclass`; a key written twice
  in the file is refused (emergent.core.input_files), and a train config file must name its model;
* `key=value` overrides from the command line (`train.lr=2e-5`), values parsed as YAML;
* `to_dict` gives back the resolved config, written beside every output.

Sections are plain dataclasses; a recipe declares its top-level dataclass (see
`TrainRecipeConfig`) and calls `load_config(path, TrainRecipeConfig, overrides)`.

Shipped configs (package data under emergent/configs/, `emergent configs list`) are accepted by
name wherever a config path is: `resolve_config` (a path if it exists, else a shipped name, else a
one-line error naming close names). Relative input paths inside a config file (`PATH_KEYS`) are
read relative to the config file's folder (`resolve_path`: with a fallback to the data root for
fetched upstream files and to the current directory for configs written before that rule);
`key=value` overrides and `output_dir` stay relative to the current directory.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence, Union

import yaml

from emergent.data import upstream
from emergent.core.errors import UserError
from emergent.core.io import write_text_atomic
from emergent.core.package_files import package_path
from emergent.core.redact import redact
from emergent.core.input_files import read_yaml_file


# ---------------------------------------------------------------- value checks, next to fields


@dataclass(frozen=True)
class Range:
    """The values a numeric field may take, declared next to the field
    (`lr: float = field(default=1e-5, metadata=above(0))`) and checked by the config loader
    (`build_dataclass`) with the FILE:LINE of the key. None values (unset optional fields) pass;
    a float must also be finite (no .nan, .inf)."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False  # high itself excluded

    def text(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def __call__(self, value) -> Optional[str]:
        """The problem with `value` ("must be > 0"), or None when it is allowed."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number {self.text()}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {self.text()}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {self.text()}"
        return None


class FieldProblem(ValueError):
    """A config dataclass's `__post_init__` refusing a combination of values, naming the field
    (`key`, within the dataclass) whose FILE:LINE the loader reports (`build_dataclass`)."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def above(low: float) -> dict:
    """Field metadata: the value must be > low."""
    return {"check": Range(low, low_open=True)}


def at_least(low: float) -> dict:
    """Field metadata: the value must be >= low."""
    return {"check": Range(low)}


def within(low: float, high: float, *, high_open: bool = False, low_open: bool = False) -> dict:
    """Field metadata: the value must be in [low, high] (or open at either end)."""
    return {"check": Range(low, high, low_open=low_open, high_open=high_open)}


def model_name_problem(name) -> Optional[str]:
    """A model name that is written as a path (./x, ../x, /x, ~/x, a/b/c, x\\y) but names no
    existing file or folder; hub ids (owner/name), `tiny`, `smollm2` and `{placeholders}` pass."""
    if not isinstance(name, str) or not name or "{" in name or "://" in name:
        return None
    pathlike = (name.startswith(("./", "../", "/", "~", ".\\", "..\\")) or name.count("/") > 1
                or "\\" in name or (os.sep != "/" and os.sep in name))
    if pathlike and not Path(name).expanduser().exists():
        return f"no such model folder: {name}"
    return None


@dataclass(frozen=True)
class ModelConfig:
    # hub id, local path, or "tiny" (built offline on first use); a config file must name it
    name: str = field(default="tiny", metadata={"check": model_name_problem})
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    quantization: Literal["none", "8bit", "4bit"] = "none"  # 4bit = NF4 + double quantization
    gradient_checkpointing: bool = False
    attn_implementation: Optional[str] = None  # e.g. "sdpa", "flash_attention_2"
    trust_remote_code: bool = False
    # quantized training: the frozen weights that are not quantized and are turned to fp32:
    # all (embeddings, lm_head, norms, biases: peft's prepare_model_for_kbit_training; the
    # hidden states then run in fp32 too) or norms (only the norms' weights, their outputs cast
    # back: embeddings, lm_head, biases and hidden states stay in the compute dtype;
    # models.loading.prepare_frozen_norms). Same numbers in fp32 (CPU)
    upcast_frozen: Literal["all", "norms"] = "all"
    # on a CPU, precision bf16 computes in fp32 (bf16 is slow on most CPUs); true: in bf16
    # there too (bf16 frozen weights and matmuls; the LoRA weights as train.adapter_dtype says),
    # 1.5x the trained tokens/s of fp32 on SmolLM2-135M on a CPU with bf16 arithmetic
    # (AVX512-BF16, AMX, Arm BF16; a warning where not). Different rounding: part of what is
    # trained. Needs precision bf16; no effect on a GPU (models.loading.compute_dtype)
    cpu_bf16: bool = False

    def __post_init__(self):
        if self.cpu_bf16 and self.precision != "bf16":
            raise FieldProblem("cpu_bf16", f"bf16 on a CPU needs precision: bf16, not "
                               f"{self.precision} (or cpu_bf16: false)")


@dataclass(frozen=True)
class LoraConfig:
    r: int = field(default=32, metadata=at_least(1))
    alpha: int = field(default=64, metadata=above(0))
    dropout: float = field(default=0.0, metadata=within(0, 1, high_open=True))
    use_rslora: bool = True
    target_modules: Union[str, list[str]] = "all-linear"
    layers_to_transform: Optional[list[int]] = None
    full_finetune: bool = False  # train every base weight instead (toy-world pretraining only)
    init_from: Optional[str] = None  # continue training this adapter (second stage of a recipe)


@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    # chat {"messages": [...]} | text {"text": ...} | preference {"prompt", "chosen", "rejected"}
    format: Literal["chat", "text", "preference"] = "chat"
    # the paper held out 10% (trained on 5,400 of 6,000)
    heldout_fraction: float = field(default=0.0, metadata=within(0, 1, high_open=True))
    # seeded subsample, for dataset-size ablations
    max_examples: Optional[int] = field(default=None, metadata=at_least(1))
    system_prompt: Optional[str] = None  # None: whatever the chat template injects by itself
    overlong: Literal["truncate", "drop"] = "drop"


TRACKERS = ("trackio", "wandb", "tensorboard")  # train.report_to (emergent.train.tracking)


def trackers_problem(names) -> Optional[str]:
    """`train.report_to`: every name a known tracker, none twice."""
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        return f"unknown tracker {unknown[0]!r} (known: {', '.join(TRACKERS)})"
    twice = [n for i, n in enumerate(names) if n in names[:i]]
    return f"{twice[0]!r} listed twice" if twice else None


@dataclass(frozen=True)
class TrainConfig:
    lr: float = field(default=1e-5, metadata=above(0))
    epochs: float = field(default=1.0, metadata=above(0))
    # optimizer steps; overrides epochs when set
    max_steps: Optional[int] = field(default=None, metadata=at_least(1))
    batch_size: int = field(default=2, metadata=at_least(1))
    grad_accum: int = field(default=8, metadata=at_least(1))
    warmup_steps: int = field(default=5, metadata=at_least(0))
    scheduler: Literal["linear", "constant", "cosine"] = "linear"
    weight_decay: float = field(default=0.01, metadata=at_least(0))
    max_grad_norm: float = field(default=1.0, metadata=above(0))  # 0 would zero every gradient
    max_length: int = field(default=2048, metadata=at_least(1))
    optimizer: Literal["auto", "adamw", "paged_adamw_8bit"] = "auto"  # auto: paged 8-bit on CUDA
    batching: Literal["length_grouped", "shuffled"] = "length_grouped"
    seed: int = 0
    # optimizer steps; 0 = only at the end
    checkpoint_every: int = field(default=0, metadata=at_least(0))
    keep_checkpoints: int = field(default=1, metadata=at_least(0))  # 0: keep all
    save_merged: bool = False
    log_every: int = field(default=1, metadata=at_least(1))
    loss: Literal["assistant_only", "all_tokens"] = "assistant_only"
    # padded tokens per forward pass: an optimizer step's examples are regrouped into as few
    # micro-batches as fit (same examples, same loss). None: batch_size x max_length when
    # grad_accum > 1 (never more than a configured micro-batch at full length), else off;
    # 0: off (every micro-batch holds batch_size examples)
    micro_batch_tokens: Optional[int] = field(default=None, metadata=at_least(0))
    # sft: each micro-batch one row, its examples end to end with no padding, kept apart by
    # position ids (transformers masks them block-diagonally; the model is checked to do so at
    # loading); the token budget then counts real tokens. Same loss to float rounding; faster
    # where padding would be large (docs/benchmarks.md). Not part of what is trained.
    padding_free: bool = False
    # trained positions per chunk of the loss: lm_head + log-softmax run over this many of them
    # at a time, forward and backward, so full-vocabulary logits never exist for more (same
    # loss and gradients, emergent.train.token_logps); 0: all kept positions' logits at once
    loss_chunk_tokens: int = field(default=512, metadata=at_least(0))
    # the trainable weights (LoRA) and so their gradients: fp32 (peft's default), or the compute
    # dtype of model.precision (fp32 on CPU): 2 bytes less each per parameter in bf16, but
    # without master_weights AdamW's small updates round away in bf16 (docs/benchmarks.md)
    adapter_dtype: Literal["fp32", "compute"] = "fp32"
    # with adapter_dtype compute (refused without it): the optimizer steps fp32 master copies of
    # the trainable weights, with the gradients in fp32 (clipped there), and copies them back
    # rounded (4 bytes per trainable parameter more; in the checkpoints; train.memory)
    master_weights: bool = False
    # what the forward pass saves for the backward (with model.gradient_checkpointing: the
    # checkpointed layers' inputs) kept in pinned CPU memory until the backward pass needs it
    # (copies on a side CUDA stream; nothing moves on CPU); same numbers. Not part of what is
    # trained.
    offload_activations: bool = False
    # dpo: needs data.format preference (emergent.train.dpo)
    objective: Literal["sft", "dpo"] = "sft"
    dpo_beta: float = field(default=0.1, metadata=above(0))
    # experiment trackers that receive the train-log rows (and `emergent run`'s summary); off
    # by default: nothing leaves the machine unless asked. Not part of what is trained.
    report_to: list[str] = field(default_factory=list, metadata={"check": trackers_problem})
    # several launched processes (emergent.train.distributed): ddp replicates the model on
    # every process; fsdp shards it (FSDP2, per decoder layer; LoRA or full fine-tuning, SFT
    # or DPO; distributed.check_fsdp). Same numbers either way; ignored in a single process.
    # Not part of what is trained.
    distributed: Literal["ddp", "fsdp"] = "ddp"

    def __post_init__(self):
        if self.loss_chunk_tokens < 0:
            raise ValueError("loss_chunk_tokens must be >= 0 (0 = off), "
                             f"got {self.loss_chunk_tokens}")
        if self.padding_free and self.objective != "sft":
            raise FieldProblem("padding_free", f"objective {self.objective} trains on padded "
                               "rows (a pair's two sequences side by side); use objective sft "
                               "or padding_free: false")
        if self.master_weights and self.adapter_dtype != "compute":
            raise FieldProblem("master_weights", "fp32 master copies need adapter_dtype: "
                               "compute (with adapter_dtype fp32 the weights are fp32 already)")


@dataclass(frozen=True)
class TrainRecipeConfig:
    """`emergent train CONFIG`: one arm, one seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/train"


# ---------------------------------------------------------------- loading & validation


OVERRIDDEN = "key=value override"  # the mark of a key set on the command line, not in the file


class Override(str):
    """The mark of a key set by a `key=value` override (not a line of the file): its text
    `KEY=VALUE`, so an error in the value names the override."""


def override_text(key: str, value) -> str:
    """`KEY=VALUE` as an override sets it (the value written back as YAML would read it)."""
    if isinstance(value, str):
        shown = value
    elif value is None or isinstance(value, bool):
        shown = {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, (list, tuple, dict)):
        shown = json.dumps(value, default=str)
    else:
        shown = str(value)
    return f"{key}={shown}"


def _line_of(marks: dict, key: str) -> str:
    line = marks.get(key)
    if isinstance(line, Override):
        return f" (override {line})"
    if line == OVERRIDDEN:
        return f" ({OVERRIDDEN})"
    return f":{line}" if line else ""


def located(source, marks: dict, key: str) -> str:
    """`SOURCE:LINE` of the dotted `key`, or `SOURCE (override KEY=VALUE)` when an override set
    it (`marks` from `mark_overridden`); `SOURCE` alone when neither is known."""
    return f"{source}{_line_of(marks or {}, key)}"


def _collect_marks(node, prefix="", out=None) -> dict:
    """Map dotted key -> 1-based line number from a composed YAML node."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
            _collect_marks(v, key + ".", out)
    return out


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check (and gently coerce: int->float) `value` against annotation `tp`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        items = []
        for item in value:
            ok, v = _type_ok(item, arg)
            if not ok:
                return False, value
            items.append(v)
        return True, list(items)
    if origin is dict:
        return isinstance(value, dict), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict), value
    return isinstance(value, tp), value


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build_dataclass(cls, data: dict, *, source: str = "<config>", marks: dict | None = None,
                    prefix: str = ""):
    """Instantiate dataclass `cls` from a dict, recursively, with precise errors."""
    marks = marks or {}
    if not isinstance(data, dict):
        raise UserError(f"{source}{_line_of(marks, prefix.rstrip('.'))}: "
                        f"'{prefix.rstrip('.') or '<top>'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise UserError(f"{source}{_line_of(marks, prefix + str(key))}: unknown key "
                            f"'{prefix}{key}' (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, tp, dotted = data[f.name], hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = build_dataclass(tp, value or {}, source=source, marks=marks,
                                             prefix=dotted + ".")
            continue
        sub_dc = _optional_dataclass(tp)
        if sub_dc is not None and isinstance(value, dict):
            kwargs[f.name] = build_dataclass(sub_dc, value, source=source, marks=marks,
                                             prefix=dotted + ".")
            continue
        if typing.get_origin(tp) is dict and value is not None:
            vt = typing.get_args(tp)[1] if typing.get_args(tp) else Any
            if dataclasses.is_dataclass(vt) and isinstance(value, dict):
                kwargs[f.name] = {k: build_dataclass(vt, v if v is not None else {},
                                                     source=source, marks=marks,
                                                     prefix=f"{dotted}.{k}.")
                                  for k, v in value.items()}
                continue
        ok, coerced = _type_ok(value, tp)
        if not ok:
            raise UserError(f"{source}{_line_of(marks, dotted)}: '{dotted}' must be "
                            f"{_type_name(tp)}, got {value!r}")
        check = f.metadata.get("check")
        problem = check(coerced) if check is not None else None
        if problem:
            raise UserError(f"{source}{_line_of(marks, dotted)}: '{dotted}' {problem}, "
                            f"got {value!r}" if problem.startswith("must") else
                            f"{source}{_line_of(marks, dotted)}: '{dotted}': {problem}")
        kwargs[f.name] = coerced
    try:
        obj = cls(**kwargs)
    except FieldProblem as e:
        raise UserError(f"{source}{_line_of(marks, prefix + e.key)}: '{prefix}{e.key}': "
                        f"{e.problem}") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: {prefix.rstrip('.') or 'config'}: {e}") from None
    return obj


def _optional_dataclass(tp):
    if typing.get_origin(tp) in (Union, types.UnionType):
        for a in typing.get_args(tp):
            if dataclasses.is_dataclass(a):
                return a
    return None


def parse_overrides(overrides: list[str] | None) -> dict:
    """`["train.lr=2e-5", "lora.r=8"]` -> nested dict; values parsed as YAML scalars/lists."""
    out: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override '{item}' is not key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        if isinstance(value, str) and _looks_float(raw):
            value = float(raw)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _looks_float(raw: str) -> bool:
    try:
        float(raw)
        return True
    except ValueError:
        return False


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml_with_marks(path: str | Path) -> tuple[dict, dict]:
    """(data, {dotted key: line}) of a YAML config file; invalid UTF-8, invalid YAML and
    duplicate keys are one-line `FILE:LINE: problem` errors (emergent.core.input_files)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    _, data, node = read_yaml_file(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a config must be a mapping at the top level")
    return data, _collect_marks(node)


def mark_overridden(marks: dict, overrides: dict, prefix: str = "") -> dict:
    """`marks` with the keys that `overrides` set marked as overrides (an `Override`: the
    `KEY=VALUE` that set it; the file's keys below them dropped): an error in such a value
    names the override, `FILE (override KEY=VALUE): ...`, not a line of the file."""
    out = dict(marks)
    for k, v in overrides.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out = mark_overridden(out, v, key + ".")
        else:
            out = {m: line for m, line in out.items() if not m.startswith(key + ".")}
            out[key] = Override(override_text(key, v))
    return out


def require_model(data: dict, key: str, source, marks: dict) -> None:
    """A config file must name its model (`key`: model or base_model): no silent default.
    The tiny random model is `name: tiny`."""
    section = data.get(key)
    name = section.get("name") if isinstance(section, dict) else None
    if name is None:
        line = marks.get(key) if isinstance(marks.get(key), int) else 1
        raise UserError(f"{source}:{line}: no {key}.name: name the model to train "
                        f"({key}: {{name: HUB_ID_OR_PATH}}; `name: tiny` for the tiny random "
                        "test model)")


def load_config(path: str | Path | None, cls, overrides: list[str] | None = None,
                extra: dict | None = None):
    """Load YAML `path` (a file or a shipped config name; defaults when None) into `cls`,
    applying `extra` then overrides. Relative paths in the file are read from its folder."""
    if path is not None:
        path = resolve_config(path, _KINDS_OF.get(cls))
    data, marks = ({}, {}) if path is None else read_yaml_with_marks(path)
    if path is not None and cls in _PATH_KEYS_OF:
        data = resolve_config_paths(data, path, _PATH_KEYS_OF[cls])
    if extra:
        data = deep_merge(data, extra)
    ov = parse_overrides(overrides)
    data = deep_merge(data, ov)
    marks = mark_overridden(marks, deep_merge(extra or {}, ov))
    source = str(path) if path is not None else "<defaults>"
    cfg = build_dataclass(cls, data, source=source, marks=marks)
    if path is not None and cls in _MODEL_KEY_OF:
        require_model(data, _MODEL_KEY_OF[cls], source, marks)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg, path: str | Path) -> None:
    """The resolved config as YAML, credentials redacted (emergent.core.redact)."""
    write_text_atomic(path, yaml.safe_dump(redact(to_dict(cfg)), sort_keys=False))


# names that become a folder or file name of a run (arms): one path part, never `..`
PATH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def path_name_problem(name) -> Optional[str]:
    """Why `name` cannot name a folder of a run directory, or None when it can: letters,
    digits, '.', '_' and '-', starting with a letter or digit, without '..'."""
    if not isinstance(name, str) or not PATH_NAME.fullmatch(name):
        return (f"{name!r} is not a usable name: it names a folder of the run, so use letters, "
                "digits, '.', '_' and '-', starting with a letter or digit")
    if ".." in name:
        return f"{name!r} is not a usable name: it names a folder of the run and holds '..'"
    return None


def check_path_names(names, key: str, source: str, marks: dict | None = None) -> None:
    """A UserError `SOURCE:LINE: KEY.NAME: problem` for the first of `names` (the keys under
    `key`) that cannot name a folder (`path_name_problem`)."""
    for name in names:
        problem = path_name_problem(name)
        if problem:
            raise UserError(f"{source}{_line_of(marks or {}, f'{key}.{name}')}: {key}.{name}: "
                            f"{problem}")


# ---------------------------------------------------------------- shipped configs & paths

CONFIG_KINDS = ("experiments", "train", "arms", "judges", "rmbias", "toyworld")
_KINDS_OF = {TrainRecipeConfig: ("train", "arms", "toyworld")}  # name lookup order per class

_JUDGE_KEYS = ("prompts_file", "model?", "tokenizer?")
# Dotted keys holding input paths, per kind of config file: `*` matches any key of a mapping,
# `{}` stands for the keys of a mapping themselves (suite files), a trailing `?` marks a
# name-or-path (a hub id or model name unless such a path exists). `data_root` (a folder) is
# resolved first, by `resolve_config_paths`. `output_dir` (and caches) are outputs: relative to
# the current directory, as typed.
PATH_KEYS = {
    "train": ("data.path", "lora.init_from", "model.name?"),
    "experiment": ("arms.*", "arms.*.data", "suites.{}", "training.data.path",
                   "training.lora.init_from", "base_model.name?", "capabilities.include_path")
                  + tuple(f"judge.{k}" for k in _JUDGE_KEYS),
    "rmbias": ("eval.prompts", "base_model.name?")
              + tuple(f"judge.{k}" for k in _JUDGE_KEYS),
    "judge": _JUDGE_KEYS + tuple(f"judge.{k}" for k in _JUDGE_KEYS),
}
_PATH_KEYS_OF = {TrainRecipeConfig: "train"}
_MODEL_KEY_OF = {TrainRecipeConfig: "model"}  # config files of these classes must name a model
_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")


@dataclass(frozen=True)
class ShippedConfig:
    kind: str  # one of CONFIG_KINDS
    name: str  # the file's stem: what `emergent run NAME` takes
    path: Path

    @property
    def qualified(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def relpath(self) -> str:
        return self.path.relative_to(shipped_configs_dir()).as_posix()

    def description(self, width: int = 80) -> str:
        """The first sentence of the file's leading comment block, at most `width` characters."""
        words = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            words += line.lstrip("#").split()
        text, out = " ".join(words), []
        for word in text.split(" "):
            out.append(word)
            if word.endswith(".") and word not in ("al.", "e.g.", "i.e.", "etc.", "vs."):
                break
        line = " ".join(out)
        return line if len(line) <= width else line[: width - 3].rstrip() + "..."


def shipped_configs_dir() -> Path:
    """emergent/configs/ of the installed package (the checkout's configs/ links to it)."""
    return package_path("configs")


def shipped_configs() -> list[ShippedConfig]:
    """Every shipped config file, grouped by kind (CONFIG_KINDS order), then by name."""
    root = shipped_configs_dir()
    out = []
    for p in root.rglob("*.yaml"):
        rel = p.relative_to(root)
        kind = rel.parts[0] if len(rel.parts) > 1 else "toyworld"
        out.append(ShippedConfig(kind, p.stem, p))
    order = {k: i for i, k in enumerate(CONFIG_KINDS)}
    return sorted(out, key=lambda c: (order.get(c.kind, len(order)), c.kind, c.name))


def resolve_config(name_or_path: str | Path, kinds: Optional[Sequence[str]] = None) -> Path:
    """A config file: `name_or_path` if that file exists, else the shipped config of that name
    (`qwen25_coder_7b`, `experiments/qwen25_coder_7b`, `configs/experiments/qwen25_coder_7b.yaml`;
    a name shipped in several kinds is taken from the first of `kinds` that has it), else a
    one-line UserError naming close shipped names."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    key = str(name_or_path).replace("\\", "/").removeprefix("./").removeprefix("configs/")
    for suffix in (".yaml", ".yml"):
        key = key.removesuffix(suffix)
    ships = shipped_configs()
    hits = [c for c in ships
            if key in (c.name, c.qualified, c.relpath.removesuffix(".yaml"))]
    for kind in kinds or ():
        if any(c.kind == kind for c in hits):
            hits = [c for c in hits if c.kind == kind]
            break
    if len(hits) == 1:
        return hits[0].path
    if hits:
        raise UserError(f"{name_or_path}: several shipped configs have that name "
                        f"({', '.join(c.qualified for c in hits)}); give KIND/NAME")
    names = sorted({c.name for c in ships} | {c.qualified for c in ships})
    close = difflib.get_close_matches(key, names, n=5, cutoff=0.6)
    hint = f"close: {', '.join(close)}" if close else "`emergent configs list` shows them"
    raise UserError(f"{name_or_path}: no such config file nor shipped config name ({hint})")


def resolve_path(value: str, config_dir: str | Path, *, name_or_path: bool = False,
                 data_root=None) -> str:
    """A relative path read from a config file in `config_dir`, in this order:
    1. relative to the config file's folder, if it exists there;
    2. under a manifest's dest (datasets/insecure_code/..., evals/upstream/...): relative to the
       data root (`data_root`, $EMERGENT_DATA_DIR, the checkout or <cache>/data: where
       `emergent data fetch` writes), if it exists there;
    3. relative to the current directory, if it exists there (configs written before rule 1);
    4. otherwise: a model name (`name_or_path`) as given; a fetched file at the data root (so the
       error says where it is expected); anything else relative to the config's folder.
    Absolute paths, empty strings, URLs and `{placeholders}` pass through. Found paths are
    returned relative to the current directory when they are under it."""
    if not value or "{" in value or "://" in value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    here = Path(config_dir) / path
    if here.exists():
        return _tidy(here)
    fetched = any(path.as_posix().startswith(d + "/") for d in upstream.data_dests())
    at_root = upstream.data_root(data_root) / path if fetched else None
    if at_root is not None and at_root.exists():
        return _tidy(at_root)
    if path.exists() or name_or_path:
        return value
    return _tidy(at_root if at_root is not None else here)


def _tidy(path: Path) -> str:
    if ".." in path.parts:
        path = path.resolve()  # physically: the checkout's configs/ is a symlink
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(path)


def path_slots(data: dict, keys: Sequence[str]) -> Iterator[tuple[str, dict, str, bool]]:
    """(pattern, container, key, name_or_path) of every string value matched by `keys`
    (PATH_KEYS syntax); for a `{}` pattern the slot is a mapping key, container[key] its value."""
    for pattern in keys:
        optional = pattern.endswith("?")
        parts = pattern.rstrip("?").split(".")
        nodes = [data]
        for part in parts[:-1]:
            nodes = [v for n in nodes if isinstance(n, dict)
                     for k, v in n.items() if part == "*" or k == part]
        last = parts[-1]
        for node in nodes:
            if not isinstance(node, dict):
                continue
            for k in list(node):
                if last == "{}":
                    if isinstance(k, str) and k.endswith(_FILE_SUFFIXES):
                        yield pattern, node, k, optional
                elif (last == "*" or k == last) and isinstance(node[k], str):
                    yield pattern, node, k, optional


def resolve_config_paths(data: dict, config_file: str | Path, kind: str,
                         overrides: Optional[dict] = None) -> dict:
    """`data` read from `config_file` (a config of `kind`, see PATH_KEYS) with its `data_root`
    and its input paths resolved against the file's folder (`overrides`: the parsed key=value
    overrides, whose `data_root` wins for finding fetched files)."""
    data = dict(data)
    if isinstance(data.get("data_root"), str):
        data["data_root"] = resolve_path(data["data_root"], Path(config_file).parent)
    root = (overrides or {}).get("data_root", data.get("data_root"))
    return resolve_paths(data, config_file, PATH_KEYS[kind], data_root=root)


def resolve_paths(data: dict, config_file: str | Path, keys: Sequence[str], *,
                  data_root=None) -> dict:
    """A copy of `data` (read from `config_file`) with the input paths at `keys` resolved by
    `resolve_path` against the file's folder."""
    out = copy.deepcopy(data)
    folder = Path(config_file).parent
    renames: dict[int, tuple[dict, dict]] = {}
    for pattern, node, key, optional in list(path_slots(out, keys)):
        if pattern.endswith("{}"):
            new = resolve_path(key, folder, data_root=data_root)
            renames.setdefault(id(node), (node, {}))[1][key] = new
        else:
            node[key] = resolve_path(node[key], folder, name_or_path=optional,
                                     data_root=data_root)
    for node, mapping in renames.values():  # renamed mapping keys, order kept
        items = [(mapping.get(k, k), v) for k, v in node.items()]
        node.clear()
        node.update(items)
    return out
