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
this kind with the rule judge), `rmbias`, the reward-model-bias run
(emergent.rmbias.experiment_run), and `icl`, in-context learning without training
(emergent.pipeline.icl). Each kind module defines `UNITS`, its plan builder. Units are
made lazily (a generator), so a unit can depend on what an earlier one wrote (the checkpoints
that training saved are sampled after it).

Fingerprints: a unit's `inputs` are exactly the config values and input hashes it depends on
(dotted config keys -> values; `after:UNIT` -> the fingerprint of a unit it builds on), and its
`fingerprint` is their hash (emergent.core.rundir.fingerprint), recorded in the manifest when the
unit starts. Before a run writes anything, `check_changes` compares every recorded unit (done or
killed while running) with the plan: `on_change="refuse"` (the default) raises one line naming
the run directory, the units and the config keys that differ; `"redo"` lets `execute` redo the
changed units and everything built on them (their outputs and their rows in answers.jsonl /
judgments.jsonl are removed first). Answer and judgment rows carry the fingerprint they were made
under, and `current_answers` / `current_records` (what judging and the summaries read) keep only
rows of the current plan, so a summary never mixes two configs.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from emergent.core.errors import UserError
from emergent.core.io import write_jsonl_atomic
from emergent.core.redact import redact
from emergent.core.rundir import (RunDir, fingerprint, join_scores, judge_server_log_path,
                                  judgment_fingerprint)
from emergent.judge import runner
from emergent.report.tables import write_csv

# kind name -> the module that defines its plan builder `UNITS`
KINDS: dict[str, Any] = {"em": "emergent.pipeline.run", "rmbias": "emergent.rmbias.experiment_run",
                         "icl": "emergent.pipeline.icl"}

ON_CHANGE = ("refuse", "redo")  # what a rerun does when a recorded unit's fingerprint changed
UPSTREAM = "after:"  # inputs key prefix: the fingerprint of a unit this one builds on


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
    # its last step, run where the run's shared tables are written (an executor's coordinator,
    # after merging what the worker's `fn` wrote), before the unit is recorded done: e.g.
    # judging the answers `fn` sampled
    finish: Optional[Callable[[], None]] = None
    # what it depends on: {dotted config key: value, "after:UNIT": that unit's fingerprint};
    # None: nothing recorded (a unit redone on every call, or a check)
    inputs: Optional[Mapping[str, Any]] = None
    outputs: tuple = ()  # files/folders it writes, removed before it is redone
    owns: Optional[Callable[[dict], bool]] = None  # answer rows it wrote (besides its fingerprint)
    on_redo: Optional[Callable[[], None]] = None  # called before it is redone for a change
    # True: an executor runs it as a job although it is no training or sampling unit (a judge
    # that loads a model or starts a server, emergent.judge.base.runs_on_device: the GPUs are
    # on the workers); local runs ignore it
    remote: bool = False

    @property
    def fingerprint(self) -> Optional[str]:
        return None if self.inputs is None else fingerprint(self.recorded_inputs)

    @property
    def recorded_inputs(self) -> Optional[dict]:
        """Its inputs as the manifest keeps them (credentials in URLs redacted)."""
        if self.inputs is None:
            return None
        return json.loads(json.dumps(redact(dict(self.inputs)), default=str))  # as read back

    def passing_fingerprint(self, key: str = "fingerprint") -> "Unit":
        """This unit with its fingerprint passed to `fn` as `key` (written to its rows)."""
        return dataclasses.replace(self, kwargs={**self.kwargs, key: self.fingerprint})

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
    """The listed units, without running any (a unit whose config changed is not done)."""
    listed = []
    for u in units:
        expect_fingerprint(rd, u)
        if u.listed:
            listed.append(u)
    return Plan(units=listed, done=[u.name for u in listed if rd.done(u.name)])


@dataclass(frozen=True)
class Change:
    """A recorded unit whose fingerprint differs from the plan's."""

    unit: str
    keys: list[str]  # the config keys that differ (empty: only a unit it builds on changed)
    values: dict  # key -> (recorded, now)


def changes(rd: RunDir, units: Iterable[Unit]) -> list[Change]:
    """Every unit of `units` recorded in the manifest (done, or started and killed) under
    another fingerprint than the one it has now. Writes nothing."""
    out = []
    for u in units:
        fp = u.fingerprint
        old = rd.manifest["stages"].get(u.name) or {}
        if fp is None or old.get("fingerprint") in (None, fp):
            continue
        before, now_ = old.get("inputs") or {}, u.recorded_inputs
        keys = sorted(k for k in set(before) | set(now_)
                      if not k.startswith(UPSTREAM) and before.get(k) != now_.get(k))
        out.append(Change(u.name, keys, {k: (before.get(k), now_.get(k)) for k in keys}))
    return out


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def change_message(rd: RunDir, found: list[Change]) -> str:
    """One line: the run directory, the units whose config changed, the keys that differ."""
    values: dict = {}
    for c in found:
        values.update(c.values)
    keys = ", ".join(f"{k} ({_short(a)} -> {_short(b)})" for k, (a, b) in sorted(values.items()))
    direct = [c.unit for c in found if c.keys]
    rest = len(found) - len(direct)
    units = ", ".join(direct) + (f" and {rest} unit(s) built on them" if rest and direct else "")
    if not direct:
        units = ", ".join(c.unit for c in found)
    return (f"{rd.dir}: this run directory was made with different {keys or 'inputs'} "
            f"(units {units}); rerun with --on-change redo to redo them and what depends on "
            "them, or use another output_dir")


def check_changes(rd: RunDir, units: Iterable[Unit], on_change: str = "refuse") -> list[Change]:
    """Before a run writes anything: with `refuse`, a UserError naming the units and keys that
    differ from what was recorded; with `redo`, the changes (which `execute` redoes)."""
    if on_change not in ON_CHANGE:
        raise UserError(f"on_change must be one of {', '.join(ON_CHANGE)}, got {on_change!r}")
    found = changes(rd, units)
    if found and on_change == "refuse":
        raise UserError(change_message(rd, found))
    return found


def expect_fingerprint(rd: RunDir, u: Unit) -> None:
    """Tell the run directory the fingerprint the plan expects of `u` (recorded by RunDir.unit,
    compared by RunDir.done)."""
    fp = u.fingerprint
    if fp is not None:
        rd.fingerprints[u.name] = fp
        rd.unit_inputs[u.name] = u.recorded_inputs


def execute(rd: RunDir, units: Iterable[Unit], say: Optional[Callable[[str], None]] = None,
            on_change: str = "refuse") -> dict[str, Any]:
    """`_execute_units` holding the run directory's lock (`RunDir.lock`): one writer per run
    directory; a second process gets a one-line UserError before anything is written."""
    with rd.lock():
        return _execute_units(rd, units, say, on_change)


def _execute_units(rd: RunDir, units: Iterable[Unit], say: Optional[Callable[[str], None]] = None,
                   on_change: str = "refuse") -> dict[str, Any]:
    """Run `units` in order through the manifest; returns {name: result} of the units that ran.
    `say`: where a progress line per unit goes (None: silent). A recorded unit whose
    fingerprint changed is refused (`on_change="refuse"`) or redone with what was built on it
    (`"redo"`): call `check_changes` first so that a refusal comes before anything is written."""
    results: dict[str, Any] = {}
    for u in units:
        expect_fingerprint(rd, u)
        if not u.recorded:
            results[u.name] = u.fn(*u.args, **u.kwargs)
        elif to_run(rd, u, say, on_change):
            _say(say, f"{u.label} ...")
            t0 = time.time()
            results[u.name] = rd.unit(u.name, whole, u)
            _say(say, f"{u.name}: done in {time.time() - t0:.0f} s")
        if u.then is not None:
            u.then()
    return results


def whole(u: Unit) -> Any:
    """Run a unit here: its `fn`, then its `finish`; returns what `fn` returned."""
    result = u.fn(*u.args, **u.kwargs)
    if u.finish is not None:
        u.finish()
    return result


def to_run(rd: RunDir, u: Unit, say: Optional[Callable[[str], None]] = None,
           on_change: str = "refuse") -> bool:
    """Before a recorded unit runs (here or on an executor's worker): a changed config refused
    or undone (`on_change`), an `always` unit's entry dropped; False when it is done."""
    expect_fingerprint(rd, u)
    found = changes(rd, [u])
    if found:
        if on_change != "redo":
            raise UserError(change_message(rd, found))
        _say(say, f"{u.name}: config changed ({', '.join(found[0].keys) or 'inputs'}); "
                  "redoing it")
        invalidate(rd, u)
    if u.always:
        rd.manifest["stages"].pop(u.name, None)
    if rd.done(u.name):
        _say(say, f"{u.name}: done before ({rd.manifest['stages'][u.name].get('seconds')} s)")
        return False
    return True


def invalidate(rd: RunDir, u: Unit) -> None:
    """Undo a recorded unit before it is redone: its outputs, its answer rows (and their
    judgments), and, the same way, every recorded unit built on it; the manifest entries go."""
    for path in u.outputs:
        _remove(Path(path))
    _drop_units(rd, {u.name}, u.owns)
    if u.on_redo is not None:
        u.on_redo()


def _drop_units(rd: RunDir, names: set, owns=None) -> None:
    """Remove the manifest entries of `names` and of every entry built on them (transitively),
    with the answer rows written under their fingerprints and those answers' judgments."""
    stages = rd.manifest["stages"]
    todo, gone = list(names), set()
    while todo:
        name = todo.pop()
        if name in gone:
            continue
        gone.add(name)
        todo += [n for n, e in stages.items()
                 if f"{UPSTREAM}{name}" in (e.get("inputs") or {}) and n not in gone]
    fps = {stages[n].get("fingerprint") for n in gone if n in stages} - {None}
    answers = rd.answers()
    drop = [a for a in answers if a.get("fingerprint") in fps or (owns is not None and owns(a))]
    if drop:
        ids = {a["answer_id"] for a in drop}
        write_jsonl_atomic(rd.answers_path, [a for a in answers
                                             if not (a.get("fingerprint") in fps
                                                     or (owns is not None and owns(a)))])
        judgments = rd.judgments()
        if any(j.get("answer_id") in ids for j in judgments):
            write_jsonl_atomic(rd.judgments_path,
                               [j for j in judgments if j.get("answer_id") not in ids])
    for n in gone:
        stages.pop(n, None)
    rd.save()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        trash = path.with_name(f".{path.name}.redo")  # rename first: never half a folder
        if trash.exists():
            shutil.rmtree(trash)
        path.rename(trash)
        shutil.rmtree(trash)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prune_judgments(rd: RunDir) -> None:
    """Keep only the judgments of the current answers by the current judge (a changed judge
    or judge prompt, redone: the old judge's rows go)."""
    judgments = rd.judgments()
    keep = current_judgments(rd, current_answers(rd), judgments)
    if len(keep) != len(judgments):
        write_jsonl_atomic(rd.judgments_path, keep)


def current_answers(rd: RunDir, answers: Optional[list[dict]] = None) -> list[dict]:
    """The answer rows of the current plan: made under the fingerprint of a unit of it (rows
    without one, written before fingerprints were recorded, are kept). Outside a run (no
    fingerprints known): every row."""
    rows = rd.answers() if answers is None else answers
    if not rd.fingerprints:
        return rows
    valid = set(rd.fingerprints.values())
    return [a for a in rows if a.get("fingerprint", None) is None or a["fingerprint"] in valid]


def current_judgments(rd: RunDir, answers: list[dict],
                      judgments: Optional[list[dict]] = None) -> list[dict]:
    """The judgments made by the current judge (unit `judge`) of these answers, as they are."""
    rows = rd.judgments() if judgments is None else judgments
    judge = rd.fingerprints.get("judge")
    if judge is None:
        return rows
    expected = {a["answer_id"]: judgment_fingerprint(a.get("fingerprint"), judge) for a in answers}
    return [j for j in rows if j.get("fingerprint") is not None
            and j.get("fingerprint") == expected.get(j.get("answer_id"))]


def current_records(rd: RunDir) -> list[dict]:
    """`RunDir.records()` of the current plan: current answers joined with current judgments."""
    answers = current_answers(rd)
    return join_scores(answers, current_judgments(rd, answers))


def _say(say, line: str) -> None:
    if say is not None:
        say(line)


def judge_step(rd: RunDir, judge, prompts_for_row, progress: bool = True) -> dict:
    """The judge step of every kind: judge each (answer, metric) not yet in RUN/judgments.jsonl
    (resumable: the judge's cache holds every reply received, so a rerun after a kill pays
    again only the calls that were in flight at the kill). Only the current answers are judged,
    and each row carries its judgment fingerprint (the answer's and the judge unit's). On an
    executor's worker (a judge on the device) `rd.judgments_path` is the job's part, a copy of
    the table the coordinator puts in its place."""
    server = getattr(judge, "server", None)
    if server is not None and server.log_path is None:  # RUN/logs/, also from a worker's part
        server.log_path = judge_server_log_path(rd.dir)
    return runner.judge_answers(current_answers(rd), prompts_for_row, judge, rd.judgments_path,
                                progress=progress, fingerprint=rd.fingerprints.get("judge"))


def write_summary(rd: RunDir, rows: list[dict], per_question: Optional[list[dict]] = None) -> None:
    """RUN/summary.csv (and RUN/per_question.csv), the summary of every kind."""
    write_csv(rd.summary_path, rows)
    if per_question is not None:
        write_csv(rd.per_question_path, per_question)
