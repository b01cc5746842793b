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
      judgments_bandit.jsonl the static scan's verdicts on code answers (metric `vulnerable`)
      capabilities.jsonl     lm-eval scores, one row per (arm, seed, task, metric, filter)
      figures/
      directions/ARM.safetensors  misalignment directions (`emergent direction`)
      arms/ARM/seedK/        one trained unit: adapter/ (or model/), checkpoints/,
                             eval_checkpoints/, config.yaml, manifest.json, train_log.jsonl
      parts/UNIT.jsonl       a sampling unit's answers (a judge job's judgments) written by a
                             worker of an executor
                             (emergent.pipeline.executors), merged into answers.jsonl
                             (judgments.jsonl)
      jobs/                  the executor's job files and worker logs (submitit, Ray)
      logs/judge_server.log  the output of the judge server the run starts (`judge.server`)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import yaml

try:
    import fcntl
except ImportError:  # pragma: no cover  (not POSIX: no lock)
    fcntl = None

from emergent.core.config import ModelConfig, path_name_problem
from emergent.core.errors import UserError
from emergent.core.io import clean_temp, git_commit, now, read_jsonl, versions, write_json_atomic
from emergent.core.redact import redact

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
TENSORBOARD = "tensorboard"  # event files of train.report_to: [tensorboard] (a unit's, the run's)
BANDIT_JUDGMENTS = "judgments_bandit.jsonl"  # the static scan's verdicts on code answers
CAPABILITIES = "capabilities.jsonl"
DIRECTIONS = "directions"
PARTS = "parts"  # RUN/parts/UNIT.jsonl: a worker's answers or judgments, before the coordinator
#                 merges them
JOBS = "jobs"  # RUN/jobs/: an executor's job files and worker logs
LOGS = "logs"  # RUN/logs/: logs of processes the run starts (a judge server's)
JUDGE_SERVER_LOG = "judge_server.log"  # RUN/logs/judge_server.log: `judge.server`'s output
LOCK = ".lock"  # flock()ed by the process writing the run; pid, host, start time inside

_HELD: dict[str, list] = {}  # resolved run dir -> [lock file descriptor, depth] in this process


def judge_server_log_path(folder: str | Path) -> Path:
    """FOLDER/logs/judge_server.log: where a judge server started by the judging of the
    judgments file in FOLDER (a run directory) writes its output (emergent.judge.server)."""
    return Path(folder) / LOGS / JUDGE_SERVER_LOG


def dedupe_answers(answers: Iterable[dict]) -> list[dict]:
    """One row per answer_id (a later row wins, in the first row's place), so a table with a
    duplicated row (two processes appending, an older version) is never counted twice."""
    by_id: dict = {}
    other = []
    for a in answers:
        if "answer_id" in a:
            by_id[a["answer_id"]] = a
        else:
            other.append(a)
    return list(by_id.values()) + other


def dedupe_judgments(judgments: Iterable[dict]) -> list[dict]:
    """One row per (answer_id, metric) (a later row wins, in the first row's place)."""
    by_key: dict = {}
    other = []
    for j in judgments:
        if "answer_id" in j and "metric" in j:
            by_key[(j["answer_id"], j["metric"])] = j
        else:
            other.append(j)
    return list(by_key.values()) + other


def fingerprint(inputs) -> str:
    """A stable fingerprint of a unit's inputs: sha256 of their canonical JSON, 16 hex digits."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def judgment_fingerprint(answer_fingerprint: Optional[str], judge_fingerprint: str) -> str:
    """The fingerprint of a judgment: the answer's (None for a row without one) and the
    judge's (its identity and prompts)."""
    return fingerprint({"answer": answer_fingerprint, "judge": judge_fingerprint})


def join_scores(answers: Iterable[dict], judgments: Iterable[dict]) -> list[dict]:
    """One record per answer_id: its answer fields plus one key per judged metric (the score;
    a later row of the same answer, or judgment of the same (answer, metric), wins), so
    duplicated rows are never counted twice."""
    by_answer: dict[str, dict] = {}
    for j in judgments:
        by_answer.setdefault(j["answer_id"], {})[j["metric"]] = j.get("score")
    out = []
    for a in dedupe_answers(answers):
        rec = dict(a)
        rec.update(by_answer.get(a["answer_id"], {}))
        out.append(rec)
    return out


@dataclass(frozen=True)
class Unit:
    """One model of a run: the base model (adapter None) or an arm's trained adapter."""
    arm: str
    seed: int
    adapter: Optional[str]
    model: ModelConfig


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: expected a mapping")
    return data


def _model_fields(section) -> dict:
    if isinstance(section, str):
        return {"name": section}
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    return {k: v for k, v in (section or {}).items() if k in names}


def base_model_config(run_dir: str | Path) -> ModelConfig:
    """RUN/config.yaml `base_model` (a mapping of ModelConfig keys, or just a name)."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise UserError(f"{path}: not found (is {run_dir} a run directory?)")
    cfg = _read_yaml(path)
    fields = _model_fields(cfg.get("base_model", cfg.get("model")))
    if not fields.get("name"):
        raise UserError(f"{path}: no base_model.name")
    return ModelConfig(**fields)


def trained_model_config(train_dir: Path, base: Optional[ModelConfig]) -> ModelConfig:
    """The model settings an adapter was trained with (the `model` section of the config.yaml
    in its training folder), the name taken from `base` when given."""
    fields = {}
    if (train_dir / CONFIG).exists():
        fields = _model_fields(_read_yaml(train_dir / CONFIG).get("model"))
    if base is not None:
        fields = {**dataclasses.asdict(base), **{k: v for k, v in fields.items() if k != "name"}}
    if not fields.get("name"):
        raise UserError(f"{train_dir}: cannot tell the base model; pass --base MODEL")
    return ModelConfig(**fields)


def _final_dir(arm_seed_dir: Path) -> Path:
    """The final adapter folder of a trained unit, or its fully fine-tuned model folder."""
    full = arm_seed_dir / FULL_MODEL
    return full if full.is_dir() else arm_seed_dir / ADAPTER


class RunDir:
    """A run directory: paths of its files, its stage manifest, its records.

    `unit(name, fn, ...)` runs a unit of work unless the manifest records it as done, and
    records its timings when it finishes (the manifest is written atomically). The manifest
    is read when first used, so reading a run's tables never depends on it."""

    def __init__(self, path: str | Path, name: Optional[str] = None):
        self.dir = Path(path)
        self.manifest_path = self.dir / MANIFEST
        self._name = name
        self._manifest: Optional[dict] = None
        # the fingerprint (and inputs) of every unit of the current plan, filled by the stage
        # runner (emergent.pipeline.stages.execute) as it goes; recorded by `unit`
        self.fingerprints: dict[str, str] = {}
        self.unit_inputs: dict[str, dict] = {}

    @property
    def manifest(self) -> dict:
        """The stage manifest (a fresh one when the run has none yet)."""
        if self._manifest is None:
            self._manifest = self._read_manifest()
        return self._manifest

    @manifest.setter
    def manifest(self, value: dict) -> None:
        self._manifest = value

    def _read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"name": self._name, "created": now(), "stages": {}}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{self.manifest_path}:{e.lineno}: invalid JSON ({e.msg}); the "
                            "stage manifest is damaged") from None

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

    @property
    def bandit_judgments_path(self) -> Path:
        return self.dir / BANDIT_JUDGMENTS

    @property
    def capabilities_path(self) -> Path:
        return self.dir / CAPABILITIES

    @property
    def directions_dir(self) -> Path:
        return self.dir / DIRECTIONS

    @property
    def arms_dir(self) -> Path:
        return self.dir / ARMS

    def part_path(self, unit: str) -> Path:
        """RUN/parts/UNIT.jsonl: the answers a worker samples for one unit (a judge job: the
        judgments table it completes)."""
        return self.dir / PARTS / f"{unit}.jsonl"

    @property
    def jobs_dir(self) -> Path:
        return self.dir / JOBS

    def is_trained_run(self) -> bool:
        """A run directory with a config and trained arms (not a single adapter's folder)."""
        return self.config_path.exists() and self.arms_dir.is_dir()

    def arm_dir(self, arm: str, seed: int) -> Path:
        """RUN/arms/ARM/seedK; refuses an arm name that is not one path part (`..`, `a/b`) or
        a path that would leave RUN/arms (belt and braces: configs check names at load)."""
        problem = path_name_problem(arm)
        path = self.dir / ARMS / str(arm) / f"seed{seed}"
        inside = os.path.normpath(self.dir / ARMS) + os.sep
        if problem is None and not os.path.normpath(path).startswith(inside):
            problem = f"{arm!r} leads outside {self.dir / ARMS}"
        if problem:
            raise UserError(f"arm {problem}")
        return path

    def train_log_path(self, arm: str, seed: int) -> Path:
        return self.arm_dir(arm, seed) / TRAIN_LOG

    def adapter_dir(self, arm: str, seed: int) -> Path:
        """The final adapter (or fully fine-tuned model) of one trained unit."""
        return _final_dir(self.arm_dir(arm, seed))

    def adapters(self) -> dict[tuple[str, int], Path]:
        """Every finished (arm, seed) -> its final adapter folder, in sorted order."""
        out = {}
        for d in sorted((self.dir / ARMS).glob("*/seed*")):
            if not d.name[4:].isdigit():
                continue
            final = _final_dir(d)
            if final.is_dir():
                out[(d.parent.name, int(d.name[4:]))] = final
        return out

    def eval_checkpoints(self, arm: str, seed: int) -> list[tuple[int, Path]]:
        """(step, adapter folder) of the checkpoints saved for checkpoint evaluation."""
        found = sorted((self.arm_dir(arm, seed) / EVAL_CHECKPOINTS).glob("step-*"))
        return [(int(p.name.split("-")[1]), p) for p in found if p.name.split("-")[1].isdigit()]

    def base_model(self) -> ModelConfig:
        """The run's base model (config.yaml `base_model`)."""
        return base_model_config(self.dir)

    def units(self, arms: Optional[list[str]] = None, include_base: bool = True) -> list[Unit]:
        """The base model (arm "base", seed 0) and every finished (arm, seed) adapter of `arms`
        (all by default), each with the model settings it was trained with. The base is loaded
        as the arms were (4-bit when they were trained in 4-bit)."""
        base = self.base_model()
        units = [Unit(arm, seed, str(ad), trained_model_config(ad.parent, base))
                 for (arm, seed), ad in self.adapters().items() if arms is None or arm in arms]
        if include_base and (arms is None or "base" in arms):
            like = units[0].model if units else base
            units.insert(0, Unit("base", 0, None, dataclasses.replace(
                base, quantization=like.quantization, precision=like.precision)))
        return units

    # -- records -----------------------------------------------------------------------------
    def answers(self) -> list[dict]:
        """The answers table, one row per answer_id (`dedupe_answers`)."""
        return dedupe_answers(read_jsonl(self.answers_path))

    def judgments(self) -> list[dict]:
        """The judgments table, one row per (answer_id, metric) (`dedupe_judgments`)."""
        return dedupe_judgments(read_jsonl(self.judgments_path))

    def records(self, extra_judgments: Iterable[dict] = ()) -> list[dict]:
        """Answers joined with their judgments: one record per answer, one key per metric."""
        return join_scores(self.answers(), list(self.judgments()) + list(extra_judgments))

    # -- the lock ----------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.dir / LOCK

    @contextmanager
    def lock(self):
        """Hold the run's exclusive lock (an flock on RUN/.lock) while writing into it; another
        process holding it is a one-line UserError. The OS drops the lock when its holder dies,
        so a killed run's lock is never stale: the next run takes it over. Re-entrant within a
        process. On taking it, the temp files a killed writer left are removed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        key = str(self.dir.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield self
            finally:
                _HELD[key][1] -= 1
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                    raise UserError(f"{self.dir}: in use by {_holder_text(holder)} (another "
                                    "emergent run?)") from None
            info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "since": now()}) + "\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
            clean_temp(self.dir)
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = [fd, 1]
        try:
            yield self
        finally:
            del _HELD[key]
            os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock

    # -- the stage manifest ------------------------------------------------------------------
    def done(self, unit: str) -> bool:
        """Recorded as done, under the fingerprint the current plan expects (when it expects
        one; an entry written before fingerprints were recorded is taken as it is)."""
        entry = self.manifest["stages"].get(unit, {})
        expected, recorded = self.fingerprints.get(unit), entry.get("fingerprint")
        return entry.get("status") == "done" and (expected is None or recorded in (None, expected))

    def unit(self, name: str, fn, *args, **kw):
        """Run `fn` unless the unit is recorded as done; record timings when it finishes."""
        if self.done(name):
            return None
        t0 = time.time()
        self.start_unit(name)
        result = fn(*args, **kw)
        self.finish_unit(name, time.time() - t0)
        return result

    def start_unit(self, name: str, **extra) -> None:
        """Record a unit as running (with its fingerprint and inputs, before it writes
        anything; `extra`: e.g. the executor's job id)."""
        self.manifest["stages"][name] = {"status": "running", "started": now(), **extra}
        if name in self.fingerprints:  # what the unit is made of, before it writes anything
            self.manifest["stages"][name].update(fingerprint=self.fingerprints[name],
                                                 inputs=self.unit_inputs.get(name, {}))
        self.save()

    def finish_unit(self, name: str, seconds: float, **extra) -> None:
        """Record a started unit as done, with its timings (`extra`: e.g. the worker's host)."""
        self.manifest["stages"][name].update(status="done", finished=now(),
                                             seconds=round(seconds, 2), **extra)
        self.save()

    def save(self) -> None:
        """Write the manifest atomically, credentials redacted (the copy in memory keeps them)."""
        self.manifest.update(versions=versions(), git_commit=git_commit(), updated=now())
        write_json_atomic(self.manifest_path, redact(self.manifest))


def _holder_text(raw: str) -> str:
    """'pid N on HOST since T' from a lock file's contents."""
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "another process"


def is_run_dir(path: str | Path) -> bool:
    """True when `path` is a run directory: it holds a stage manifest (manifest.json)."""
    return (Path(path) / MANIFEST).is_file()


def lock_if_run(path: str | Path):
    """The run's lock (`RunDir.lock`) when `path` is a run directory, else a no-op: for the
    commands that write into a folder that may be a run's (`emergent judge`, `report --out`),
    so they never write beside a live run (a folder of another kind gets no `.lock` and no
    temp-file cleaning)."""
    return RunDir(path).lock() if is_run_dir(path) else nullcontext()


def run_units(run_dir: str | Path, arms: Optional[list[str]] = None,
              include_base: bool = True) -> list[Unit]:
    """`RunDir(run_dir).units(arms, include_base)`."""
    return RunDir(run_dir).units(arms, include_base)


def find_answer_files(root: str | Path) -> Iterator[Path]:
    """Every answers table under `root` (a run directory or a folder of runs), sorted."""
    root = Path(root)
    if (root / ANSWERS).is_file():
        yield root / ANSWERS
        return
    yield from sorted(root.rglob(ANSWERS))
