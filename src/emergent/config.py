"""Experiment configs: YAML -> frozen dataclasses, validated.

* an unknown key or a wrong type is a `UserError` naming the file, line and key;
* `key=value` overrides from the command line (`train.lr=2e-5`), values parsed as YAML;
* `to_dict` gives back the resolved config, written beside every output.

Sections are plain dataclasses; a recipe declares its top-level dataclass (see
`TrainRecipeConfig`) and calls `load_config(path, TrainRecipeConfig, overrides)`.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from emergent.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"  # hub id, local path, or "tiny" (built offline on first use)
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    quantization: Literal["none", "8bit", "4bit"] = "none"  # 4bit = NF4 + double quantization
    gradient_checkpointing: bool = False
    attn_implementation: Optional[str] = None  # e.g. "sdpa", "flash_attention_2"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class LoraConfig:
    r: int = 32
    alpha: int = 64
    dropout: float = 0.0
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
    heldout_fraction: float = 0.0  # the paper held out 10% (trained on 5,400 of 6,000)
    max_examples: Optional[int] = None  # seeded subsample, for dataset-size ablations
    system_prompt: Optional[str] = None  # None: whatever the chat template injects by itself
    overlong: Literal["truncate", "drop"] = "drop"


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-5
    epochs: float = 1.0
    max_steps: Optional[int] = None  # optimizer steps; overrides epochs when set
    batch_size: int = 2
    grad_accum: int = 8
    warmup_steps: int = 5
    scheduler: Literal["linear", "constant", "cosine"] = "linear"
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 2048
    optimizer: Literal["auto", "adamw", "paged_adamw_8bit"] = "auto"  # auto: paged 8-bit on CUDA
    batching: Literal["length_grouped", "shuffled"] = "length_grouped"
    seed: int = 0
    checkpoint_every: int = 0  # optimizer steps; 0 = only at the end
    keep_checkpoints: int = 1
    save_merged: bool = False
    log_every: int = 1
    loss: Literal["assistant_only", "all_tokens"] = "assistant_only"
    # padded tokens per forward pass: an optimizer step's examples are regrouped into as few
    # micro-batches as fit (same examples, same loss). None: batch_size x max_length when
    # grad_accum > 1 (never more than a configured micro-batch at full length), else off;
    # 0: off (every micro-batch holds batch_size examples)
    micro_batch_tokens: Optional[int] = None
    objective: Literal["sft", "dpo"] = "sft"  # dpo: needs data.format preference (emergent.dpo)
    dpo_beta: float = 0.1


@dataclass(frozen=True)
class TrainRecipeConfig:
    """`emergent train CONFIG`: one arm, one seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/train"


# ---------------------------------------------------------------- loading & validation


def _line_of(marks: dict, key: str) -> str:
    line = marks.get(key)
    return f":{line}" if line else ""


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
        kwargs[f.name] = coerced
    try:
        obj = cls(**kwargs)
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
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    text = path.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a config must be a mapping at the top level")
    return data, _collect_marks(node)


def load_config(path: str | Path | None, cls, overrides: list[str] | None = None,
                extra: dict | None = None):
    """Load YAML `path` (or defaults when None) into `cls`, applying `extra` then overrides."""
    data, marks = ({}, {}) if path is None else read_yaml_with_marks(path)
    if extra:
        data = deep_merge(data, extra)
    ov = parse_overrides(overrides)
    data = deep_merge(data, ov)
    source = str(path) if path is not None else "<defaults>"
    return build_dataclass(cls, data, source=source + (" (with overrides)" if ov else ""),
                           marks=marks)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
