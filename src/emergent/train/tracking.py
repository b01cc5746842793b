"""Experiment tracking: `train.report_to: [trackio, wandb, tensorboard]` (off by default).

Each listed tracker receives, per training unit, the rows the loop writes to train_log.jsonl
(every numeric value but `step`, at that step: loss, lr, grad_norm, trained_tokens,
trained_tokens_per_s, padding_fraction, epoch, and an objective's extras such as DPO's), and,
for `emergent run`, one `summary` run holding summary.csv's numbers per (suite, arm) at the end
of the metrics unit (`report_summary`, keys `SUITE/ARM/COLUMN`).

A tracker is a `Tracker` (open/log/close), registered in `BACKENDS`; each imports its library
inside `module()` only, so `import emergent` never loads it, and `check()` turns a missing one
into a one-line UserError naming the pip package before anything is written. Names come from
the run directory (`names`): project = the run's folder name, run = `ARM-seedK` (a standalone
`emergent train OUT`: project = OUT's parent folder, run = OUT's name). Only rank 0 of a
multi-process launch reports (env RANK). Credentials (WANDB_API_KEY, HF_TOKEN, ...) are read by
those libraries from their own environment or login files; emergent passes none and writes
none. Where the data goes is each library's: trackio keeps it on this machine unless
TRACKIO_SPACE_ID/space_id says otherwise, wandb uploads unless WANDB_MODE=offline, tensorboard
writes event files under the unit's folder (`tensorboard/`).
"""
from __future__ import annotations

import logging
import math
import numbers
import os
import re
from pathlib import Path
from typing import Protocol

from emergent.core.config import TRACKERS
from emergent.core.errors import UserError
from emergent.core.redact import redact
from emergent.core.rundir import ARMS, TENSORBOARD

log = logging.getLogger(__name__)

SUMMARY_RUN = "summary"  # the run name of `emergent run`'s summary


class Tracker(Protocol):
    """One experiment tracker: a run opened per training unit (or summary), metrics per step."""

    name: str  # the train.report_to name
    package: str  # what `pip install` needs

    def module(self):
        """Import the library (only here); ImportError when it is missing."""

    def open(self, project: str, run: str, config: dict, log_dir: Path) -> None:
        """Start run `run` of `project`; `log_dir`: the unit's folder (for local files)."""

    def log(self, step: int, metrics: dict) -> None:
        """Record `metrics` (name -> number) at `step`."""

    def close(self) -> None:
        """Finish the run (flush)."""


class TrackioTracker:
    name, package = "trackio", "trackio"

    def module(self):
        import trackio

        return trackio

    def open(self, project, run, config, log_dir):
        self.lib = self.module()
        self.lib.init(project=project, name=run, config=config)

    def log(self, step, metrics):
        self.lib.log(metrics, step=step)

    def close(self):
        self.lib.finish()


class WandbTracker:
    name, package = "wandb", "wandb"

    def module(self):
        import wandb

        return wandb

    def open(self, project, run, config, log_dir):
        self.run = self.module().init(project=project, name=run, config=config)

    def log(self, step, metrics):
        self.run.log(metrics, step=step)

    def close(self):
        self.run.finish()


class TensorBoardTracker:
    name, package = "tensorboard", "tensorboard"

    def module(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter

    def open(self, project, run, config, log_dir):
        self.writer = self.module()(log_dir=str(Path(log_dir) / TENSORBOARD))

    def log(self, step, metrics):
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, global_step=step)

    def close(self):
        self.writer.close()


BACKENDS: dict[str, type] = {c.name: c for c in (TrackioTracker, WandbTracker, TensorBoardTracker)}
assert set(BACKENDS) == set(TRACKERS), "core.config.TRACKERS lists the backends of BACKENDS"


def check(report_to) -> None:
    """A UserError naming the pip package of the first listed tracker whose library is missing."""
    for name in report_to or ():
        tracker = BACKENDS[name]()
        try:
            tracker.module()
        except ImportError:
            raise UserError(f"train.report_to: {name} needs the '{tracker.package}' package "
                            f"(pip install {tracker.package})") from None


def is_reporting_process() -> bool:
    """False on the ranks > 0 of a multi-process launch (torchrun/accelerate set RANK)."""
    return os.environ.get("RANK", "0") in ("", "0")


def names(out: Path) -> tuple[str, str]:
    """(project, run name) of a training unit's folder: RUN/arms/ARM/seedK -> (RUN's name,
    ARM-seedK); any other OUT -> (OUT's parent folder name, OUT's name)."""
    out = Path(os.path.abspath(out))
    if out.parent.parent.name == ARMS:
        return _clean(out.parents[2].name), _clean(f"{out.parent.name}-{out.name}")
    return _clean(out.parent.name or "emergent"), _clean(out.name)


def _clean(name: str) -> str:
    """Characters trackers refuse in project names (/ \\ # ? % :) become '-'."""
    return re.sub(r"[/\\#?%:]", "-", name) or "emergent"


def numeric(row: dict, skip=("step",)) -> dict:
    """The finite numeric values of a row (booleans, text and empty cells left out)."""
    return {k: v for k, v in row.items() if k not in skip and isinstance(v, numbers.Real)
            and not isinstance(v, bool) and math.isfinite(v)}


class Trackers:
    """The open trackers of one unit (none: every call is a no-op); a context manager."""

    def __init__(self, trackers=()):
        self.trackers = list(trackers)

    def log(self, step: int, row: dict) -> None:
        metrics = numeric(row)
        for t in self.trackers:
            t.log(step, metrics)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_trackers(report_to, out: Path, config: dict) -> Trackers:
    """Open every tracker of `report_to` for the training unit in `out` (names from `names`),
    with `config` (redacted) as the run's config. None opened off rank 0."""
    return _open(report_to, *names(out), config, Path(out))


def _open(report_to, project: str, run: str, config: dict, log_dir: Path) -> Trackers:
    if not report_to or not is_reporting_process():
        return Trackers()
    check(report_to)
    opened = Trackers()
    try:
        for name in report_to:
            tracker = BACKENDS[name]()
            tracker.open(project, run, redact(config), log_dir)
            opened.trackers.append(tracker)
    except BaseException:
        opened.close()
        raise
    log.info("reporting to %s (project %s, run %s)", ", ".join(report_to), project, run)
    return opened


def report_summary(report_to, run_dir: Path, rows: list[dict], config: dict) -> None:
    """`emergent run`: one `summary` run in the run's project (tensorboard: RUN/tensorboard/)
    holding summary.csv's numbers, keys SUITE/ARM/COLUMN (rate, ci_low, ci_high, n_valid...),
    at step 0."""
    if not report_to or not rows:
        return
    metrics = {f"{r.get('suite', '')}/{r.get('arm', '')}/{k}": v for r in rows
               for k, v in numeric(r, skip=()).items()}
    run_dir = Path(run_dir)
    with _open(report_to, _clean(Path(os.path.abspath(run_dir)).name), SUMMARY_RUN, config,
               run_dir) as trackers:
        for t in trackers.trackers:
            t.log(0, metrics)
