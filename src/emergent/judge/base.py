"""The judge role's interface: the `Judge` protocol every backend implements, the judge config
(`JudgeConfig`, `load_judge_config`) and the backend registry (`BACKENDS`, `make_judge`).

Backends are peers behind one protocol: `openai` (any OpenAI-compatible endpoint,
emergent.judge.openai_api), `hf` (a local transformers model, emergent.judge.hf) and
`toyworld-rule` (the toy world's exact rule judge, emergent.toyworld.judge). `BACKENDS` names
each backend's class as "module:Class"; it is imported only when a judge of that backend is
made, so `emergent judge` with the openai backend never imports torch. A new backend is a
class implementing `Judge` (with `from_config`) and one line in `BACKENDS`
(docs/judging.md, "Adding a backend").
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Protocol, Union, runtime_checkable

from emergent.core.config import (above, at_least, build_dataclass, deep_merge, mark_overridden,
                                  parse_overrides, read_yaml_with_marks, resolve_config,
                                  resolve_config_paths, within)
from emergent.core.errors import UserError
from emergent.judge.prompts import PromptsArg
from emergent.judge.scoring import JudgeTask, Score
from emergent.judge.server import JudgeServer, JudgeServerConfig

# backend name -> "module:Class" of its `Judge`
BACKENDS: dict[str, str] = {
    "openai": "emergent.judge.openai_api:OpenAIJudge",
    "hf": "emergent.judge.hf:HFJudge",
    "toyworld-rule": "emergent.toyworld.judge:ToyWorldRuleJudge",
    "toyworld-rmbias-rule": "emergent.toyworld.rmbias_judge:ToyRMBiasJudge",
}


DEFAULT_MAX_NO_SCORE_FRACTION = 0.05


def unknown_backend(name) -> str:
    """The error text for a backend name not in `BACKENDS`."""
    return f"unknown judge backend {name!r} (known backends: {', '.join(sorted(BACKENDS))})"


def _backend_problem(name) -> Optional[str]:
    return None if name in BACKENDS else unknown_backend(name)


def _labels_problem(labels) -> Optional[str]:
    for metric, labs in (labels or {}).items():
        if not isinstance(labs, list) or not all(isinstance(x, str) and x for x in labs):
            return (f"labels.{metric} must be a list of strings (quote YES/NO/TRUE/FALSE in "
                    f"YAML: [\"YES\", \"NO\"]), got {labs!r}")
    return None


@dataclass(frozen=True)
class JudgeConfig:
    # the checks in field metadata report FILE:LINE (or the override) at load time;
    # __post_init__ repeats them for a JudgeConfig made in Python
    backend: str = field(default="openai", metadata={"check": _backend_problem})  # BACKENDS
    model: str = "gpt-4o-2024-08-06"  # API model name, or hub id / local path for hf
    base_url: Optional[str] = None  # None: https://api.openai.com/v1
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # NAME of the env var; null for no key
    mode: Literal["chat-top20", "exact"] = "chat-top20"  # openai: see docs/judging.md
    top_logprobs: int = field(default=20, metadata=at_least(1))  # openai: alternatives per call (exact: the completions' logprobs=N)
    tokenizer: Optional[str] = None  # openai exact: the judge's tokenizer (None: `model`)
    check_digits: bool = True  # openai chat-top20: refuse judges that split numbers into digits
    concurrency: int = field(default=8, metadata=at_least(1))
    max_retries: int = field(default=6, metadata=at_least(0))
    timeout: float = field(default=60.0, metadata=above(0))  # seconds per call
    backoff_base: float = 1.0  # wait base * 2**attempt seconds (capped at backoff_max)
    backoff_max: float = 60.0
    min_mass: float = field(default=0.25, metadata=within(0, 1))  # below this numeric/label mass the score is None
    # a run fails (after writing its rows) when more than this fraction of the judge's replies
    # hold no number / label at all (status no_numeric_mass: a broken or misconfigured
    # server); those are never cached and a rerun asks again. 1.0: never fail (still warned)
    max_no_score_fraction: float = field(default=DEFAULT_MAX_NO_SCORE_FRACTION,
                                         metadata=within(0, 1))
    cache: bool = True
    cache_path: Optional[str] = None  # None: ~/.cache/emergent/judge/<model>-<hash>.jsonl
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"  # hf
    quantization: Literal["none", "8bit", "4bit"] = "none"  # hf
    trust_remote_code: bool = False  # hf
    batch_size: int = field(default=32, metadata=at_least(1))  # hf: trie leaves per batched continuation
    spellings: list[str] = field(default_factory=lambda: ["", " "])  # hf: "42" and " 42"
    metrics: Optional[list[str]] = None  # judge only these metrics
    labels: dict[str, list[str]] = field(default_factory=dict,  # metric -> labels override
                                         metadata={"check": _labels_problem})
    prompts_file: Optional[str] = None  # YAML {metric: template | {prompt, kind, labels}}
    # openai: a local server the run starts before its first request and stops after judging
    # (emergent.judge.server; docs/judging.md, "A local judge server started by the run")
    server: Optional[JudgeServerConfig] = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(unknown_backend(self.backend))
        if self.concurrency < 1 or self.batch_size < 1 or self.top_logprobs < 1:
            raise ValueError("concurrency, batch_size and top_logprobs must be >= 1")
        if not 0.0 <= self.min_mass <= 1.0:
            raise ValueError("min_mass must be within [0, 1]")
        if not 0.0 <= self.max_no_score_fraction <= 1.0:
            raise ValueError("max_no_score_fraction must be within [0, 1]")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0")
        problem = _labels_problem(self.labels)
        if problem:
            raise ValueError(problem)
        if self.server is not None and (self.backend != "openai" or not self.base_url):
            raise ValueError("server (a judge server the run starts) needs backend: openai and "
                             "the base_url the server listens at, e.g. "
                             "http://127.0.0.1:8000/v1")


@runtime_checkable
class Judge(Protocol):
    """What the pipeline needs of a judge: score a batch of judge tasks, say which calls a
    batch still needs, and count the calls made. Backends subclass it (for the defaults below)
    and are listed in `BACKENDS`."""

    # written to every judgment row (a judgments file holds one judge's rows), redacted
    # (emergent.core.redact): a backend names its endpoint without credentials
    judge_id: str
    # True: each task's prompt is sent to a model (dry runs count its calls and prompt tokens).
    # False: a judge that reads answers by rule: it makes no calls and cannot judge a prompt it
    # has no rule for (the code evaluation's real code)
    sends_prompts: bool = True
    # True: it runs a model in this process (it needs the GPU): under an executor the run's
    # judge unit is a worker job (`runs_on_device`)
    loads_model: bool = False
    calls_made: Optional[int] = None  # API calls sent, failed ones included; None: no API
    # judge_answers fails above this fraction of no_numeric_mass replies (make_judge sets it
    # from JudgeConfig.max_no_score_fraction)
    max_no_score_fraction: float = DEFAULT_MAX_NO_SCORE_FRACTION
    retries_made: int = 0
    # the server make_judge attached (`JudgeConfig.server`): the backend starts it before its
    # first request and stops it in close(); judge_answers points its log at RUN/logs/
    server: Optional[JudgeServer] = None

    @classmethod
    def from_config(cls, cfg: JudgeConfig, **context) -> "Judge":
        """The judge `cfg` describes; `context`: other config sections a backend reads (the
        rule judge: `toyworld`, its world)."""
        raise NotImplementedError

    def metric_prompts(self, suite_prompts: PromptsArg) -> PromptsArg:
        """The prompts (a list, or a rule row -> [MetricPrompt]) this judge scores a table
        with, given the suites' own: a model judge uses them; a rule judge has its own."""
        return suite_prompts

    def pending(self, tasks: list[JudgeTask]) -> list[JudgeTask]:
        """The calls scoring `tasks` would still make, one entry per call (not cached yet)."""
        raise NotImplementedError

    def evaluate(self, tasks: list[JudgeTask], progress: bool = True) -> list[Score]:
        """One Score per task, in order."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush the cache and release connections or models."""


def judge_class(spec: Union["JudgeConfig", dict, str, None]) -> type:
    """The `Judge` class of a backend name or of a config's backend, imported now."""
    if isinstance(spec, JudgeConfig):
        name = spec.backend
    elif isinstance(spec, str):
        name = spec
    else:
        name = (spec or {}).get("backend", JudgeConfig.backend)
    if name not in BACKENDS:
        raise UserError(f"judge.backend: {unknown_backend(name)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def runs_on_device(spec: Union["JudgeConfig", dict, None]) -> bool:
    """True for a judge that needs the machine's accelerator: a backend that loads the model
    itself (`hf`) or a judge server the run starts (`server:`). Such a judge runs where the
    GPUs are: under an executor (`--executor slurm|ray`) the run's judge unit is a worker job,
    and the code evaluation leaves its judging to that unit (the model is loaded once)."""
    server = spec.server if isinstance(spec, JudgeConfig) else (spec or {}).get("server")
    return judge_class(spec).loads_model or server is not None


def make_judge(spec: Union[JudgeConfig, dict, None] = None, **context) -> Judge:
    """The judge a config describes: `spec` is a JudgeConfig or its keys (an experiment's
    `judge:` section); `context`: other config sections a backend reads (`toyworld`)."""
    cls = judge_class(spec)
    cfg = spec if isinstance(spec, JudgeConfig) else build_dataclass(JudgeConfig, spec or {},
                                                                      source="judge")
    judge = cls.from_config(cfg, **context)
    judge.max_no_score_fraction = cfg.max_no_score_fraction  # a run policy, same for every backend
    if cfg.server is not None:  # started lazily by the backend, stopped by judge.close()
        judge.server = JudgeServer(cfg.server, cfg.base_url, cfg.api_key_env)
    return judge


def load_judge_config(path: str | Path | None, overrides: list[str] | None = None) -> JudgeConfig:
    """A judge YAML (JudgeConfig keys at the top, or under a `judge:` section of a bigger
    config) plus `key=value` / `judge.key=value` overrides."""
    if path is not None:  # a file or a shipped name; relative paths: from the file's folder
        path = resolve_config(path, ("judges", "experiments", "rmbias"))
    data, marks = ({}, {}) if path is None else read_yaml_with_marks(path)
    if path is not None:
        data = resolve_config_paths(data, path, "judge")
    if isinstance(data.get("judge"), dict):
        data = data["judge"]
        marks = {k[6:]: v for k, v in marks.items() if k.startswith("judge.")}
    ov = parse_overrides(overrides)
    if isinstance(ov.get("judge"), dict):
        ov = deep_merge({k: v for k, v in ov.items() if k != "judge"}, ov["judge"])
    # an error names the file's line, or the override that set the value
    source = str(path) if path else "<judge defaults>"
    return build_dataclass(JudgeConfig, deep_merge(data, ov), source=source,
                           marks=mark_overridden(marks, ov))
