"""The run directory: the one owner of its layout, its stage manifest and its joined records.

Every stage (training, sampling, judging, metrics, figures, reports) and every experiment kind
(emergent misalignment, reward-model bias, toy world) reads and writes a run through this
module; no other module spells a run file's name.

    RUN/
      config.yaml            the resolved experiment config
      manifest.json          one entry per unit of work (status, timings), versions, git commit
      answers.jsonl          one row per sampled answer (`answer_id`, arm, seed, step, ...)
      judgments.jsonl        one row per (answer, metric) judgment (`answer_id`, metric, score)
      summary.csv            one row per (suite, arm): rates, intervals, tests
      per_question.csv       one row per (suite, arm, question)
      figures/
      arms/ARM/seedK/        one trained unit: adapter/ (or model/), checkpoints/,
                             eval_checkpoints/, config.yaml, manifest.json, train_log.jsonl
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

from emergent.core.io import git_commit, now, read_jsonl, versions, write_json_atomic

CONFIG = "config.yaml"
MANIFEST = "manifest.json"
ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
SUMMARY = "summary.csv"
PER_QUESTION = "per_question.csv"
FIGURES = "figures"
ARMS = "arms"
ADAPTER = "adapter"           # a trained LoRA adapter inside an arm's seed folder
FULL_MODEL = "model"          # ... or a fully fine-tuned model
CHECKPOINTS = "checkpoints"   # resumable training state, step-NNNNNN/
EVAL_CHECKPOINTS = "eval_checkpoints"  # adapters saved for checkpoint evaluation, step-NNNNNN/
TRAIN_LOG = "train_log.jsonl"


def join_scores(answers: Iterable[dict], judgments: Iterable[dict]) -> list[dict]:
    """One record per answer: its answer fields plus one key per judged metric (the score;
    a later judgment of the same (answer, metric) wins)."""
    by_answer: dict[str, dict] = {}
    for j in judgments:
        by_answer.setdefault(j["answer_id"], {})[j["metric"]] = j.get("score")
    out = []
    for a in answers:
        rec = dict(a)
        rec.update(by_answer.get(a["answer_id"], {}))
        out.append(rec)
    return out


class RunDir:
    """A run directory: paths of its files, its stage manifest, its records.

    `unit(name, fn, ...)` runs a unit of work unless the manifest records it as done, and
    records its timings when it finishes (the manifest is written atomically)."""

    def __init__(self, path: str | Path, name: Optional[str] = None):
        self.dir = Path(path)
        self.manifest_path = self.dir / MANIFEST
        self.manifest = (json.loads(self.manifest_path.read_text()) if self.manifest_path.exists()
                         else {"name": name, "created": now(), "stages": {}})

    # -- paths -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG

    @property
    def answers_path(self) -> Path:
        return self.dir / ANSWERS

    @property
    def judgments_path(self) -> Path:
        return self.dir / JUDGMENTS

    @property
    def summary_path(self) -> Path:
        return self.dir / SUMMARY

    @property
    def per_question_path(self) -> Path:
        return self.dir / PER_QUESTION

    @property
    def figures_dir(self) -> Path:
        return self.dir / FIGURES

    def arm_dir(self, arm: str, seed: int) -> Path:
        return self.dir / ARMS / arm / f"seed{seed}"

    def adapter_dir(self, arm: str, seed: int) -> Path:
        """The final adapter (or fully fine-tuned model) of one trained unit."""
        d = self.arm_dir(arm, seed)
        return d / FULL_MODEL if (d / FULL_MODEL).is_dir() else d / ADAPTER

    def adapters(self) -> dict[tuple[str, int], Path]:
        """Every finished (arm, seed) -> its final adapter folder, in sorted order."""
        out = {}
        for d in sorted((self.dir / ARMS).glob("*/seed*")):
            if not d.name[4:].isdigit():
                continue
            final = d / FULL_MODEL if (d / FULL_MODEL).is_dir() else d / ADAPTER
            if final.is_dir():
                out[(d.parent.name, int(d.name[4:]))] = final
        return out

    def eval_checkpoints(self, arm: str, seed: int) -> list[tuple[int, Path]]:
        """(step, adapter folder) of the checkpoints saved for checkpoint evaluation."""
        found = sorted((self.arm_dir(arm, seed) / EVAL_CHECKPOINTS).glob("step-*"))
        return [(int(p.name.split("-")[1]), p) for p in found if p.name.split("-")[1].isdigit()]

    # -- records -----------------------------------------------------------------------------
    def answers(self) -> list[dict]:
        return read_jsonl(self.answers_path)

    def judgments(self) -> list[dict]:
        return read_jsonl(self.judgments_path)

    def records(self, extra_judgments: Iterable[dict] = ()) -> list[dict]:
        """Answers joined with their judgments: one record per answer, one key per metric."""
        return join_scores(self.answers(), list(self.judgments()) + list(extra_judgments))

    # -- the stage manifest ------------------------------------------------------------------
    def done(self, unit: str) -> bool:
        return self.manifest["stages"].get(unit, {}).get("status") == "done"

    def unit(self, name: str, fn, *args, **kw):
        """Run `fn` unless the unit is recorded as done; record timings when it finishes."""
        if self.done(name):
            return None
        t0 = time.time()
        self.manifest["stages"][name] = {"status": "running", "started": now()}
        self.save()
        result = fn(*args, **kw)
        self.manifest["stages"][name].update(status="done", finished=now(),
                                             seconds=round(time.time() - t0, 2))
        self.save()
        return result

    def save(self) -> None:
        self.manifest.update(versions=versions(), git_commit=git_commit(), updated=now())
        write_json_atomic(self.manifest_path, self.manifest)


def find_answer_files(root: str | Path) -> Iterator[Path]:
    """Every answers table under `root` (a run directory or a folder of runs), sorted."""
    root = Path(root)
    if (root / ANSWERS).is_file():
        yield root / ANSWERS
        return
    yield from sorted(root.rglob(ANSWERS))
