"""`emergent icl CONFIG`: in-context learning, the `icl` kind of the one stage runner
(emergent.pipeline.stages). No training: for each arm x k x seed the base model samples every
suite question after k example conversations of that arm (their user/assistant turns) in its
context; the answers are judged and summarized like an `emergent run`'s.

The paper (Betley et al. 2025) found no misalignment in GPT-4o from up to 256 in-context
insecure examples; later work reports effects with other prompts. This kind measures it for the
configured model, with secure examples as the control.

* Examples: the arm's chat JSONL (`arms: {NAME: FILE}`), each line one conversation; its user and
  assistant turns are the example (a system turn is left out: the question's own system prompt,
  if any, stays first). For seed s the examples are a seeded shuffle of the file's lines
  (`random.Random(s)`), and k takes the first k of it: the examples of k=16 are the first 16 of
  k=64's (nested), and arms whose files have as many lines get the same line numbers.
* Conditions (emergent.sample.sampler.PromptContext): `icl_k{k}`, with row columns `icl_arm`
  and `icl_k`; answer rows carry `arm` = the in-context arm and `seed` = the example draw (also
  the sampling seed). k = 0 is ONE shared condition, arm `base` (the plain question, no
  examples; `icl_arm` null), sampled once per seed, so every arm's curve starts at the same point.
* Context: at plan time (`--dry-run` too) the prompt of the longest question after each k's
  examples is rendered with the model's chat template and counted with its tokenizer (every arm
  and seed); a k whose prompt is longer than the context (`context_length`, default the model
  config's max_position_embeddings) minus `sampling.max_new_tokens` is refused with one line
  naming k and the token count, before anything is written, or skipped with a warning with
  `skip_too_long: true`.
* Units: `sample:base:k0:seedS`, `sample:ARM:kK:seedS` (fingerprint: base model, sampling, the
  questions, the example file's sha256, k, seed), then `judge`, `metrics` (RUN/summary.csv: one
  row per suite x condition x arm, with `icl_k`; insecure is compared with each control at each
  k), `figures` (RUN/figures/icl_vs_k.png: misaligned rate vs k per arm,
  emergent.report.figures_icl). Resume after a kill, the run directory's lock and
  `--on-change refuse|redo` are the runner's.
* Executors: `--executor slurm|ray` sends each sampling unit to a worker as one job
  (emergent.pipeline.executors.run_units, as `emergent run`); judge, metrics and figures run in
  the coordinator.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from emergent.core.config import (ModelConfig, at_least, build_dataclass, check_path_names,
                                  deep_merge, dump_yaml, mark_overridden, parse_overrides,
                                  read_yaml_with_marks, require_model, resolve_config,
                                  resolve_config_paths, to_dict)
from emergent.core.errors import UserError
from emergent.core.io import now
from emergent.core.rundir import RunDir
from emergent.data.chat_data import file_sha256, load_jsonl_examples
from emergent.judge.base import JudgeConfig, judge_class, runs_on_device
from emergent.judge.prompts import suite_prompts
from emergent.models.loading import load_for_inference, load_tokenizer, resolve_model_path
from emergent.pipeline.experiment import (MetricsConfig, SuiteRef, data_hash, judge_inputs,
                                          sample_inputs)
from emergent.pipeline.executors import LOCAL, ExecutorOptions, run_units
from emergent.pipeline.executors import check as check_executor
from emergent.pipeline.run import judge_run, questions_of, summary_tables, use_data_root
from emergent.pipeline.stages import (Unit, check_changes, current_records, make_plan,
                                      prune_judgments, write_summary)
from emergent.report.figures import draw_all
from emergent.sample.sampler import (PromptContext, SamplingConfig, prompt_messages,
                                     sample_questions, sample_with_vllm)

log = logging.getLogger(__name__)

__all__ = ["IclConfig", "icl_units", "load_icl_config", "plan", "run_icl", "UNITS"]

BASE_ARM = "base"  # the arm of the shared k = 0 condition (no examples)
FIGURE = "icl_vs_k"  # emergent.report.figures_icl
SEED_CI = "seeds (example draws)"  # ci_over of an interval over seeds in an ICL summary
DRAW = "shuffle-v1"  # how examples are drawn (a fingerprint input: a change redoes the units)


def _ks_problem(ks) -> Optional[str]:
    if not ks:
        return "must list at least one k"
    if any(k < 0 for k in ks):
        return "must hold numbers of examples >= 0"
    if len(set(ks)) != len(ks):
        return "must not repeat a k"
    return None


@dataclass(frozen=True)
class IclConfig:
    """An `emergent icl` config (`kind: icl`), field by field."""

    kind: Literal["icl"] = "icl"  # marks the file as this kind (emergent run refuses it)
    name: str = "icl"
    # the model that answers (no adapter, no training); a config file must name it
    base_model: ModelConfig = field(default_factory=ModelConfig)
    # in-context arm name -> chat JSONL of example conversations, e.g. {insecure: FILE,
    # secure: FILE}; `base` is reserved for k = 0
    arms: dict[str, str] = field(default_factory=dict)
    # numbers of examples in context; 0 = the plain question (one shared condition, arm base)
    ks: list[int] = field(default_factory=lambda: [0, 16, 64, 256],
                          metadata={"check": _ks_problem})
    # example draws: seed s shuffles the file's lines with random.Random(s), k takes the first
    # k (nested); s is also the sampling seed of its answers
    seeds: list[int] = field(default_factory=lambda: [0])
    suites: dict[str, SuiteRef] = field(default_factory=dict)  # as in an experiment config
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judge: dict = field(default_factory=dict)  # a JudgeConfig (emergent.judge.base), any backend
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # treatment: insecure
    # a k whose longest prompt does not fit the context: refused (false) or skipped with a
    # warning (true)
    skip_too_long: bool = False
    # the model's context in tokens (null: its config's max_position_embeddings)
    context_length: Optional[int] = field(default=None, metadata=at_least(1))
    toyworld: Optional[dict] = None  # WorldConfig of a toy-world run (the rule judge reads it)
    data_root: Optional[str] = None  # where `emergent data fetch` put the upstream files
    output_dir: str = "runs/icl"


def is_icl_config(data) -> bool:
    return isinstance(data, dict) and data.get("kind") == "icl"


def load_icl_config(path: str | Path, overrides: list[str] | None = None) -> IclConfig:
    """An ICL config: a file or a shipped name (`icl_qwen25_coder_7b`); relative input paths are
    read from its folder, overrides as typed. Problems are one `FILE:LINE: problem` line."""
    path = resolve_config(path, ("experiments", "toyworld"))
    data, marks = read_yaml_with_marks(path)
    ov = parse_overrides(overrides)
    if not is_icl_config(deep_merge(data, ov)):
        raise UserError(f"{path}:{marks.get('kind', 1)}: not an ICL config (it needs `kind: "
                        "icl`); experiment configs run with `emergent run`")
    for d in (data, ov):  # an arm names answer rows and units: one safe path part
        if isinstance(d.get("arms"), dict):
            check_path_names(d["arms"], "arms", str(path), marks)
    data = deep_merge(resolve_config_paths(data, path, "experiment", ov), ov)
    marks = mark_overridden(marks, ov)
    source = str(path)
    arms = data.get("arms")
    if isinstance(arms, dict):
        for arm, spec in arms.items():
            if isinstance(spec, dict) and set(spec) == {"data"}:
                arms[arm] = spec = spec["data"]
            if not isinstance(spec, str):
                raise UserError(f"{source}:{marks.get(f'arms.{arm}', 1)}: arms.{arm} must be "
                                "the path of a chat JSONL of example conversations")
    cfg = build_dataclass(IclConfig, data, source=source, marks=marks)
    require_model(data, "base_model", source, marks)
    if isinstance(data.get("judge"), dict):
        build_dataclass(JudgeConfig, data["judge"], source=source, marks=marks, prefix="judge.")
    if not cfg.arms:
        raise UserError(f"{source}: no arms (arms: {{NAME: FILE}} of example conversations)")
    if BASE_ARM in cfg.arms:
        raise UserError(f"{source}:{marks.get(f'arms.{BASE_ARM}', 1)}: arms.{BASE_ARM}: "
                        "reserved for k = 0 (the plain question)")
    if not cfg.seeds:
        raise UserError(f"{source}:{marks.get('seeds', 1)}: seeds is empty")
    if not cfg.suites:
        raise UserError(f"{source}: no suites")
    return cfg


# ------------------------------------------------------------------ examples and contexts


def load_examples(path: str | Path) -> list[tuple[dict, ...]]:
    """The example conversations of a chat JSONL: each line's user and assistant turns, in
    order (`FILE:LINE` for a line that has no user turn followed by an assistant turn)."""
    out = []
    for ex in load_jsonl_examples(path, "chat"):
        turns = tuple({"role": m["role"], "content": m["content"]} for m in ex.messages
                      if m["role"] in ("user", "assistant"))
        roles = [t["role"] for t in turns]
        if "user" not in roles or "assistant" not in roles[roles.index("user"):]:
            raise UserError(f"{path}:{ex.line}: an in-context example needs a user turn and "
                            "the assistant's reply")
        out.append(turns)
    return out


def draw(n: int, k: int, seed: int) -> list[int]:
    """The line indices of the k examples of `seed` among n: the first k of a seeded shuffle
    (nested: draw(n, 16, s) == draw(n, 64, s)[:16])."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order[:k]


def condition(k: int) -> str:
    return f"icl_k{k}"


def context(examples: dict, arm: str, k: int, seed: int) -> PromptContext:
    """The sampling condition of (arm, k, seed): the drawn examples' turns before the question."""
    if k == 0:
        return PromptContext(condition(0), (), "", {"icl_arm": None, "icl_k": 0})
    exs = examples[arm]
    turns = tuple(t for i in draw(len(exs), k, seed) for t in exs[i])
    return PromptContext(condition(k), turns, "", {"icl_arm": arm, "icl_k": k})


@dataclass(frozen=True)
class Prepared:
    """What a plan needs: the questions, the arms' examples, the ks that fit, and the token
    count of each k's longest prompt."""

    questions: dict
    examples: dict
    ks: list[int]
    prompt_tokens: dict  # k -> (tokens, arm, seed) of its longest prompt
    limit: int  # the longest prompt that fits: context - max_new_tokens
    context: int
    skipped: dict  # k -> tokens, with skip_too_long


def model_context(cfg: IclConfig) -> int:
    """The model's context in tokens: `context_length`, else max_position_embeddings (or
    n_positions) of its config."""
    if cfg.context_length:
        return cfg.context_length
    from transformers import AutoConfig

    try:
        mc = AutoConfig.from_pretrained(resolve_model_path(cfg.base_model.name),
                                        trust_remote_code=cfg.base_model.trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"base_model.name '{cfg.base_model.name}': cannot read its config "
                        f"({str(e).splitlines()[0]}); set context_length") from None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(mc, key, None) or getattr(getattr(mc, "text_config", None), key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UserError(f"base_model.name '{cfg.base_model.name}': its config gives no context "
                    "length; set context_length")


def _n_tokens(tok, messages: list[dict]) -> int:
    """Tokens of a rendered prompt, counted as the sampler feeds it to the model."""
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tok(text, add_special_tokens=False)["input_ids"])


def prompt_tokens(cfg: IclConfig, questions: dict, examples: dict, tok) -> dict:
    """k -> (tokens, arm, seed) of its longest prompt: the longest question (by its own rendered
    tokens, per system prompt) after each arm's and seed's k examples."""
    longest: dict = {}  # system prompt -> (tokens, messages without context)
    for qs in questions.values():
        for q in qs:
            for text in q.paraphrases:
                msgs = prompt_messages(q, text, cfg.sampling.system_prompt)
                n = _n_tokens(tok, msgs)
                system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
                if system not in longest or n > longest[system][0]:
                    longest[system] = (n, q, text)
    out: dict = {}
    for k in cfg.ks:
        pairs = [(BASE_ARM, s) for s in cfg.seeds[:1]] if k == 0 else \
            [(a, s) for a in cfg.arms for s in cfg.seeds]
        for arm, seed in pairs:
            ctx = context(examples, arm, k, seed)
            for _, q, text in longest.values():
                n = _n_tokens(tok, prompt_messages(q, text, cfg.sampling.system_prompt, ctx))
                if k not in out or n > out[k][0]:
                    out[k] = (n, arm, seed)
    return out


def prepare(cfg: IclConfig) -> Prepared:
    """Read the questions and examples and check every k against the model's context; a
    UserError (one line) for what cannot run. Writes nothing."""
    use_data_root(cfg)
    questions = questions_of(cfg)
    examples = {arm: load_examples(path) for arm, path in cfg.arms.items()}
    for arm, exs in examples.items():
        big = [k for k in cfg.ks if k > len(exs)]
        if big:
            raise UserError(f"arms.{arm}: k={max(big)} needs {max(big)} examples; "
                            f"{cfg.arms[arm]} has {len(exs)}")
    ctx = model_context(cfg)
    limit = ctx - cfg.sampling.max_new_tokens
    counts = prompt_tokens(cfg, questions, examples, load_tokenizer(cfg.base_model))
    long = {k: counts[k] for k in cfg.ks if counts[k][0] > limit}
    if long and not cfg.skip_too_long:
        what = ", ".join(f"k={k} ({n} tokens, arm {a}, seed {s})"
                         for k, (n, a, s) in sorted(long.items()))
        raise UserError(f"ks: {what}: longer than the model's context ({ctx} positions - "
                        f"{cfg.sampling.max_new_tokens} max_new_tokens = {limit} tokens); "
                        "lower ks, or set skip_too_long: true to skip them")
    for k, (n, _, _) in sorted(long.items()):
        log.warning("k=%d skipped: its longest prompt is %d tokens, over %d (context %d - "
                    "max_new_tokens %d)", k, n, limit, ctx, cfg.sampling.max_new_tokens)
    return Prepared(questions, examples, [k for k in cfg.ks if k not in long],
                    {k: counts[k] for k in cfg.ks}, limit, ctx,
                    {k: n for k, (n, _, _) in long.items()})


# ------------------------------------------------------------------ units


_LOADED: dict = {}  # the model of this process's run: loaded once for all its sampling units


def _model(cfg: IclConfig):
    key = json.dumps(to_dict(cfg.base_model), sort_keys=True)
    if key not in _LOADED:
        _release()
        _LOADED[key] = load_for_inference(cfg.base_model)
    return _LOADED[key]


def _release() -> None:
    _LOADED.clear()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _suite_label(name: str) -> str:
    return Path(name).stem if name.endswith((".yaml", ".yml")) else name


def sample_icl(cfg: IclConfig, run: RunDir, prep: Prepared, arm: str, k: int, seed: int,
               progress: bool = True, fingerprint: Optional[str] = None) -> int:
    """Sample every suite question after arm's k examples of draw `seed` (resumable: answers
    already written are skipped)."""
    ctx = context(prep.examples, arm, k, seed)
    n = 0
    for name, qs in prep.questions.items():
        kw = dict(suite=_suite_label(name), arm=arm, seed=seed, cfg=cfg.sampling,
                  fingerprint=fingerprint, context=ctx)
        if cfg.sampling.backend == "vllm":
            n += sample_with_vllm(resolve_model_path(cfg.base_model.name), None, qs,
                                  run.answers_path, **kw)
        else:
            model, tok = _model(cfg)
            n += sample_questions(model, tok, qs, run.answers_path, model_name=cfg.base_model.name,
                                  adapter=None, progress=progress, **kw)
    return n


def judge_cost(cfg: IclConfig, questions: dict, n_conditions: int) -> int:
    """Judge calls at most: every answer of every condition, once per judge prompt of its
    question (none for a rule judge)."""
    if not judge_class(cfg.judge).sends_prompts:
        return 0
    calls = 0
    for name, qs in questions.items():
        prompts = suite_prompts(name)
        calls += sum(q.n_samples * len(prompts.get(q.id, [])) for q in qs)
    return calls * n_conditions


def conditions(cfg: IclConfig, ks: list[int]) -> list[tuple[str, int, int]]:
    """(arm, k, seed) of every sampling unit, in order: k = 0 (shared), then arm x k x seed."""
    out = [(BASE_ARM, 0, s) for s in cfg.seeds if 0 in ks]
    return out + [(a, k, s) for a in cfg.arms for k in ks if k > 0 for s in cfg.seeds]


def icl_units(cfg: IclConfig, run: RunDir, prep: Prepared, *, progress: bool = True,
              figures: bool = True):
    """The units of an `emergent icl` run, in order."""
    sampled = sample_inputs(cfg, prep.questions)
    per_model = sum(q.n_samples for qs in prep.questions.values() for q in qs)
    sha = {arm: data_hash(path) for arm, path in cfg.arms.items()}
    todo = conditions(cfg, prep.ks)
    for arm, k, seed in todo:
        inputs = {**sampled, "icl.k": k, "seed": seed}
        if k:
            inputs.update({f"arms.{arm}": sha[arm], "icl.draw": DRAW})
        yield Unit(f"sample:{arm}:k{k}:seed{seed}", sample_icl, (cfg, run, prep, arm, k, seed),
                   {"progress": progress}, answers=per_model, inputs=inputs,
                   detail=f"{k} examples in context" if k else "no examples",
                   then=_release if (arm, k, seed) == todo[-1] else None).passing_fingerprint()
    yield Unit("judge", judge_run, (cfg, run, prep.questions, progress), always=True,
               judge_calls=judge_cost(cfg, prep.questions, len(todo)),
               inputs=judge_inputs(cfg, prep.questions), on_redo=lambda: prune_judgments(run),
               remote=runs_on_device(cfg.judge))
    yield Unit("metrics", metrics_icl, (cfg, run), always=True)
    if figures:
        yield Unit("figures", draw_all, (run.dir,), {"only": [FIGURE]}, always=True)


UNITS = icl_units  # the `icl` kind of emergent.pipeline.stages


def k_of(condition_name) -> Optional[int]:
    text = str(condition_name or "")
    return int(text[len("icl_k"):]) if text.startswith("icl_k") and text[5:].isdigit() else None


def _with_k(rows: list[dict]) -> list[dict]:
    """Rows with `icl_k` after `condition`, ordered by suite, then k (arms as they were); an
    interval over seeds is over example draws here (no training recipe)."""
    out = []
    for r in rows:
        row = {}
        for key, value in r.items():
            row[key] = value
            if key == "condition":
                row["icl_k"] = k_of(value)
            if key == "ci_over" and str(value or "").startswith("seeds"):
                row[key] = SEED_CI
        out.append(row)
    return sorted(out, key=lambda r: (str(r.get("suite") or ""), r.get("icl_k") or 0))


def metrics_icl(cfg: IclConfig, run: RunDir) -> list[dict]:
    """RUN/summary.csv and RUN/per_question.csv: per suite x condition (icl_kK) x arm, with the
    treatment arm compared with each control at each k."""
    records = [r for r in current_records(run) if k_of(r.get("condition")) is not None]
    summary, per_q = summary_tables(records, cfg.metrics)
    summary = _with_k(summary)
    write_summary(run, summary, _with_k(per_q))
    return summary


# ------------------------------------------------------------------ plan and run


def run_dir_of(cfg: IclConfig, run_dir=None) -> RunDir:
    return RunDir(run_dir or cfg.output_dir, cfg.name)


def plan(cfg: IclConfig, run_dir=None) -> dict:
    """`emergent icl --dry-run`: the units, answers, judge calls, and each k's longest prompt
    against the context (refused ks raise before this returns). Writes nothing."""
    prep = prepare(cfg)
    run = run_dir_of(cfg, run_dir)
    p = make_plan(run, icl_units(cfg, run, prep))
    return {"run_dir": str(run.dir), "units": p.labels, "done_units": p.done,
            "answers": p.answers, "answers_done": len(run.answers()),
            "judge_calls_upper_bound": p.judge_calls, "judgments_done": len(run.judgments()),
            "ks": prep.ks, "skipped_ks": prep.skipped,
            "prompt_tokens_longest": {str(k): n for k, (n, _, _) in prep.prompt_tokens.items()},
            "prompt_tokens_limit": prep.limit,
            "note": "judge calls are an upper bound (no cache hits); the answers' prompts hold "
                    "the in-context examples, the judge sees only question and answer"}


def run_icl(cfg: IclConfig, run_dir=None, *, progress: bool = True, figures: bool = True,
            on_change: str = "refuse", executor: str = LOCAL,
            executor_options: ExecutorOptions = ExecutorOptions()) -> RunDir:
    """Run (or resume) the ICL experiment; returns its run directory. Every check (examples,
    ks against the context, a changed config with `on_change="refuse"`, the executor) comes
    before anything is written. `executor`: `local` (here) or an engine of
    emergent.pipeline.executors (`slurm`, `ray`) running the sampling units as jobs."""
    check_executor(executor, executor_options)
    prep = prepare(cfg)
    run = run_dir_of(cfg, run_dir)
    with run.lock():
        check_changes(run, icl_units(cfg, run, prep, progress=progress, figures=figures),
                      on_change)
        dump_yaml(cfg, run.config_path)
        run.manifest["data"] = {arm: {"path": path, "sha256": file_sha256(path)}
                                for arm, path in cfg.arms.items()}
        run.manifest["config"] = to_dict(cfg)
        run.manifest["icl"] = {"ks": prep.ks, "skipped_ks": prep.skipped,
                               "context": prep.context, "prompt_tokens_limit": prep.limit,
                               "prompt_tokens_longest": {str(k): n for k, (n, _, _)
                                                         in prep.prompt_tokens.items()}}
        run.save()
        try:
            run_units(run, icl_units(cfg, run, prep, progress=progress, figures=figures),
                      functools.partial(icl_units, cfg, prep=prep, progress=False, figures=False),
                      executor, executor_options, on_change)
        finally:
            _release()
        run.manifest["finished"] = now()
        run.save()
    return run
