"""Executors: the heavy units of a run as jobs of an existing engine (SLURM through submitit,
Ray), the run directory and its manifest staying the single source of truth.

`run_units` is how every kind runs its plan (`emergent run`, `emergent icl`, `emergent rmbias
run`, each with `--executor local|slurm|ray`): `local`, the default, is the sequential runner of
emergent.pipeline.stages, unchanged. Otherwise the command's process is the coordinator: it
holds the run's lock (`RunDir.lock`), walks the one plan of the run (the kind's units, in
order) and sends each unit a worker may run (`is_remote`: training `train:...`, sampling
`sample:...`, the code evaluation's sampling `code_eval`, lm-eval `capabilities`, and the judge
unit when the judge needs the device) to the engine as one job, once the units it builds on
(its `after:` inputs) are done; every other unit (data preparation, an API judge, metrics,
scoring, figures) and every unit's `finish` step (the code evaluation's bandit scan, and its
judging by an API judge) run in the coordinator, a unit after all jobs before it have finished.

Judging has one writer at a time, so no prompt is sent twice. An API judge (`openai` at a
server that is already up, the rule judges) judges in the coordinator. A judge that needs the
GPU (`hf`, or a `judge.server` the run starts; emergent.judge.base.runs_on_device) is a job
like training: it starts after every job before it has finished, and the coordinator waits for
it before the next unit. Its worker judges into RUN/parts/judge.jsonl, a copy of
RUN/judgments.jsonl made before the job (with what a killed judge job had already written),
and the coordinator replaces RUN/judgments.jsonl with it, atomically, when the job returns.

A job (`run_one_unit`, in a worker process) rebuilds the plan from the pickled config, checks
that its unit has the fingerprint the coordinator expects, and runs that one unit's `fn`. A
worker never takes the lock nor writes RUN/manifest.json (`WorkerRunDir` refuses to): it writes
only its unit's own outputs (training: its arm folder; capabilities: RUN/capabilities.jsonl),
and the answers of a sampling unit go to its part RUN/parts/UNIT.jsonl instead of
RUN/answers.jsonl (`RunDir.part_path`); it returns its timings. The coordinator records each
finished unit in the manifest itself; an answering unit's part is first merged into
answers.jsonl (appended, fsynced, rows already there skipped), in plan order, so answers.jsonl
is the sequential run's table. A unit recorded done is never redone; a unit whose worker died
(killed, lost node, time limit) stays `running` in the manifest, is reported in one line, and is
redone by the next run: training resumes from its last checkpoint, sampling from the rows its
part holds, capabilities from the tasks already in its table.

`EXECUTORS` is the registry (name -> class implementing `Executor`); the engines' libraries are
imported inside the classes (pip extra `emergent-misalignment[cluster]`).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from emergent.core.errors import UserError
from emergent.core.io import append_jsonl, read_jsonl, write_jsonl_atomic
from emergent.core.rundir import RunDir, dedupe_answers
from emergent.pipeline.stages import UPSTREAM, Unit, execute, expect_fingerprint, to_run

log = logging.getLogger(__name__)

EXTRA = "emergent-misalignment[cluster]"
LOCAL = "local"  # the sequential runner (no executor)
REMOTE = ("train:", "sample:", "code_eval", "capabilities")  # units a worker runs (names or
#                                   name prefixes), and those marked `Unit.remote`; every other
#                                   unit runs in the coordinator
ANSWERING = ("sample:", "code_eval")  # units whose answers come back as a part file, merged in
#                                       plan order
JUDGING = ("judge",)  # units whose judgments come back as a part file (a whole new table)
SUBMITIT_CLUSTERS = ("slurm", "local")  # submitit.AutoExecutor's `cluster`
POLL_S = 1.0


@dataclass(frozen=True)
class ExecutorOptions:
    """How units become jobs (`emergent run --executor ...` flags)."""

    workers: Optional[int] = None  # most units in flight at once (None: as the engine allows;
    #                                 submitit's local cluster: 2; a Ray started here: CPUs)
    gpus_per_unit: Optional[int] = None  # None: 1 on SLURM; Ray: 1 when the cluster has GPUs
    cpus_per_unit: int = 1
    mem_gb: Optional[float] = None  # SLURM memory per job
    time_min: int = 240  # SLURM time limit per job (minutes)
    slurm_partition: Optional[str] = None
    slurm_cluster: str = "slurm"  # submitit cluster: slurm, or local (jobs as local processes)
    slurm_options: Mapping[str, Any] = field(default_factory=dict)  # more submitit slurm_* keys
    ray_address: Optional[str] = None  # a running Ray cluster (None: RAY_ADDRESS, else start one)


class JobFailed(Exception):
    """A job that did not return: its worker raised, died or was lost (the message says)."""


class Executor(Protocol):
    """An engine running one unit per job."""

    name: str
    workers: Optional[int]  # most jobs in flight at once (None: the engine queues them)

    def submit(self, fn: Callable, *args) -> Any:
        """Start `fn(*args)` as one job; returns its handle."""

    def wait(self, handles: list, timeout: float) -> list:
        """The handles among `handles` that finished (returned or failed), waiting at most
        `timeout` seconds for one."""

    def result(self, handle) -> Any:
        """The job's return value; `JobFailed` when it raised or its worker was lost."""

    def job_id(self, handle) -> str:
        """The engine's id of the job (recorded in the manifest)."""

    def cancel(self, handle) -> None:
        """Stop a job (the coordinator is stopping)."""

    def close(self) -> None:
        """Release the engine (a Ray instance started here is shut down)."""


def _missing(executor: str, lib: str) -> UserError:
    return UserError(f"--executor {executor} needs {lib}: pip install '{EXTRA}'")


def _last_line(text: str) -> str:
    """The last informative line of a traceback or an engine's message."""
    lines = [ln.strip() for ln in str(text).splitlines()
             if ln.strip() and not set(ln.strip()) <= set("-=")]
    errors = [ln for ln in lines if ("Error" in ln or "Exception" in ln) and ":" in ln]
    return (errors or lines or ["(no message)"])[-1][:300]


class SubmititExecutor:
    """SLURM through submitit.AutoExecutor (cluster `local`: jobs as processes on this
    machine, the same code path without a scheduler)."""

    name = "slurm"

    def __init__(self, opts: ExecutorOptions, folder: Path):
        try:
            import submitit
        except ImportError:
            raise _missing(self.name, "submitit") from None
        if opts.slurm_cluster not in SUBMITIT_CLUSTERS:
            raise UserError(f"--slurm-cluster must be one of {', '.join(SUBMITIT_CLUSTERS)}, "
                            f"got {opts.slurm_cluster!r}")
        slurm = opts.slurm_cluster == "slurm"
        self.workers = opts.workers if opts.workers or slurm else 2
        gpus = opts.gpus_per_unit if opts.gpus_per_unit is not None else (1 if slurm else 0)
        params: dict = {"name": "emergent", "timeout_min": opts.time_min, "nodes": 1,
                        "tasks_per_node": 1, "cpus_per_task": opts.cpus_per_unit}
        if gpus:
            params["gpus_per_node"] = gpus
        if opts.mem_gb:
            params["mem_gb"] = opts.mem_gb
        if opts.slurm_partition:
            params["slurm_partition"] = opts.slurm_partition
        params.update({f"slurm_{k}": v for k, v in opts.slurm_options.items()})
        try:
            self.ex = submitit.AutoExecutor(folder=str(folder), cluster=opts.slurm_cluster)
            self.ex.update_parameters(**params)
        except (ValueError, TypeError, RuntimeError) as e:
            raise UserError(f"--executor slurm: {_last_line(e)}") from None

    def submit(self, fn, *args):
        return self.ex.submit(fn, *args)

    def wait(self, handles, timeout):
        end = time.time() + timeout
        while True:
            ready = [h for h in handles if h.done()]
            if ready or time.time() >= end:
                return ready
            time.sleep(0.2)

    def result(self, handle):
        try:
            return handle.result()
        except Exception as e:  # FailedJobError (raised), UncompletedJobError (lost, killed)
            where = getattr(getattr(handle, "paths", None), "stderr", None)
            why = (_last_line(e) if type(e).__name__ == "FailedJobError" else
                   f"the worker ended without a result, job state {_state(handle)}")
            raise JobFailed(why + (f"; log {where}" if where else "")) from None

    def job_id(self, handle):
        return str(handle.job_id)

    def cancel(self, handle):
        try:
            handle.cancel(check=False)
        except Exception:  # already gone
            pass

    def close(self):
        pass


def _state(job) -> str:
    try:
        return str(job.state)
    except Exception:  # the scheduler cannot tell
        return "UNKNOWN"


class RayExecutor:
    """Ray: one task per unit (a fresh worker process each, `max_calls=1`, so a unit's GPU
    memory is freed with it; no automatic retry: a lost unit is redone by the next run)."""

    name = "ray"

    def __init__(self, opts: ExecutorOptions, folder: Path):
        try:
            import ray
        except ImportError:
            raise _missing(self.name, "ray") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            address = opts.ray_address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address)
            else:  # a Ray instance on this machine for this run, shut down at the end
                ray.init(num_cpus=opts.workers or os.cpu_count(), include_dashboard=False,
                         object_store_memory=256 * 2**20)  # configs and reports only
            self.started = True
        self.workers = opts.workers
        gpus = opts.gpus_per_unit
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        self.resources = {"num_cpus": opts.cpus_per_unit, "num_gpus": gpus, "max_calls": 1,
                          "max_retries": 0}
        self._remote: dict = {}

    def submit(self, fn, *args):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(**self.resources)(fn)
        return self._remote[fn].remote(*args)

    def wait(self, handles, timeout):
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout, fetch_local=False)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=False)
            ready += more
        return ready

    def result(self, handle):
        try:
            return self.ray.get(handle)
        except Exception as e:  # RayTaskError (raised), WorkerCrashedError (died), ...
            cause = getattr(e, "cause", None)
            raise JobFailed(_last_line(cause if cause is not None else e)) from None  # one line

    def job_id(self, handle):
        return handle.hex()

    def cancel(self, handle):
        try:
            self.ray.cancel(handle, force=True)
        except Exception:  # already gone
            pass

    def close(self):
        if self.started:
            self.ray.shutdown()


# name -> the Executor class (`--executor NAME`); `local` is the sequential runner
EXECUTORS: dict[str, type] = {"slurm": SubmititExecutor, "ray": RayExecutor}
CHOICES = (LOCAL, *EXECUTORS)
_LIBRARIES = {"slurm": "submitit", "ray": "ray"}


def check(name: Optional[str], opts: Optional[ExecutorOptions] = None) -> None:
    """Before anything is written: a known executor whose library is installed; with `opts`,
    also a SLURM client on this machine (slurm cluster) and a Ray address that accepts a
    connection (else ray.init retries for minutes)."""
    if name in (None, LOCAL):
        return
    if name not in EXECUTORS:
        raise UserError(f"--executor must be one of {', '.join(CHOICES)}, got {name!r}")
    lib = _LIBRARIES.get(name)
    if lib is not None:
        if importlib.util.find_spec(lib) is None:
            raise _missing(name, lib)
    if opts is None:
        return
    if name == "slurm" and opts.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--executor slurm: no SLURM here (sbatch not found on PATH); run on a "
                        "SLURM login node, or try the sweep with --slurm-cluster local")
    address = (opts.ray_address or os.environ.get("RAY_ADDRESS")) if name == "ray" else None
    if address and address != "auto":
        _check_reachable(address)


def _check_reachable(address: str) -> None:
    """A Ray address (`host:port` or `ray://host:port`) that accepts a TCP connection."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"--executor ray: cannot connect to the Ray cluster at {address} "
                        f"({e.strerror or type(e).__name__})") from None


def make_executor(name: str, opts: ExecutorOptions, folder: Path) -> Executor:
    check(name)
    folder.mkdir(parents=True, exist_ok=True)
    return EXECUTORS[name](opts, folder)


# -- the worker side ---------------------------------------------------------------------------
class WorkerRunDir(RunDir):
    """The run directory as a worker sees it: a sampling unit's answers, or a judging unit's
    judgments, go to RUN/parts/UNIT.jsonl, and the manifest and the lock are the coordinator's
    (a worker touching them is a bug)."""

    def __init__(self, path, unit: str):
        super().__init__(path)
        self.unit_name = unit

    @property
    def answers_path(self) -> Path:
        if self.unit_name.startswith(ANSWERING):
            return self.part_path(self.unit_name)
        return super().answers_path

    @property
    def judgments_path(self) -> Path:
        if self.unit_name.startswith(JUDGING):
            return self.part_path(self.unit_name)
        return super().judgments_path

    def save(self) -> None:
        raise RuntimeError("a worker never writes the run's manifest (the coordinator does)")

    def lock(self):
        raise RuntimeError("a worker never takes the run's lock (the coordinator holds it)")


def run_one_unit(plan: Callable[[RunDir], Iterable[Unit]], run_dir: str, name: str,
                 expected: Optional[str], env: Optional[Mapping[str, str]] = None) -> dict:
    """A job: rebuild the run's plan (`plan(run)`, picklable), run the unit `name` and only it,
    and return its report (seconds, host, result). `expected`: the unit's fingerprint in the
    coordinator (another one here, from another package version or data: refused). `env`: the
    coordinator's EMERGENT_* variables."""
    os.environ.update(env or {})
    rd = WorkerRunDir(run_dir, name)
    for u in plan(rd):  # the plan's fingerprints, as the coordinator knows them: a judge
        expect_fingerprint(rd, u)  # stamps its rows with its own and reads the current answers
        if u.name == name:
            break
    else:
        raise UserError(f"{run_dir}: no unit {name} in the plan this worker built")
    if u.fingerprint != expected:
        raise UserError(f"{run_dir}: unit {name} has fingerprint {u.fingerprint} on this worker "
                        f"but {expected} in the coordinator (another package version or input "
                        "files?)")
    t0 = time.time()
    result = u.fn(*u.args, **u.kwargs)
    return {"unit": name, "seconds": time.time() - t0, "host": socket.gethostname(),
            "pid": os.getpid(), "result": result}


# -- the coordinator ---------------------------------------------------------------------------
def is_remote(u: Unit) -> bool:
    """A unit a worker runs: recorded, and either marked `remote` (a judge on the device) or
    not redone on every call and training, sampling, the code evaluation's sampling or
    capabilities."""
    return u.recorded and (u.remote or (not u.always and u.name.startswith(REMOTE)))


def is_barrier(u: Unit) -> bool:
    """A remote unit that reads everything before it (the judge): it starts when every job
    before it has finished, and the next unit waits for it."""
    return is_remote(u) and u.always


def owned(u: Unit, row: dict) -> bool:
    """An answer row of unit `u`: written under its fingerprint, or one it owns (`Unit.owns`:
    the code evaluation's rows carry no fingerprint)."""
    return row.get("fingerprint") == u.fingerprint or (u.owns is not None and u.owns(row))


def upstream(u: Unit) -> list[str]:
    """The units `u` builds on (its `after:UNIT` inputs)."""
    return [k[len(UPSTREAM):] for k in (u.inputs or {}) if k.startswith(UPSTREAM)]


def run_units(rd: RunDir, units: Iterable[Unit], plan: Callable[[RunDir], Iterable[Unit]],
              executor: str = LOCAL, opts: ExecutorOptions = ExecutorOptions(),
              on_change: str = "refuse") -> dict[str, Any]:
    """Run a kind's plan: `units` one after another here (`executor` local: stages.execute), or
    with the remote units as jobs of the executor (`execute_on`); returns {unit: result} of the
    units that ran. `plan(run)`: the same plan as a worker rebuilds it (picklable, e.g. a
    functools.partial of the kind's plan builder with its config; unused when local)."""
    if executor in (None, LOCAL):
        return execute(rd, units, on_change=on_change)
    return execute_on(executor, rd, units, plan, opts, on_change)


def execute_on(name: str, rd: RunDir, units: Iterable[Unit],
               plan: Callable[[RunDir], Iterable[Unit]], opts: ExecutorOptions = ExecutorOptions(),
               on_change: str = "refuse") -> dict[str, Any]:
    """`stages.execute` with the remote units as jobs of the executor `name` (holding the run's
    lock); returns {unit: result} of the units that ran. A job that failed: a UserError naming
    it (and the units not started because they build on it) once the other jobs are done."""
    with rd.lock():
        ex = make_executor(name, opts, rd.jobs_dir)
        try:
            return _Coordinator(ex, rd, plan, on_change).run(units)
        finally:
            ex.close()


class _Coordinator:
    def __init__(self, ex: Executor, rd: RunDir, plan, on_change: str):
        self.ex, self.rd, self.plan, self.on_change = ex, rd, plan, on_change
        self.inflight: dict[str, tuple[Any, Unit]] = {}  # name -> (handle, unit)
        self.finished: dict[str, dict] = {}  # answering units done, awaiting their merge turn
        self.order: list[Unit] = []  # answering units submitted, in plan order, not recorded
        self.failed: dict[str, str] = {}  # name -> why
        self.skipped: list[str] = []  # not submitted: built on a failed unit
        self.results: dict[str, Any] = {}
        self.env = {k: v for k, v in os.environ.items() if k.startswith("EMERGENT_")}

    def run(self, units: Iterable[Unit]) -> dict[str, Any]:
        try:
            for u in units:
                if not is_remote(u):
                    self.drain()  # everything before it first, as the sequential runner
                    if self.failed or self.skipped:
                        break
                    self.results.update(execute(self.rd, [u], say=log.info,
                                                on_change=self.on_change))
                elif is_barrier(u):
                    self.drain()
                    if self.failed or self.skipped:
                        break
                    if to_run(self.rd, u, log.info, self.on_change):
                        self.dispatch(u)
                        self.drain()
                elif to_run(self.rd, u, log.info, self.on_change):
                    self.dispatch(u)
                elif u.then is not None:
                    u.then()
            self.drain()
        except BaseException:
            for handle, _ in self.inflight.values():
                self.ex.cancel(handle)
            raise
        if self.failed or self.skipped:
            raise UserError(self.failure_message())
        return self.results

    def dispatch(self, u: Unit) -> None:
        deps = upstream(u)
        for d in deps:  # the plan is lazy: what follows may read what `d` writes
            while d in self.inflight or d in self.finished:  # finished: not yet merged
                self.poll()
        if any(d in self.failed or d in self.skipped or not self.rd.done(d)
               for d in deps if d in self.rd.fingerprints):
            self.skipped.append(u.name)
            return
        while self.ex.workers and len(self.inflight) >= self.ex.workers:
            self.poll()
        if u.name.startswith(ANSWERING):
            self._seed_part(u)
        elif u.name.startswith(JUDGING):
            self._seed_judgments(u)
        self.rd.start_unit(u.name, executor=self.ex.name)
        handle = self.ex.submit(run_one_unit, self.plan, str(self.rd.dir), u.name,
                                u.fingerprint, self.env)
        self.rd.manifest["stages"][u.name]["job"] = self.ex.job_id(handle)
        self.rd.save()
        log.info("%s: submitted to %s (job %s)", u.label, self.ex.name, self.ex.job_id(handle))
        self.inflight[u.name] = (handle, u)
        if u.name.startswith(ANSWERING):
            self.order.append(u)

    def drain(self) -> None:
        while self.inflight:
            self.poll()

    def poll(self) -> None:
        by_handle = {h: name for name, (h, _) in self.inflight.items()}
        for h in self.ex.wait(list(by_handle), POLL_S):
            name = by_handle[h]
            u = self.inflight.pop(name)[1]
            try:
                report = self.ex.result(h)
            except JobFailed as e:
                self.failed[name] = str(e)
                self.order = [o for o in self.order if o.name != name]
                log.error("%s: failed on its worker: %s", name, e)
            else:
                if u.name.startswith(ANSWERING):
                    self.finished[name] = report
                else:
                    self.record(u, report)
        while self.order and self.order[0].name in self.finished:
            u = self.order.pop(0)
            self.record(u, self.finished.pop(u.name))

    def record(self, u: Unit, report: dict) -> None:
        """A finished unit into the run: its answers merged, its manifest entry done."""
        part = self.rd.part_path(u.name)
        seconds = report["seconds"]
        if u.name.startswith(ANSWERING):
            have = {a["answer_id"] for a in read_jsonl(self.rd.answers_path) if owned(u, a)}
            new = [a for a in dedupe_answers(read_jsonl(part))
                   if owned(u, a) and a["answer_id"] not in have]
            if new:
                append_jsonl(self.rd.answers_path, new)
        elif u.name.startswith(JUDGING) and part.exists():  # the whole new table: in its place
            write_jsonl_atomic(self.rd.judgments_path, read_jsonl(part))
        if u.finish is not None:  # e.g. judging what the worker sampled: here, the one writer
            t0 = time.time()
            u.finish()
            seconds += time.time() - t0
        self.rd.finish_unit(u.name, seconds, host=report.get("host"))
        if part.exists():
            part.unlink()
            if not any(part.parent.iterdir()):
                part.parent.rmdir()
        self.results[u.name] = report.get("result")
        log.info("%s: done on %s in %.0f s", u.name, report.get("host"), report["seconds"])
        if u.then is not None:
            u.then()

    def _seed_part(self, u: Unit) -> None:
        """Answers of this unit already in answers.jsonl (a sequential run killed in it) into
        its part, so that the worker samples only the missing ones."""
        part = self.rd.part_path(u.name)
        if part.exists() or u.fingerprint is None:
            return
        rows = [a for a in read_jsonl(self.rd.answers_path) if owned(u, a)]
        if rows:
            write_jsonl_atomic(part, rows)

    def _seed_judgments(self, u: Unit) -> None:
        """RUN/judgments.jsonl into the judging unit's part, the table its worker completes,
        with the rows a killed judge job had already written there (none is paid again)."""
        part = self.rd.part_path(u.name)
        rows = read_jsonl(self.rd.judgments_path)
        have = {(r.get("answer_id"), r.get("metric"), r.get("fingerprint")) for r in rows}
        if part.exists():
            rows += [r for r in read_jsonl(part)
                     if (r.get("answer_id"), r.get("metric"), r.get("fingerprint")) not in have]
        write_jsonl_atomic(part, rows)

    def failure_message(self) -> str:
        failed = "; ".join(f"{n} ({why})" for n, why in self.failed.items())
        rest = (f"; not started, built on them: {', '.join(self.skipped)}" if self.skipped
                else "")
        return (f"{self.rd.dir}: {len(self.failed)} unit(s) failed on their workers: {failed}"
                f"{rest}; finished units are recorded: rerun the same command to redo the rest "
                "(training resumes from its last checkpoint)")
