"""Named write points and fault injection: the kill-point test harness's hook.

Every place that writes an artifact of a run calls `fault_point(NAME)` at its most fragile
moment (a temp file written but not yet renamed into place, a row half appended, a judge call
paid but not yet cached). Normally that is a dictionary lookup and nothing else. When the
environment variable `EMERGENT_FAULT` names the point (`NAME`, or `NAME@N` for its N-th hit in
this process), the process dies there at once with `os._exit(137)`, as under SIGKILL: no
`finally`, no atexit, no flush. `EMERGENT_FAULT_LOG=FILE` appends every hit's name to FILE
(how the harness lists the points a run goes through).

`POINTS` is the registry of every point name. tests/core/test_kill_points.py runs a tiny
experiment with the log on, fails when it went through a point missing from the registry (a new
write point without a kill test) or missed a registered one, kills it at every registered point
and checks that a rerun gives the uninterrupted run's summary.
"""
from __future__ import annotations

import os
from typing import IO, Optional

ENV = "EMERGENT_FAULT"
LOG_ENV = "EMERGENT_FAULT_LOG"
EXIT_CODE = 137  # what a shell reports for SIGKILL

# name -> where it is (the harness's list; a new write point gets a name here)
POINTS: dict[str, str] = {
    "write:config.yaml": "a config.yaml (the run's, an arm's): temp written, not renamed",
    "write:manifest.json": "a manifest.json (the run's stage manifest, an arm's): temp written",
    "write:heldout.jsonl": "an arm's held-out split: temp written, not renamed",
    "write:train_log.jsonl": "an arm's train log cut back to its checkpoint on resume",
    "append:train_log.jsonl": "an arm's train log: half a row appended",
    "save:checkpoint": "a training checkpoint: its files written, the folder not renamed",
    "save:eval_checkpoint": "an evaluation checkpoint's adapter: written, not renamed",
    "save:adapter": "an arm's final adapter: written, not renamed",
    "save:merged": "the merged full-model copy (train.save_merged): written, not renamed",
    "append:answers.jsonl": "the answers table: half a row appended",
    "judge:call": "a judge call answered, its reply not yet cached (a call in flight)",
    "append:judge_cache": "the judge cache: before a reply's row is appended",
    "append:judgments.jsonl": "the judgments table: a chunk of rows written, not fsynced",
    "write:summary.csv": "summary.csv: temp written, not renamed",
    "write:per_question.csv": "per_question.csv: temp written, not renamed",
    "write:figure_data": "a figure's data table (figures/NAME.csv): temp written",
    "write:figure": "a figure file (figures/NAME.png, .pdf): temp written, not renamed",
    "write:feature": "RUN/feature/ of `emergent rmbias feature`: written whole, not renamed",
}

_hits: dict[str, int] = {}


def _target() -> tuple[Optional[str], int]:
    spec = os.environ.get(ENV)
    if not spec:
        return None, 0
    name, _, nth = spec.partition("@")
    return name, int(nth) if nth else 1


def fault_point(name: str, flush: Optional[IO] = None) -> None:
    """Die here (exit 137) when EMERGENT_FAULT names this point and hit; `flush`: a file to
    flush first (so a half-written row reaches the disk, as a kill mid-write leaves it)."""
    log_path = os.environ.get(LOG_ENV)
    target, nth = _target()
    if target is None and not log_path:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if log_path:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if name == target and _hits[name] == nth:
        if flush is not None:
            flush.flush()
        os._exit(EXIT_CODE)


def armed() -> bool:
    """True when some fault point is targeted (writers then split a write at the point)."""
    return bool(os.environ.get(ENV) or os.environ.get(LOG_ENV))
