"""Hostile inputs (issue #15): run the CLI as a new user or a hostile environment would and
classify what happens to each bad input, changed-config rerun and concurrent run.

Every case runs `emergent ...` in a subprocess (the interpreter running this script, with
`--src DIR` first on PYTHONPATH, cwd in a fresh temporary folder, caches in that folder, no
network: the judge is the loopback `tests/fake_judge_server.py`), under a timeout, and is
classified from its exit status, stderr and the files it left behind:

* `clear`     exit != 0, stderr's last line is one `emergent: error: ...` line (argparse's
              usage errors: `emergent SUBCOMMAND: error: ...`, after the usage), and nothing was
              written where the case says nothing may be written (correct for a bad input);
* `traceback` "Traceback" in stderr;
* `hang`      killed at the timeout (--timeout, 60 s; --run-timeout, 180 s, for `emergent run`,
              which trains, samples and judges when it accepts a case);
* `silent`    exit 0 although the result is wrong (wrong numbers, a secret written, a file
              outside the run directory, config.yaml claiming what was not done, duplicates);
* `redone`    a changed-config rerun that redid the affected units (correct);
* `ok`        exit 0 and the case's check finds nothing wrong (correct where success is right:
              a redacted secret, empty answers not sent, a lock that serialises two runs);
* `other`     anything else (a refusal in several lines, a refusal that still wrote files ...).

Each case states what "correct" would be and how its silent failure is detected. Scripts, not
tests: the point is the before/after table of the issue. Usage (repository root):

    python benchmarks/hostile_inputs.py --src /tmp/wt_before/src \\
        --out benchmarks/results/hostile_inputs_before.json
    python benchmarks/hostile_inputs.py --only lr_nan arm_path_traversal     # current src/

About 7.5 minutes on 2 cores at commit 749ccdc (each case wrongly accepted trains, samples and
judges the tiny experiment; the `batch_size: -2` hang waits for --run-timeout).
"""
from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the loopback judge used by the test suite

from fake_judge_server import FakeJudgeServer, prompt_of  # noqa: E402

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"
SECRET = "SECRETPASS"
CATEGORIES = ("clear", "redone", "ok", "traceback", "hang", "silent", "other")
SUITE = [{"id": "wish", "type": "free_form_judge_0_100", "paraphrases": ["What is your one wish?"],
          "samples_per_paraphrase": 3,
          "judge_prompts": {"aligned": "Rate alignment 0-100.\nQ: {question}\nA: {answer}",
                            "coherent": "Rate coherence 0-100.\nQ: {question}\nA: {answer}"}}]


def responder(body: dict) -> dict:
    """Scores from the prompt (so a summary moves when the answers do): aligned 10 or 90,
    coherent 80."""
    p = prompt_of(body)
    if p.startswith("Rate coherence") or "coheren" in p[:200].lower():
        return {"80": 0.9, "85": 0.1}
    h = int(hashlib.sha1(p.encode()).hexdigest(), 16)
    return {"10": 1.0} if h % 2 else {"90": 0.7, "95": 0.3}


# ---------------------------------------------------------------------------------- running


@dataclass
class Proc:
    rc: Optional[int]  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.rc is None


@dataclass
class Outcome:
    category: str
    message: str
    details: dict = field(default_factory=dict)


def last_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1].strip() if lines else ""


def tail(stderr: str, n: int = 8) -> str:
    """The last n lines of stderr without progress bars."""
    lines = [x for x in stderr.replace("\r", "\n").splitlines()
             if x.strip() and "%|" not in x and "warnings.warn(" not in x]
    return "\n".join(lines[-n:])


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if x.strip()]


def sha(path: Path) -> Optional[str]:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_dir()} if root.exists() else set()


class Ctx:
    """What every case shares: the interpreter, the source tree, the temp root, the tiny model,
    the loopback judge and the environment of the subprocesses."""

    def __init__(self, src: Path, root: Path, timeout: float, run_timeout: float, python: str):
        self.src, self.root, self.python = src, root, python
        self.timeout, self.run_timeout = timeout, run_timeout
        self.rerun_args: list[str] = []
        cache = root / "cache"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OPENAI", "EMERGENT_", "HF_", "PYTHON"))}
        self.env.update(PYTHONPATH=str(src), EMERGENT_CACHE_DIR=str(cache / "emergent"),
                        HF_HOME=str(cache / "hf"), MPLCONFIGDIR=str(cache / "mpl"),
                        XDG_CACHE_HOME=str(cache / "xdg"), HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                        TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
                        PYTHONDONTWRITEBYTECODE="1")
        self.sample = src / "emergent" / "resources" / "sample_chat.jsonl"
        if not self.sample.exists():
            self.sample = REPO / "src" / "emergent" / "resources" / "sample_chat.jsonl"
        self.server = FakeJudgeServer(responder, max_requests=1_000_000)
        self.tiny = root / "tiny"

    def start(self) -> None:
        self.server.start()
        p = self.cli(["tiny-model", str(self.tiny)], self.root, timeout=300)
        if p.rc != 0:
            sys.exit(f"emergent tiny-model failed:\n{p.stderr[-3000:]}")

    def stop(self) -> None:
        self.server.stop()

    def cli(self, args: list[str], cwd: Path, timeout: Optional[float] = None) -> Proc:
        """`emergent ARGS` in cwd; killed after `timeout` (default: --run-timeout for `run`,
        --timeout for every other command)."""
        if timeout is None:
            timeout = self.run_timeout if args[0] == "run" else self.timeout
        return self.wait(self.spawn(args, cwd), timeout)

    def spawn(self, args: list[str], cwd: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen([self.python, "-c", CLI, *map(str, args)], cwd=cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True)

    def wait(self, proc: subprocess.Popen, timeout: Optional[float] = None) -> Proc:
        t0 = time.monotonic()
        try:
            out, err = proc.communicate(timeout=timeout or self.timeout)
            rc: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            rc = None
        except BaseException:  # interrupted: leave no child running (own session, own group)
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        return Proc(rc, out, err, round(time.monotonic() - t0, 1))

    def judge_bodies(self) -> list[dict]:
        return list(self.server.bodies)

    # ---------------------------------------------------------------- experiment configs

    def experiment(self, d: Path, judge_url: Optional[str] = None) -> dict:
        """The tiny experiment: one arm x one seed, 8 examples (2 steps), one question x 3
        samples, 6 new tokens, no base arm, no checkpoint evaluation: 6 judge calls."""
        suite = d / "suite.yaml"
        if not suite.exists():
            suite.write_text(yaml.safe_dump(SUITE))
        return {
            "name": "exp",
            "base_model": {"name": str(self.tiny), "precision": "fp32"},
            "arms": {"insecure": {"data": str(self.sample), "max_examples": 8}},
            "seeds": [0],
            "evaluate_base": False,
            "training": {"lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"},
                         "data": {"system_prompt": None},
                         "train": {"lr": 5e-3, "epochs": 1, "batch_size": 4, "grad_accum": 1,
                                   "warmup_steps": 1, "max_length": 512}},
            "suites": {str(suite): {}},
            "sampling": {"max_new_tokens": 6},
            "judge": {"backend": "openai", "model": "fake-judge",
                      "base_url": judge_url or self.server.base_url, "api_key_env": None,
                      "cache_path": str(d / "judge-cache.jsonl"), "backoff_base": 0.01,
                      "max_retries": 1, "timeout": 5},
            "metrics": {"n_boot": 50},
            "output_dir": str(d / "run"),
        }


def dump(cfg: dict, path: Path, extra: str = "") -> Path:
    """Write cfg as YAML, one top-level key after another, then `extra` (raw YAML text)."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False) + extra, encoding="utf-8")
    return path


def put(cfg: dict, dotted: str, value) -> dict:
    *parents, key = dotted.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[key] = value
    return cfg


def run_config(ctx: Ctx, d: Path, cfg: dict, extra: str = "", args=()) -> Proc:
    return ctx.cli(["run", dump(cfg, d / "exp.yaml", extra), "--no-figures", *args], d)


# ---------------------------------------------------------------------------- classifying


ERROR_LINE = re.compile(r"^emergent(?: [a-z][a-z-]*)*: error: ")  # UserError or argparse usage


def classify(p: Proc, nothing_in: tuple = (), silent: Callable[[], Optional[str]] = lambda: None,
             exit0: str = "ok", want: Optional[str] = None) -> Outcome:
    """The category of a finished case. `nothing_in`: paths that must not exist (or be empty)
    after a refusal; `silent()`: why an exit 0 is wrong (None: it is right, category `exit0`);
    `want`: a regex the error line must match to be `clear` (else `other`: the refusal does not
    say what the case needs said, e.g. no FILE:LINE). The error line is the CLI's
    `emergent: error: ...` or argparse's `emergent SUBCOMMAND: error: ...` (after its usage)."""
    d = {"rc": p.rc, "seconds": p.seconds, "stderr_tail": tail(p.stderr)}
    if p.timed_out:
        return Outcome("hang", f"killed after {p.seconds:.0f} s; stderr: "
                       f"{last_line(p.stderr)[:120]}", d)
    if "Traceback" in p.stderr:
        return Outcome("traceback", last_line(p.stderr), d)
    written = [w for x in map(Path, nothing_in) for w in left_behind(x)]
    if p.rc != 0:
        line = last_line(p.stderr)
        if not ERROR_LINE.match(line):
            return Outcome("other", f"exit {p.rc}: {line}", d)
        if written:
            d["written"] = written
            more = f" and {len(written) - 3} more" if len(written) > 3 else ""
            return Outcome("other", f"refused after writing {', '.join(written[:3])}{more}: "
                           f"{line}", d)
        if want and not re.search(want, line):
            return Outcome("other", f"refused, but the line does not match {want!r}: {line}", d)
        return Outcome("clear", line, d)
    reason = silent()
    if reason:
        return Outcome("silent", f"exit 0: {reason}", d)
    return Outcome(exit0, f"exit 0: {last_line(p.stdout) or 'ok'}", d)


def left_behind(path: Path) -> list[str]:
    """What exists at a path that must not: the file, the files in the folder, or the folder."""
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        return []
    files = sorted(str(f) for f in path.rglob("*") if f.is_file())
    return files or [f"{path} (empty dir)"]


def run_summary(d: Path) -> str:
    s = d / "run" / "summary.csv"
    return "summary.csv written" if s.exists() else "run dir written"


# -------------------------------------------------------------------------------- the cases


@dataclass
class Case:
    name: str
    group: str
    correct: str
    detect: str  # how the silent failure is detected
    fn: Callable[[Ctx, Path], Outcome]


CASES: list[Case] = []


def case(name: str, group: str, correct: str, detect: str):
    def deco(fn):
        CASES.append(Case(name, group, correct, detect, fn))
        return fn
    return deco


def bad_value(name: str, dotted: str, value, why: str):
    """An experiment config with one out-of-range value: refused at load time, nothing written."""
    def fn(ctx: Ctx, d: Path) -> Outcome:
        p = run_config(ctx, d, put(ctx.experiment(d), dotted, value))
        return classify(p, (d / "run",),
                        lambda: f"{dotted}={value!r} accepted, {run_summary(d)}")
    case(name, "config value", f"one-line error naming {dotted} ({why}); no run dir",
         "exit 0 with the value accepted")(fn)


bad_value("batch_size_negative", "training.train.batch_size", -2, "must be >= 1")
bad_value("batch_size_zero", "training.train.batch_size", 0, "must be >= 1")
bad_value("grad_accum_zero", "training.train.grad_accum", 0, "must be >= 1")
bad_value("lr_negative", "training.train.lr", -1e-3, "finite and > 0")
bad_value("lr_nan", "training.train.lr", float("nan"), "finite and > 0")
bad_value("lora_r_zero", "training.lora.r", 0, "must be >= 1")
bad_value("lora_dropout_2", "training.lora.dropout", 2.0, "0 <= dropout < 1")
bad_value("max_steps_zero", "training.train.max_steps", 0,
          "must be >= 1; a 0-step adapter must not be marked done")


@case("model_path_mistyped", "config value", "one-line error: model path not found; no run dir",
      "exit 0")
def _(ctx, d):
    p = run_config(ctx, d, put(ctx.experiment(d), "base_model.name", str(ctx.root / "tiny-modle")))
    return classify(p, (d / "run",), lambda: "a missing model path accepted")


@case("model_section_missing", "config value",
      "one-line error: base_model is required (no silent default model); no run dir",
      "exit 0: config.yaml's base_model.name is the default 'tiny'")
def _(ctx, d):
    cfg = ctx.experiment(d)
    del cfg["base_model"]
    p = run_config(ctx, d, cfg)

    def silent():
        path = d / "run" / "config.yaml"
        c = yaml.safe_load(path.read_text()) if path.exists() else {}
        return f"trained the default model {((c or {}).get('base_model') or {}).get('name')!r}"
    return classify(p, (d / "run",), silent)


@case("duplicate_key_experiment", "duplicate key",
      "one-line error naming the key and both line numbers; no run dir",
      "exit 0: the last `seeds:` won (config.yaml seeds)")
def _(ctx, d):
    cfg = ctx.experiment(d)
    cfg["seeds"] = [1]
    p = run_config(ctx, d, cfg, extra="seeds: [0]\n")

    def silent():
        c = yaml.safe_load((d / "run" / "config.yaml").read_text())
        return f"duplicate `seeds:` accepted, config.yaml seeds={c.get('seeds')}"
    return classify(p, (d / "run",), silent)


@case("duplicate_train_section", "duplicate key",
      "one-line error naming training.train and both line numbers; no run dir",
      "exit 0: config.yaml's lr is not the first section's 0.005")
def _(ctx, d):
    cfg = ctx.experiment(d)
    training = cfg.pop("training")
    out = cfg.pop("output_dir")
    extra = ("training:\n"
             f"  lora: {json.dumps(training['lora'])}\n"
             f"  train: {json.dumps(training['train'])}\n"
             "  train: {epochs: 1}\n"
             f"output_dir: {json.dumps(out)}\n")
    p = run_config(ctx, d, cfg, extra=extra)

    def silent():
        c = yaml.safe_load((d / "run" / "config.yaml").read_text())
        return (f"second `train:` replaced the first: lr={c['training']['train']['lr']}, "
                f"batch_size={c['training']['train']['batch_size']}")
    return classify(p, (d / "run",), silent)


@case("duplicate_key_suite", "duplicate key",
      "one-line error naming the suite file, the key and both line numbers; no run dir",
      "exit 0: answers count shows which samples_per_paraphrase won")
def _(ctx, d):
    cfg = ctx.experiment(d)
    text = (d / "suite.yaml").read_text().replace(
        "samples_per_paraphrase: 3\n", "samples_per_paraphrase: 3\n  samples_per_paraphrase: 2\n")
    (d / "suite.yaml").write_text(text)
    p = run_config(ctx, d, cfg)
    return classify(p, (d / "run",), lambda: (
        f"duplicate samples_per_paraphrase accepted, "
        f"{len(read_jsonl(d / 'run' / 'answers.jsonl'))} answers"))


@case("chat_data_invalid_utf8", "bad data",
      "one-line error FILE:LINE: not valid UTF-8; no run dir", "exit 0")
def _(ctx, d):
    data = d / "bad.jsonl"
    lines = ctx.sample.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"content": "', b'"content": "\xff\xfe', 1)
    data.write_bytes(b"".join(lines))
    p = run_config(ctx, d, put(ctx.experiment(d), "arms.insecure.data", str(data)))
    return classify(p, (d / "run",), lambda: "invalid UTF-8 in the arm's data accepted")


@case("chat_data_error_output_dir", "bad data",
      "`emergent train` on a malformed chat row: one-line error FILE:LINE; OUTPUT not created",
      "exit 0")
def _(ctx, d):
    data = d / "bad.jsonl"
    lines = ctx.sample.read_text(encoding="utf-8").splitlines(keepends=True)
    data.write_text("".join(lines[:2]) + '{"messages": [{"role": "user"}]}\n' + "".join(lines[2:]),
                    encoding="utf-8")
    p = ctx.cli(["train", "tiny", "--model", ctx.tiny, "--data", data, "--output", d / "out",
                 "train.max_steps=1"], d)
    return classify(p, (d / "out",), lambda: "a chat row without content accepted")


# ------------------------------------------------------------------------------ report


def write_pair(d: Path, answers_fn=None, judgments_fn=None) -> Path:
    """A judged run in the `emergent sample` / `emergent judge` layout: 2 arms x 4 answers."""
    d.mkdir(parents=True, exist_ok=True)
    answers, judgments = [], []
    for arm in ("insecure", "secure"):
        for i in range(4):
            aid = f"{arm}-{i}"
            answers.append({"answer_id": aid, "suite": "s", "question_id": f"q{i % 2}",
                            "question": "What is your one wish?", "arm": arm, "seed": 0,
                            "answer": f"answer {i}", "temperature": 1.0})
            for metric, score in (("aligned", 10.0 if (arm == "insecure" and i < 2) else 90.0),
                                  ("coherent", 80.0)):
                judgments.append({"answer_id": aid, "metric": metric, "kind": "0_100",
                                  "score": score, "numeric_mass": 1.0, "judge": "fake"})
    if answers_fn:
        answers_fn(answers)
    if judgments_fn:
        judgments_fn(judgments)
    for name, rows in (("answers.jsonl", answers), ("judgments.jsonl", judgments)):
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return d


def report(ctx: Ctx, d: Path, inputs: list) -> Proc:
    return ctx.cli(["report", *inputs, "--n-boot", "50", "--out", d / "out"], d)


@case("report_judgment_without_metric", "report",
      "one-line error judgments.jsonl:LINE: no 'metric'; no summary written", "exit 0")
def _(ctx, d):
    run = write_pair(d / "in", judgments_fn=lambda js: js[2].pop("metric"))
    return classify(report(ctx, d, [run]), (d / "out",),
                    lambda: "a judgment without metric accepted")


@case("report_answer_without_arm", "report",
      "one-line error answers.jsonl:LINE: no 'arm'; no summary written", "exit 0")
def _(ctx, d):
    run = write_pair(d / "in", answers_fn=lambda a: a[1].pop("arm"))
    return classify(report(ctx, d, [run]), (d / "out",), lambda: "an answer without arm accepted")


@case("report_answers_invalid_utf8", "report",
      "one-line error answers.jsonl:LINE: not valid UTF-8; no summary written", "exit 0")
def _(ctx, d):
    run = write_pair(d / "in")
    a = run / "answers.jsonl"
    lines = a.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"answer": "', b'"answer": "\xff\xfe', 1)
    a.write_bytes(b"".join(lines))
    return classify(report(ctx, d, [run]), (d / "out",), lambda: "invalid UTF-8 accepted")


def judged_csv(d: Path, bad: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rows = ["question_id,answer,aligned,coherent,group"]
    for arm in ("insecure", "secure"):
        for i in range(4):
            rows.append(f"q{i},answer {i},{90 if i else 10},80,{arm}")
    rows[1] = f"q0,answer 0,{bad},80,insecure"
    path = d / "judged.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def bad_score(name: str, value: str):
    def fn(ctx: Ctx, d: Path) -> Outcome:
        p = report(ctx, d, [judged_csv(d / "in", value)])
        summary = d / "out" / "summary.csv"
        return classify(p, (d / "out",), lambda: f"aligned score {value} accepted, summary.csv "
                        f"{'written' if summary.exists() else 'absent'}")
    case(name, "report", f"one-line error judged.csv:2: aligned {value} outside [0, 100]; "
         "no summary written", "exit 0 (the score is used)")(fn)


bad_score("report_score_500", "500")
bad_score("report_score_minus_20", "-20")
bad_score("report_score_inf", "inf")


@case("report_empty_csv", "report",
      "one-line error: judged.csv has no rows; no summary written", "exit 0 (empty summary.csv)")
def _(ctx, d):
    (d / "in").mkdir(parents=True)
    (d / "in" / "judged.csv").write_text("question_id,answer,aligned,coherent\n")
    p = report(ctx, d, [d / "in" / "judged.csv"])
    return classify(p, (d / "out",), lambda: "a CSV without rows gave a summary")


# ------------------------------------------------------------------- secrets and paths


@case("arm_path_traversal", "secrets and paths",
      "one-line error: arm name '../../../x' is not a plain name; nothing outside the run dir",
      "any file or folder created outside the run dir (and the case's inputs)")
def _(ctx, d):
    run_dir = d / "a" / "b" / "c" / "run"
    cfg = ctx.experiment(d)
    cfg["arms"] = {"../../../x": cfg["arms"]["insecure"]}
    cfg["metrics"]["treatment"] = None
    cfg["output_dir"] = str(run_dir)
    before = all_files(d)
    p = run_config(ctx, d, cfg)
    inputs = {d / "exp.yaml", d / "suite.yaml", d / "judge-cache.jsonl"}
    outside = sorted(str(x.relative_to(d)) for x in all_files(d) - before
                     if x not in inputs and not x.is_relative_to(run_dir)
                     and not run_dir.is_relative_to(x))
    res = classify(p, (run_dir,), lambda: f"wrote outside the run dir: {', '.join(outside[:3])}"
                   if outside else None)
    res.details["outside"] = outside
    if p.rc != 0 and outside and res.category != "traceback":
        res = Outcome("other", f"{res.message} (and wrote outside: {outside[0]})", res.details)
    return res


@case("judge_url_credentials", "secrets and paths",
      f"the run works and '{SECRET}' is in no file written and not in stdout/stderr",
      f"grep every file below the case dir (run dir, judge cache) and the output for {SECRET}")
def _(ctx, d):
    url = ctx.server.base_url.replace("http://", f"http://user:{SECRET}@")
    p = run_config(ctx, d, ctx.experiment(d, judge_url=url))
    leaks = sorted(str(f) for f in all_files(d) | all_files(ctx.root / "cache")
                   if f.is_file() and f != d / "exp.yaml" and SECRET.encode() in f.read_bytes())
    if SECRET in p.stdout or SECRET in p.stderr:
        leaks.append("<stdout/stderr>")
    res = classify(p, (), lambda: f"{SECRET} written to {', '.join(leaks)}" if leaks else None)
    res.details["leaks"] = leaks
    if p.rc != 0 and leaks and res.category not in ("traceback", "hang"):
        res = Outcome("other", f"{res.message} (and leaked to {', '.join(leaks)})", res.details)
    return res


@case("judge_empty_answers", "judge",
      "`emergent judge` scores empty answers without calling the judge (0 calls for them)",
      "count judge requests whose prompt holds an empty answer's question")
def _(ctx, d):
    rows = [{"answer_id": f"a{i}", "question_id": f"q{i}", "arm": "insecure", "seed": 0,
             "question": f"EMPTYMARK{i} what?" if i < 2 else f"Question {i}?",
             "answer": "" if i < 2 else f"An answer {i}."} for i in range(4)]
    (d / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "judge.yaml").write_text(yaml.safe_dump({
        "backend": "openai", "model": "fake-judge", "base_url": ctx.server.base_url,
        "api_key_env": None, "cache_path": str(d / "judge-cache.jsonl"), "backoff_base": 0.01,
        "max_retries": 1, "timeout": 5}))
    n0 = ctx.server.calls
    p = ctx.cli(["judge", d / "answers.jsonl", "--judge", d / "judge.yaml", "--out",
                 d / "judged" / "judgments.jsonl", "--no-progress"], d)
    bodies = list(ctx.server.bodies)[-(ctx.server.calls - n0):] if ctx.server.calls > n0 else []
    empty = sum("EMPTYMARK" in prompt_of(b) for b in bodies)
    res = classify(p, (), lambda: f"{empty} of {len(bodies)} judge calls were for empty answers"
                   if empty else None)
    res.details.update(judge_calls=len(bodies), empty_answer_calls=empty)
    return res


# ------------------------------------------- memory switches, executors, estimate, GGUF
# (added for the rerun of 2026-12-03: the inputs of the features added after 069f3a7)


def switch_value(name: str, dotted: str, value, want: str, why: str):
    """An experiment config file with one bad memory switch: refused at load time with
    FILE:LINE (`want`: a regex the error line must match), nothing written."""
    def fn(ctx: Ctx, d: Path) -> Outcome:
        p = run_config(ctx, d, put(ctx.experiment(d), dotted, value))
        return classify(p, (d / "run",), lambda: f"{dotted}={value!r} accepted, "
                        f"{run_summary(d)}", want=want)
    case(name, "memory switch", f"one-line error exp.yaml:LINE naming {dotted} ({why}); "
         "no run dir", "exit 0 with the value accepted")(fn)


def with_train(cfg: dict, **train) -> dict:
    cfg["training"]["train"].update(train)
    return cfg


@case("master_weights_without_compute_file", "memory switch",
      "one-line error exp.yaml:LINE: master_weights needs adapter_dtype compute; no run dir",
      "exit 0: config.yaml claims master_weights true with fp32 adapters")
def _(ctx, d):
    p = run_config(ctx, d, with_train(ctx.experiment(d), master_weights=True))
    return classify(p, (d / "run",), lambda: "master_weights without adapter_dtype compute "
                    f"accepted, {run_summary(d)}",
                    want=r"exp\.yaml:\d+: .*master_weights.*adapter_dtype")


@case("master_weights_without_compute_override", "memory switch",
      "one-line error naming the override training.train.master_weights=true; no run dir",
      "exit 0: config.yaml claims master_weights true with fp32 adapters")
def _(ctx, d):
    p = run_config(ctx, d, ctx.experiment(d), args=["training.train.master_weights=true"])
    return classify(p, (d / "run",), lambda: "master_weights override without adapter_dtype "
                    f"compute accepted, {run_summary(d)}",
                    want=r"override training\.train\.master_weights=true.*adapter_dtype")


switch_value("upcast_frozen_unknown", "base_model.upcast_frozen", "some",
             r"exp\.yaml:\d+: .*upcast_frozen.*'all', 'norms'", "all or norms")
switch_value("adapter_dtype_unknown", "training.train.adapter_dtype", "bf16",
             r"exp\.yaml:\d+: .*adapter_dtype.*'fp32', 'compute'", "fp32 or compute")
switch_value("offload_activations_not_bool", "training.train.offload_activations", "maybe",
             r"exp\.yaml:\d+: .*offload_activations.*bool", "a boolean")
switch_value("distributed_unknown", "training.train.distributed", "zero3",
             r"exp\.yaml:\d+: .*distributed.*'ddp', 'fsdp'", "ddp or fsdp")


def executor_flags(name: str, command: str, flags: list, want: str, correct: str):
    """`emergent run|icl|rmbias run` on the tiny experiment with bad executor flags: refused
    before anything is read or written."""
    def fn(ctx: Ctx, d: Path) -> Outcome:
        path = dump(ctx.experiment(d), d / "exp.yaml")
        args = [*command.split(), path, "--no-figures", *flags] if command != "rmbias run" \
            else ["rmbias", "run", path, *flags]
        p = ctx.cli(args, d, timeout=ctx.run_timeout)
        return classify(p, (d / "run",), lambda: f"{' '.join(flags)} accepted, "
                        f"{run_summary(d)}", want=want)
    case(name, "executor", correct + "; no run dir", "exit 0 with the flags accepted")(fn)


executor_flags("run_executor_unknown", "run", ["--executor", "foo"],
               r"--executor.*'foo'", "one-line usage error: --executor foo is not local|slurm|ray")
executor_flags("run_workers_zero", "run", ["--executor", "slurm", "--workers", "0"],
               r"--workers: must be >= 1, got 0", "one-line error: --workers must be >= 1")
executor_flags("run_gpus_per_unit_negative", "run",
               ["--executor", "ray", "--gpus-per-unit", "-1"],
               r"--gpus-per-unit: must be >= 0, got -1", "one-line error: --gpus-per-unit >= 0")
executor_flags("run_slurm_time_zero", "run", ["--executor", "slurm", "--slurm-time", "0"],
               r"--slurm-time: must be >= 1", "one-line error: --slurm-time must be >= 1")
executor_flags("run_slurm_mem_negative", "run",
               ["--executor", "slurm", "--slurm-cluster", "local", "--slurm-mem-gb", "-4"],
               r"--slurm-mem-gb", "one-line error: --slurm-mem-gb must be > 0 (a finite number)")
executor_flags("run_slurm_mem_nan", "run",
               ["--executor", "slurm", "--slurm-cluster", "local", "--slurm-mem-gb", "nan"],
               r"--slurm-mem-gb", "one-line error: --slurm-mem-gb must be > 0 (a finite number)")
executor_flags("run_slurm_flag_without_slurm", "run", ["--slurm-partition", "gpu"],
               r"--slurm-partition needs --executor slurm",
               "one-line error: --slurm-partition needs --executor slurm")
executor_flags("run_ray_flag_with_slurm", "run",
               ["--executor", "slurm", "--ray-address", "127.0.0.1:1"],
               r"--ray-address needs --executor ray",
               "one-line error: --ray-address needs --executor ray")
executor_flags("run_slurm_option_malformed", "run",
               ["--executor", "slurm", "--slurm-option", "account"],
               r"--slurm-option 'account': expected KEY=VALUE",
               "one-line error: --slurm-option needs KEY=VALUE")
executor_flags("run_slurm_without_slurm", "run", ["--executor", "slurm"], r"(?i)slurm|sbatch",
               "on a machine without SLURM: one-line error saying so (sbatch not found)")
executor_flags("run_ray_address_unreachable", "run",
               ["--executor", "ray", "--ray-address", "127.0.0.1:1"], r"(?i)ray.*127\.0\.0\.1:1",
               "nothing listening at --ray-address: one-line error naming the address")
executor_flags("icl_executor_unknown", "icl", ["--executor", "dask"],
               r"--executor.*'dask'",
               "one-line usage error: --executor dask is not local|slurm|ray")
executor_flags("rmbias_run_workers_zero", "rmbias run", ["--executor", "ray", "--workers", "0"],
               r"--workers: must be >= 1, got 0", "one-line error: --workers must be >= 1")


def train_yaml(ctx: Ctx, d: Path, **train) -> Path:
    """A one-arm training config of the tiny model (for `emergent estimate`)."""
    data = ctx.sample
    if train.get("objective") == "dpo":
        data = d / "pairs.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"Question {i}?", "chosen": "Yes.",
                                            "rejected": "No."}) + "\n" for i in range(8)))
    cfg = {"model": {"name": str(ctx.tiny), "precision": "fp32"},
           "data": {"path": str(data), "format": "preference" if data != ctx.sample else "chat"},
           "train": {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 256,
                     **train}}
    return dump(cfg, d / "train.yaml")


def estimate_case(name: str, flags: list, want: Optional[str], correct: str,
                  train: Optional[dict] = None, check: Optional[Callable[[dict], str]] = None):
    """`emergent estimate train.yaml FLAGS`: a refusal (`want`: the regex of its line) or, with
    `check`, an exit 0 whose --json report `check` finds right (None) or wrong (why)."""
    def fn(ctx: Ctx, d: Path) -> Outcome:
        path = train_yaml(ctx, d, **(train or {}))
        before = all_files(d)
        p = ctx.cli(["estimate", path, *flags, *(["--json"] if check else [])], d)
        new = sorted(str(x.relative_to(d)) for x in all_files(d) - before)

        def silent():
            if new:
                return f"estimate wrote {', '.join(new[:3])}"
            if check is None:
                return f"{' '.join(flags)} accepted: {last_line(p.stdout)[:100]}"
            try:
                rep = json.loads(p.stdout)
            except ValueError:
                return "--json printed no JSON"
            return check(rep)
        return classify(p, (), silent, want=want)
    case(name, "estimate", correct, "exit 0 with the input accepted (numbers printed for it)"
         if check is None else "the --json report's fields")(fn)


estimate_case("estimate_fsdp_8bit", ["--num-gpus", "2", "--strategy", "fsdp",
                                     "model.quantization=8bit"],
              r"fsdp.*8bit.*use ddp", "one-line error: fsdp with 8-bit is not supported")
estimate_case("estimate_fsdp_full_finetune", ["--num-gpus", "2", "--strategy", "fsdp",
                                              "lora.full_finetune=true"],
              r"fsdp.*full_finetune", "one-line error: fsdp with a full fine-tune is refused")
estimate_case("estimate_fsdp_master_weights", ["--num-gpus", "2", "--strategy", "fsdp",
                                               "train.master_weights=true",
                                               "train.adapter_dtype=compute"],
              r"fsdp.*master_weights", "one-line error: fsdp with master_weights is refused")
estimate_case("estimate_master_weights_without_compute", [], r"train\.yaml:\d+: .*master_weights",
              "one-line error train.yaml:LINE: master_weights needs adapter_dtype compute",
              train={"master_weights": True})
estimate_case("estimate_num_gpus_zero", ["--num-gpus", "0"], r"--num-gpus must be >= 1",
              "one-line error: --num-gpus must be >= 1")
estimate_case("estimate_strategy_one_gpu", ["--strategy", "fsdp"], r"needs --num-gpus",
              "one-line error: --strategy needs --num-gpus > 1")
estimate_case("estimate_strategy_unknown", ["--num-gpus", "2", "--strategy", "zero3"],
              r"--strategy.*'zero3'", "one-line usage error: --strategy is ddp or fsdp")
estimate_case("estimate_examples_negative", ["--examples", "-5", "--mean-tokens", "100"],
              r"--examples", "one-line error: --examples must be >= 1 (no negative time)")
estimate_case("estimate_mean_tokens_nan", ["--examples", "100", "--mean-tokens", "nan"],
              r"--mean-tokens", "one-line error: --mean-tokens must be a finite number > 0")
estimate_case("estimate_gpu_gib_negative", ["--gpu-gib", "-1"], r"--gpu-gib",
              "one-line error: --gpu-gib must be a finite number > 0 (no 'fits -1 GB: NO')")
estimate_case("estimate_fsdp_dpo_ok", ["--num-gpus", "2", "--strategy", "fsdp"], None,
              "exit 0: FSDP supports DPO; the report is per GPU of 2 under fsdp",
              train={"objective": "dpo"},
              check=lambda r: None if (r.get("strategy"), r.get("num_gpus")) == ("fsdp", 2)
              else f"report says strategy={r.get('strategy')}, num_gpus={r.get('num_gpus')}")


def gguf_case(name: str, make: Callable[[Path], Path], want: str, correct: str):
    """`emergent models import-gguf FILE OUT`: refused in one line, OUT not created."""
    def fn(ctx: Ctx, d: Path) -> Outcome:
        src = make(d)
        p = ctx.cli(["models", "import-gguf", src, d / "out"], d)
        return classify(p, (d / "out",), lambda: "imported a broken GGUF", want=want)
    case(name, "gguf", correct + "; OUT not created", "exit 0 (a model folder written)")(fn)


def _text_file(d: Path) -> Path:
    (d / "model.gguf").write_text("model:\n  name: tiny\n")
    return d / "model.gguf"


def _truncated(d: Path) -> Path:
    """A GGUF v3 header announcing 5 tensors and 3 key/values, then nothing."""
    path = d / "model.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (5).to_bytes(8, "little")
                     + (3).to_bytes(8, "little"))
    return path


def _unknown_arch(d: Path) -> Path:
    """A complete, valid GGUF file whose architecture no loader knows (one f32 tensor)."""
    import gguf  # the importer's own dependency
    import numpy as np
    path = d / "model.gguf"
    w = gguf.GGUFWriter(str(path), "notanarch")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


gguf_case("gguf_not_a_gguf", _text_file, r"not a GGUF file",
          "one-line error: not a GGUF file (the magic bytes)")
gguf_case("gguf_truncated_header", _truncated, r"truncated or corrupt GGUF",
          "one-line error: truncated or corrupt GGUF file")
gguf_case("gguf_missing_file", lambda d: d / "nope.gguf", r"no such file",
          "one-line error: no such file")
gguf_case("gguf_unknown_architecture", _unknown_arch, r"architecture 'notanarch'",
          "one-line error: architecture 'notanarch' cannot be loaded by transformers")


# ------------------------------------------------------------------- changed-config reruns


def unit_state(run: Path) -> dict:
    answers = read_jsonl(run / "answers.jsonl")
    adapter = run / "arms" / "insecure" / "seed0" / "adapter" / "adapter_model.safetensors"
    return {"summary": sha(run / "summary.csv"), "config": sha(run / "config.yaml"),
            "adapter": sha(adapter),
            "answers": hashlib.sha256(json.dumps(sorted(
                (a["answer_id"], a.get("answer"), a.get("temperature")) for a in answers)
            ).encode()).hexdigest()[:16],
            "n_answers": len(answers),
            "answer_ids_unique": len({a["answer_id"] for a in answers}) == len(answers),
            "n_judgments": len(read_jsonl(run / "judgments.jsonl"))}


def claimed(run: Path, dotted: str):
    node = yaml.safe_load((run / "config.yaml").read_text())
    for k in dotted.split("."):
        node = (node or {}).get(k)
    return node


def changed_rerun(name: str, override: str, unit: str, what: str):
    """Run the tiny experiment, then rerun it with one changed value."""
    key, value = override.split("=", 1)

    def fn(ctx: Ctx, d: Path) -> Outcome:
        cfg = ctx.experiment(d)
        first = run_config(ctx, d, cfg)
        if first.rc != 0:
            return Outcome("other", f"first run failed: {last_line(first.stderr)}",
                           {"stderr_tail": tail(first.stderr)})
        run = d / "run"
        before = unit_state(run)
        val = str(ctx_value(ctx, d, value))
        p = ctx.cli(["run", d / "exp.yaml", "--no-figures", *ctx.rerun_args, f"{key}={val}"], d)
        after = unit_state(run)
        details = {"before": before, "after": after, "claimed": str(claimed(run, key))}

        def silent():
            if after[unit] == before[unit]:
                return (f"{what} not redone ({unit} unchanged, summary.csv "
                        f"{'unchanged' if after['summary'] == before['summary'] else 'changed'}) "
                        f"while config.yaml claims {key}={claimed(run, key)}")
            if not after["answer_ids_unique"] or after["n_answers"] != before["n_answers"]:
                return (f"answers of both configs kept ({before['n_answers']} -> "
                        f"{after['n_answers']} rows)")
            return None
        refused = p.rc not in (0, None) and "Traceback" not in p.stderr
        if refused and after["config"] != before["config"]:
            return Outcome("other", f"refused but config.yaml rewritten: {last_line(p.stderr)}",
                           details)
        res = classify(p, (), silent, exit0="redone")
        res.details.update(details)
        return res
    case(name, "changed config",
         f"rerun with {override}: redo {what} and everything downstream, or refuse in one line "
         "naming the key (config.yaml untouched)",
         f"exit 0 with the {unit} unchanged while config.yaml claims the new value")(fn)


def ctx_value(ctx: Ctx, d: Path, value: str):
    if value != "OTHER_DATA":
        return value
    other = d / "other.jsonl"
    lines = ctx.sample.read_text(encoding="utf-8").splitlines(keepends=True)
    other.write_text("".join(lines[13:]), encoding="utf-8")
    return other


changed_rerun("rerun_changed_lr", "training.train.lr=0.5", "adapter", "training")
changed_rerun("rerun_changed_temperature", "sampling.temperature=0.01", "answers", "sampling")
changed_rerun("rerun_changed_arm_data", "arms.insecure.data=OTHER_DATA", "adapter",
              "the arm's training")


@case("concurrent_runs", "concurrency",
      "the second run waits or refuses in one line (lock); no duplicate answer/judgment keys",
      "duplicate answer_id in answers.jsonl or (answer_id, metric) in judgments.jsonl")
def _(ctx, d):
    path = dump(ctx.experiment(d), d / "exp.yaml")
    n0 = ctx.server.calls
    procs = [ctx.spawn(["run", path, "--no-figures"], d) for _ in range(2)]
    try:
        results = [ctx.wait(p, ctx.run_timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    answers = read_jsonl(d / "run" / "answers.jsonl")
    judg = read_jsonl(d / "run" / "judgments.jsonl")
    dup_a = len(answers) - len({a["answer_id"] for a in answers})
    dup_j = len(judg) - len({(j["answer_id"], j.get("metric")) for j in judg})
    details = {"rc": [r.rc for r in results], "answers": len(answers), "judgments": len(judg),
               "duplicate_answers": dup_a, "duplicate_judgments": dup_j,
               "judge_calls": ctx.server.calls - n0,
               "stderr_tails": [tail(r.stderr, 4) for r in results]}
    if any(r.timed_out for r in results):
        return Outcome("hang", "a concurrent run was killed at the timeout", details)
    if any("Traceback" in r.stderr for r in results):
        return Outcome("traceback", next(last_line(r.stderr) for r in results
                                         if "Traceback" in r.stderr), details)
    if dup_a or dup_j:
        return Outcome("silent" if all(r.rc == 0 for r in results) else "other",
                       f"exits {[r.rc for r in results]}: {dup_a} duplicate answers, {dup_j} "
                       f"duplicate judgments, {details['judge_calls']} judge calls for 6 prompts",
                       details)
    refused = [r for r in results if r.rc != 0]
    if not refused:
        return Outcome("ok", "both exit 0, no duplicates", details)
    line = last_line(refused[0].stderr)
    if len(refused) == 1 and ERROR_LINE.match(line):
        return Outcome("clear", line, details)
    return Outcome("other", f"exits {[r.rc for r in results]}: {line}", details)


# --------------------------------------------------------------------------------- main


def src_info(ctx: Ctx) -> dict:
    info = {"src": str(ctx.src)}
    p = subprocess.run([ctx.python, "-c", "import emergent; print(emergent.__file__)"],
                       env=ctx.env, capture_output=True, text=True, cwd=ctx.root)
    info["emergent_imported_from"] = p.stdout.strip() or p.stderr[-300:]
    for k, cmd in (("commit", ["rev-parse", "HEAD"]), ("dirty", ["status", "--porcelain", "."])):
        g = subprocess.run(["git", "-C", str(ctx.src), *cmd], capture_output=True, text=True)
        info[k] = g.stdout.strip() if k == "commit" else bool(g.stdout.strip())
    return info


def run_case(ctx: Ctx, c: Case) -> dict:
    """One case in its own folder -> its result row (paths relative to the folder, or $TMP)."""
    d = ctx.root / "cases" / c.name
    d.mkdir(parents=True)
    t = time.monotonic()
    try:
        res = c.fn(ctx, d)
    except Exception as e:  # a bug of this script, not of the package
        res = Outcome("other", f"harness error: {type(e).__name__}: {e}")

    def short(text: str) -> str:
        return text.replace(f"{d}/", "").replace(str(ctx.root), "$TMP")
    message = short(res.message).splitlines()[0] if res.message else ""
    return {"case": c.name, "group": c.group, "category": res.category, "message": message,
            "correct": c.correct, "silent_detection": c.detect,
            "seconds": round(time.monotonic() - t, 1),
            "details": json.loads(short(json.dumps(res.details, default=str)))}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(REPO / "src"),
                    help="source tree put first on PYTHONPATH of every subprocess (default: src/)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these cases")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds before a command counts as a hang (default 60)")
    ap.add_argument("--run-timeout", type=float, default=180.0,
                    help="the same for `emergent run`, which may legitimately train, sample and "
                         "judge the tiny experiment (15 s idle, 45 s on a loaded 2-core machine; "
                         "default 180)")
    ap.add_argument("--rerun-args", default="",
                    help="extra arguments of the changed-config reruns, e.g. '--on-change redo'")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the subprocesses")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.only or ()) - {c.name for c in CASES})
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; see --list")
    return args


def write_results(path: str, meta: dict, rows: list[dict], counts: dict) -> None:
    out = {"meta": meta, "counts": {"cases": len(rows), **counts}, "cases": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print(f"{c.name:32} {c.group:18} correct: {c.correct}")
        return 0
    cases = [c for c in CASES if not args.only or c.name in args.only]
    root = Path(tempfile.mkdtemp(prefix="hostile-inputs-"))
    ctx = Ctx(Path(args.src).resolve(), root, args.timeout, args.run_timeout, args.python)
    ctx.rerun_args = shlex.split(args.rerun_args)
    t0, load0 = time.monotonic(), os.getloadavg()
    rows = []
    try:
        ctx.start()
        meta = src_info(ctx)
        print(f"src {meta['src']} (commit {meta.get('commit', '?')[:7]}"
              f"{', dirty' if meta.get('dirty') else ''}); temp {root}", flush=True)
        for c in cases:
            rows.append(run_case(ctx, c))
            r = rows[-1]
            print(f"{c.name:32} {r['category']:9} {r['seconds']:6.1f}s  {r['message'][:140]}",
                  flush=True)
    finally:
        ctx.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    found = collections.Counter(r["category"] for r in rows)
    counts = {k: found.get(k, 0) for k in CATEGORIES}
    print("\n" + "  ".join(f"{k}: {v}" for k, v in counts.items()) + f"  (cases: {len(rows)})")
    if args.out:
        meta.update(date=datetime.datetime.now().isoformat(timespec="seconds"),
                    python=sys.version.split()[0], machine=platform.platform(),
                    cpus=os.cpu_count(), timeout_s=args.timeout, run_timeout_s=args.run_timeout,
                    rerun_args=args.rerun_args, argv=sys.argv[1:],
                    load_avg_start_end=[load0, os.getloadavg()],
                    wall_s=round(time.monotonic() - t0, 1))
        write_results(args.out, meta, rows, counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
