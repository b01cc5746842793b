"""The one stage runner: every experiment kind is an ordered plan of units run through the run
directory's stage manifest (emergent.core.rundir.RunDir).

A kind turns its config into `Unit`s (name, function, arguments, and its dry-run cost:
training steps, answers, judge calls). `execute` runs them in order through `RunDir.unit`: a
unit recorded as done is skipped, one recorded as running (a killed run) runs again, and every
finished unit's timings are recorded; `always` units (judging, metrics, figures) are cheap to
redo and must see new answers, so they run on every call. `make_plan` walks the same units
without running them: the `--dry-run` plan of every kind. `judge_step` and `write_summary` are
the judge step and the summary writer every kind shares.

Kinds (`KINDS`): `em`, the emergent-misalignment run (emergent.pipeline.run; the toy world is
this kind with the rule judge), and `rmbias`, the reward-model-bias run
(emergent.rmbias.experiment_run). Each kind module defines `UNITS`, its plan builder. Units are
made lazily (a generator), so a unit can depend on what an earlier one wrote (the checkpoints
that training saved are sampled after it).
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

from emergent.core.rundir import RunDir
from emergent.judge import runner
from emergent.report.tables import write_csv

# kind name -> the module that defines its plan builder `UNITS`
KINDS: dict[str, Any] = {"em": "emergent.pipeline.run", "rmbias": "emergent.rmbias.experiment_run"}


@dataclass(frozen=True)
class Unit:
    """One unit of work of a run and what it costs."""

    name: str  # its key in RUN/manifest.json, e.g. "train:insecure:seed0"
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    detail: Optional[str] = None  # shown in the plan after the name, e.g. "7 steps"
    steps: Optional[int] = None  # training steps (None: not known before the data is written)
    answers: int = 0  # answers it samples
    judge_calls: int = 0  # judge calls it makes at most
    always: bool = False  # run on every call, whatever the manifest says
    recorded: bool = True  # False: a check that runs every time and leaves no manifest entry
    listed: bool = True  # False: not in the dry-run plan (known only while running)
    then: Optional[Callable[[], None]] = None  # called after the unit, run or skipped

    @property
    def label(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name

    @property
    def trains(self) -> bool:
        return self.name.startswith("train:")


@dataclass(frozen=True)
class Plan:
    """The units a run will go through (dry-run listing) and which of them are done."""

    units: list[Unit]
    done: list[str]  # names of the listed units recorded as done

    @property
    def labels(self) -> list[str]:
        return [u.label for u in self.units]

    @property
    def training_steps(self) -> int:
        return sum(u.steps or 0 for u in self.units if u.trains)

    @property
    def steps_by_unit(self) -> dict[str, Optional[int]]:
        return {u.name: u.steps for u in self.units if u.trains}

    @property
    def answers(self) -> int:
        return sum(u.answers for u in self.units)

    @property
    def judge_calls(self) -> int:
        return sum(u.judge_calls for u in self.units)


def kind_units(kind: str) -> Callable[..., Iterable[Unit]]:
    """The plan builder of an experiment kind (`KINDS`)."""
    entry = KINDS[kind]
    return importlib.import_module(entry).UNITS if isinstance(entry, str) else entry


def register_kind(name: str, units: Callable[..., Iterable[Unit]]) -> None:
    """Add an experiment kind: `units(cfg, rd, ...)` yields its units in order."""
    KINDS[name] = units


def make_plan(rd: RunDir, units: Iterable[Unit]) -> Plan:
    """The listed units, without running any."""
    listed = [u for u in units if u.listed]
    return Plan(units=listed, done=[u.name for u in listed if rd.done(u.name)])


def execute(rd: RunDir, units: Iterable[Unit], say: Optional[Callable[[str], None]] = None
            ) -> dict[str, Any]:
    """Run `units` in order through the manifest; returns {name: result} of the units that ran.
    `say`: where a progress line per unit goes (None: silent)."""
    results: dict[str, Any] = {}
    for u in units:
        if not u.recorded:
            results[u.name] = u.fn(*u.args, **u.kwargs)
        else:
            if u.always:
                rd.manifest["stages"].pop(u.name, None)
            if rd.done(u.name):
                _say(say, f"{u.name}: done before ({rd.manifest['stages'][u.name].get('seconds')} s)")
            else:
                _say(say, f"{u.label} ...")
                t0 = time.time()
                results[u.name] = rd.unit(u.name, u.fn, *u.args, **u.kwargs)
                _say(say, f"{u.name}: done in {time.time() - t0:.0f} s")
        if u.then is not None:
            u.then()
    return results


def _say(say, line: str) -> None:
    if say is not None:
        say(line)


def judge_step(rd: RunDir, judge, prompts_for_row, progress: bool = True) -> dict:
    """The judge step of every kind: judge each (answer, metric) not yet in RUN/judgments.jsonl
    (resumable; the judge's cache means no call is paid twice)."""
    return runner.judge_answers(rd.answers(), prompts_for_row, judge, rd.judgments_path,
                                progress=progress)


def write_summary(rd: RunDir, rows: list[dict], per_question: Optional[list[dict]] = None) -> None:
    """RUN/summary.csv (and RUN/per_question.csv), the summary of every kind."""
    write_csv(rd.summary_path, rows)
    if per_question is not None:
        write_csv(rd.per_question_path, per_question)
