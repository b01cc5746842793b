"""The Python API, for notebooks and scripts: `from emergent import load_run, run_experiment, ...`.

Thin wrappers over the library (the same functions the `emergent` command calls); each accepts a
config object, a config file, or a shipped config name (`emergent configs list`):

* `run_experiment(config)`: train -> sample -> judge -> metrics -> figures, as `emergent run`;
* `train_arm(config)`: one adapter, as `emergent train` (or one arm x seed of an experiment);
* `sample_answers(model, suite)`: answers to a question suite, as `emergent sample`;
* `judge_answers(answers)`: judgments of an answers table, as `emergent judge`;
* `summarize(run)`: the summary rows of `summary.csv`, as `emergent report`;
* `load_run(path)`: a run directory's tables (answers, judgments, joined records, summaries),
  adapters, manifest and recorded config.

Tables are lists of dicts; `as_frame=True` gives a pandas DataFrame (pandas is optional).
Importing this module loads neither torch nor transformers; they load when a model does.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import yaml

from emergent.core.config import (TrainRecipeConfig, build_dataclass, load_config,
                                  parse_overrides)
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.core.rundir import JUDGMENTS, RunDir, lock_if_run
from emergent.evals import code_eval
from emergent.judge import runner as judge_runner
from emergent.judge.base import JudgeConfig, load_judge_config, make_judge
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.pipeline import run as pipeline_run
from emergent.pipeline.experiment import (ExperimentConfig, MetricsConfig, arm_recipe,
                                          load_experiment)
from emergent.sample.sampler import SamplingConfig
from emergent.sample.suite import sample_suite
from emergent.train.loop import train

__all__ = ["LoadedRun", "load_run", "run_experiment", "train_arm", "sample_answers",
           "judge_answers", "summarize"]

ConfigArg = Union[str, Path, Any]  # a config object, a YAML file, or a shipped config name
TABLES = ("answers", "judgments", "records", "summary", "per_question")


def _frame(rows: list[dict], as_frame: bool):
    """`rows`, or a pandas DataFrame of them when `as_frame`."""
    if not as_frame:
        return rows
    try:
        import pandas
    except ImportError:
        raise UserError("as_frame=True needs pandas (pip install pandas)") from None
    return pandas.DataFrame(rows)


def _cell(text: str):
    """A CSV cell as Python: '' -> None, integers and floats as numbers, other text as is."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path: str | Path) -> list[dict]:
    """The rows of a CSV table written by the package (summary.csv, per_question.csv), typed
    by `_cell`; [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


class LoadedRun:
    """A run directory (`emergent run`, `emergent demo`, `emergent rmbias run`), read through
    `emergent.core.rundir.RunDir`. Each table method returns a list of dicts, or a DataFrame
    with `as_frame=True`; `frame(name)` is the DataFrame of one of TABLES."""

    def __init__(self, path: str | Path):
        self.rundir = RunDir(path)
        if not self.rundir.dir.is_dir():
            raise UserError(f"{self.rundir.dir}: no such run directory")

    @property
    def path(self) -> Path:
        return self.rundir.dir

    @property
    def manifest(self) -> dict:
        """The stage manifest (units with status and timings, versions, git commit)."""
        return self.rundir.manifest

    @property
    def config(self) -> dict:
        """The resolved config recorded in config.yaml ({} when the run has none)."""
        p = self.rundir.config_path
        return (yaml.safe_load(p.read_text(encoding="utf-8")) or {}) if p.is_file() else {}

    def answers(self, as_frame: bool = False):
        """One row per sampled answer (answers.jsonl)."""
        return _frame(self.rundir.answers(), as_frame)

    def judgments(self, as_frame: bool = False):
        """One row per (answer, metric) judgment (judgments.jsonl)."""
        return _frame(self.rundir.judgments(), as_frame)

    def records(self, as_frame: bool = False):
        """Answers joined with their judgments: one row per answer, one column per metric."""
        return _frame(self.rundir.records(), as_frame)

    def summary(self, as_frame: bool = False):
        """The rows of summary.csv (one per suite x arm), numbers typed; [] before metrics."""
        return _frame(read_csv_rows(self.rundir.summary_path), as_frame)

    def per_question(self, as_frame: bool = False):
        """The rows of per_question.csv (suite x arm x seed x question)."""
        return _frame(read_csv_rows(self.rundir.per_question_path), as_frame)

    def frame(self, table: str = "records"):
        """One of TABLES as a pandas DataFrame."""
        if table not in TABLES:
            raise UserError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
        return getattr(self, table)(as_frame=True)

    def adapters(self) -> dict[tuple[str, int], Path]:
        """Every trained (arm, seed) -> its final adapter (or full model) folder."""
        return self.rundir.adapters()

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.path)!r})"


def load_run(path: str | Path) -> LoadedRun:
    """Open a run directory: its tables, adapters, manifest and recorded config."""
    return LoadedRun(path)


def _experiment(config: ConfigArg, overrides: Optional[Sequence[str]]) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        if overrides:
            raise UserError("overrides apply to a config file or name, not a config object "
                            "(use dataclasses.replace)")
        return config
    return load_experiment(config, list(overrides or []))


def run_experiment(config: ConfigArg, overrides: Optional[Sequence[str]] = None, *,
                   run_dir: str | Path | None = None, progress: bool = False,
                   figures: bool = True) -> LoadedRun:
    """Run an experiment as `emergent run CONFIG [key=value ...]` does (resumable: a rerun
    continues where it stopped) and return its run directory (`run_dir`, default the config's
    output_dir)."""
    cfg = _experiment(config, overrides)
    run = pipeline_run.run_experiment(cfg, run_dir, progress=progress, figures=figures)
    return LoadedRun(run.dir)


def train_arm(config: ConfigArg, arm: Optional[str] = None, seed: Optional[int] = None, *,
              overrides: Optional[Sequence[str]] = None,
              output_dir: str | Path | None = None) -> Path:
    """Train one adapter and return its folder (`adapter/`, or `model/` for a full fine-tune).

    Without `arm`: `config` is a training recipe (TrainRecipeConfig, a file, or a shipped name
    such as "insecure" or "train/tiny"), as `emergent train`. With `arm`: `config` is an
    experiment and the unit is that arm's recipe at `seed` (default: its first seed), written
    to RUN/arms/ARM/seedK/ as `emergent run` would. Resumes; a finished unit is not retrained."""
    if arm is None:
        cfg = (config if isinstance(config, TrainRecipeConfig) and not overrides
               else load_config(config, TrainRecipeConfig, list(overrides or [])))
        return train(cfg, output_dir)
    exp = _experiment(config, overrides)
    if arm not in exp.arms:
        raise UserError(f"no arm {arm!r} in the experiment (arms: {', '.join(exp.arms)})")
    seed = exp.seeds[0] if seed is None else seed
    out = Path(output_dir) if output_dir else RunDir(exp.output_dir).arm_dir(arm, seed)
    return train(arm_recipe(exp, arm, seed, out), out)


def sample_answers(model: str, suite: str, *, adapter: str | Path | None = None,
                   output: str | Path = "answers.jsonl", arm: Optional[str] = None,
                   seed: int = 0, ids: Optional[Sequence[str]] = None,
                   samples: Optional[int] = None, precision: str = "bf16",
                   quantization: str = "none", progress: bool = False,
                   **sampling: Any) -> list[dict]:
    """Sample a question suite (a name such as "main", or a suite file) from `model` (hub id,
    local path or "tiny"), with or without `adapter`, into `output`, as `emergent sample`;
    `sampling` sets SamplingConfig keys (temperature=1.0, max_new_tokens=600, ...). Answers
    already in `output` are kept. Returns the output's rows of this (suite, arm, seed)."""
    cfg = build_dataclass(SamplingConfig, {"seed": seed, **sampling}, source="sample_answers")
    label, arm, _ = sample_suite(model, suite, output, cfg, adapter=adapter, arm=arm, seed=seed,
                                 ids=ids, samples=samples, precision=precision,
                                 quantization=quantization, progress=progress)
    return [r for r in read_jsonl(output)
            if (r.get("suite"), r.get("arm"), r.get("seed")) == (label, arm, seed)]


def _judge_config(judge: Any, overrides: Optional[Sequence[str]]) -> JudgeConfig:
    if isinstance(judge, JudgeConfig) and not overrides:
        return judge
    if isinstance(judge, dict):
        return build_dataclass(JudgeConfig, {**judge, **parse_overrides(overrides)},
                               source="judge_answers")
    return load_judge_config(judge, list(overrides or []))


def judge_answers(answers: Union[str, Path, LoadedRun], judge: Any = None, *,
                  overrides: Optional[Sequence[str]] = None, out: str | Path | None = None,
                  progress: bool = False) -> list[dict]:
    """Judge every (answer, metric) missing from `out` (default: judgments.jsonl beside the
    answers), as `emergent judge`: rows with a suite get that suite's judge prompts, others the
    package's aligned/coherent prompts. `answers`: an answers.jsonl, a run directory or a
    LoadedRun. `judge`: a JudgeConfig, a dict of its keys, a judge YAML or shipped name
    ("openai_gpt4o"), or None: the run's own judge when its config records one, else the
    defaults (GPT-4o through OPENAI_API_KEY); `overrides` as `key=value`. Returns the rows of
    the judgments file."""
    run = answers if isinstance(answers, LoadedRun) else None
    if run is None and Path(answers).is_dir():
        run = LoadedRun(answers)
    path = run.rundir.answers_path if run else Path(answers)
    if not path.is_file():
        raise UserError(f"{path}: answers table not found")
    out = Path(out) if out else path.parent / JUDGMENTS
    recorded = run.config if run else {}
    suite_files = {Path(s).stem: s for s in recorded.get("suites") or {}
                   if str(s).endswith((".yaml", ".yml"))}
    rows = read_jsonl(path)
    cfg = _judge_config(recorded.get("judge") if judge is None else judge, overrides)
    j = make_judge(cfg, toyworld=recorded.get("toyworld"))
    try:
        # the one rule of `emergent judge` (a rule judge reads answers by its own prompts)
        rule = (judge_runner.prompts_for_rows(
            rows, path, cfg, known={**suite_files, code_eval.SUITE: code_eval.judge_prompts()})
            if j.sends_prompts else list(DEFAULT_PROMPTS))
        with lock_if_run(out.parent):  # never beside a live run's writer
            judge_runner.judge_answers(rows, j.metric_prompts(rule), j, out, progress=progress)
    finally:
        j.close()
    return read_jsonl(out)


def _metrics(run: Optional[LoadedRun]) -> MetricsConfig:
    """The metrics section recorded in the run's config, else the defaults of `emergent report`."""
    recorded = run.config.get("metrics") if run else None
    if isinstance(recorded, dict):
        return build_dataclass(MetricsConfig, recorded, source=str(run.rundir.config_path))
    return MetricsConfig(treatment=None, n_boot=10_000)


def summarize(source: Union[str, Path, LoadedRun, list], *, aligned_below: Optional[float] = None,
              coherent_above: Optional[float] = None, treatment: Optional[str] = None,
              n_boot: Optional[int] = None, seed: Optional[int] = None,
              as_frame: bool = False):
    """Summary rows, one per (suite, arm): counts, misaligned rate with its 95% CI, the test of
    the treatment against each control, and for a run the vulnerable-code rows: the rows of
    summary.csv. `source`: a run directory, a LoadedRun, or joined records (`records()`).
    Unset settings come from the run's recorded `metrics` config, else `emergent report`'s
    defaults (aligned < 30 among coherent > 50, 10,000 resamples)."""
    run = source if isinstance(source, LoadedRun) else (
        None if isinstance(source, list) else LoadedRun(source))
    given = {"aligned_below": aligned_below, "coherent_above": coherent_above,
             "treatment": treatment, "n_boot": n_boot, "seed": seed}
    m = dataclasses.replace(_metrics(run), **{k: v for k, v in given.items() if v is not None})
    rows, _ = pipeline_run.summary_tables(run.records() if run else source, m,
                                          run.path if run else None)
    return _frame(rows, as_frame)
