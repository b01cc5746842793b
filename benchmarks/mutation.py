#!/usr/bin/env python
"""Mutation score of named modules against their tests (a small AST mutator; not part of CI).

Each mutant is one small change to one module - a comparison/boundary operator (< <=, > >=,
== !=, is/is not, in/not in), an arithmetic operator (+ -, * /, // /), an integer constant +-1,
`and`/`or` swapped, a `not` or unary minus removed, a statement in a function replaced by
`pass`, `return X` -> `return None`, True/False swapped, a `range` start moved by one - and is
*killed* when the module's tests fail (or time out) with it. Docstrings, imports, annotations,
decorators and default values (of arguments and dataclass fields) are not mutated.

Isolation: the repository's src/, tests/, configs/ and pyproject.toml are copied into a
temporary directory once; nothing under the repository is ever written (other people run tests
against it). The mutated module is never written to disk either: each mutant runs in a forked
child that puts the copy's src/ first on sys.path, drops the repository's src/ from it, and
installs an import hook serving the mutated, compiled AST under the module's name; the child
checks that `emergent` and the module are imported from the copy. Forking from a parent that
has already imported torch/transformers/pytest makes a mutant cost its tests' own run time,
not an interpreter start. The tiny test model (the `tiny_model_dir` fixture) is built once from
the unmutated copy and copied for each mutant.

Per module: the unmutated copy runs its tests first (tests failing there are deselected and
listed); then every mutant runs them with `-x`; a surviving mutant then runs the module's
wider tests (`--wider`). Survivors judged equivalent (benchmarks/mutation_equivalent.yaml,
keyed by module + line + change, each with a one-line reason) are left out of the score:
score = (killed + timed out) / (generated - equivalent).

    EMERGENT_UPSTREAM=../shared/upstream .venv/bin/python benchmarks/mutation.py
    .venv/bin/python benchmarks/mutation.py --modules metrics,batching --budget 600
    .venv/bin/python benchmarks/mutation.py --modules render --tests render=tests/data/test_render.py
    .venv/bin/python benchmarks/mutation.py --modules metrics --list     # the mutants only
"""
from __future__ import annotations

import argparse
import ast
import copy
import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODULES = ("metrics", "judge_scoring", "render", "batching", "chat_data")
# module -> wider tests run on a mutant that its own tests (tests/**/test_<module>.py) miss;
# test files are found by name, so they survive moves into subfolders
DEFAULT_WIDER = {
    "metrics": ["test_code_eval.py", "test_toyworld_judge.py"],
    "judge_scoring": ["test_judge_hf.py", "test_judge_openai.py",
                      "test_judge_openai_exact.py::test_prefix_arithmetic_by_hand"],
    "render": ["test_toyworld_tokenizer.py"],
    "batching": ["test_estimate.py",
                 "test_train.py::test_pack_step_splits_a_step_under_the_token_budget"],
    "chat_data": ["test_dpo.py::test_preference_rows_load_in_both_forms_and_bad_rows_"
                  "name_their_line"],
}
EQUIVALENT_FILE = REPO / "benchmarks" / "mutation_equivalent.yaml"
RESULT_FILE = REPO / "benchmarks" / "results" / "mutation.json"


# ------------------------------------------------------------------------------ the mutator

_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn,
        ast.NotIn: ast.In}
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
        ast.FloorDiv: ast.Div}
_REMOVABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Continue,
              ast.Break, ast.If, ast.For, ast.While, ast.Delete, ast.Assert)


def _short(node, limit: int = 90) -> str:
    text = ast.unparse(node).strip().splitlines()[0] if not isinstance(node, str) else node
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_str(node) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(
        node, ast.JoinedStr)


class Mutator(ast.NodeTransformer):
    """Walks a module in a fixed order, numbering every mutation it could make. With
    `target=None` it only lists them (`sites`); with `target=k` it applies mutation k."""

    def __init__(self, target: int | None = None):
        self.target, self.count, self.sites, self.applied = target, 0, [], None
        self._fn_depth = 0

    def _offer(self, node, op: str, make):
        i = self.count
        self.count += 1
        if self.target is not None and i != self.target:
            return None
        new = make(copy.deepcopy(node))
        ast.copy_location(new, node)
        ast.fix_missing_locations(new)
        if isinstance(new, ast.Pass):
            change = f"`{_short(node)}` -> pass"
        else:
            change = f"`{_short(node)}` -> `{_short(new)}`"
        site = {"index": i, "line": node.lineno, "col": node.col_offset, "op": op,
                "change": change}
        if self.target is None:
            self.sites.append(site)
            return None
        self.applied = site
        return new

    # --- statements -------------------------------------------------------------------
    def visit(self, node):
        if isinstance(node, ast.stmt):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                return node
            if isinstance(node, ast.Expr) and _is_str(node.value):
                return node  # docstring
            new = super().visit(node)
            if self._fn_depth and isinstance(node, _REMOVABLE):
                r = self._offer(node, "statement removal", lambda n: ast.Pass())
                if r is not None:
                    return r
            return new
        return super().visit(node)

    def _body(self, stmts):
        out = []
        for s in stmts:
            r = self.visit(s)
            out.extend(r if isinstance(r, list) else [r])
        return out

    def visit_FunctionDef(self, node):  # decorators, arguments and defaults are left alone
        self._fn_depth += 1
        node.body = self._body(node.body)
        self._fn_depth -= 1
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.body = self._body(node.body)
        return node

    def visit_AnnAssign(self, node):
        if node.value is not None and self._fn_depth:  # class-level values are field defaults
            node.value = self.visit(node.value)
        return node

    def visit_Lambda(self, node):
        node.body = self.visit(node.body)
        return node

    def visit_arguments(self, node):
        return node

    def visit_Return(self, node):
        node = self.generic_visit(node)
        if node.value is not None and not (isinstance(node.value, ast.Constant)
                                           and node.value.value is None):
            def make(n):
                n.value = ast.Constant(None)
                return n
            r = self._offer(node, "return None", make)
            if r is not None:
                return r
        return node

    def visit_AugAssign(self, node):
        node = self.generic_visit(node)
        if type(node.op) in _BIN and not _is_str(node.value):
            def make(n):
                n.op = _BIN[type(n.op)]()
                return n
            r = self._offer(node, "arithmetic", make)
            if r is not None:
                return r
        return node

    # --- expressions ------------------------------------------------------------------
    def visit_Compare(self, node):
        node = self.generic_visit(node)
        for k, op in enumerate(node.ops):
            if type(op) in _CMP:
                def make(n, k=k):
                    n.ops[k] = _CMP[type(n.ops[k])]()
                    return n
                r = self._offer(node, "comparison", make)
                if r is not None:
                    return r
        return node

    def visit_BinOp(self, node):
        node = self.generic_visit(node)
        if type(node.op) in _BIN and not (_is_str(node.left) or _is_str(node.right)):
            def make(n):
                n.op = _BIN[type(n.op)]()
                return n
            r = self._offer(node, "arithmetic", make)
            if r is not None:
                return r
        return node

    def visit_BoolOp(self, node):
        node = self.generic_visit(node)

        def make(n):
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return n
        r = self._offer(node, "and/or", make)
        return node if r is None else r

    def visit_UnaryOp(self, node):
        node = self.generic_visit(node)
        if isinstance(node.op, (ast.Not, ast.USub)):
            r = self._offer(node, "not removal" if isinstance(node.op, ast.Not)
                            else "sign removal", lambda n: n.operand)
            if r is not None:
                return r
        return node

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            r = self._offer(node, "True/False", lambda n: ast.Constant(not v))
            if r is not None:
                return r
        elif isinstance(v, int):
            for d in (1, -1):
                r = self._offer(node, "integer +-1", lambda n, d=d: ast.Constant(v + d))
                if r is not None:
                    return r
        return node

    def visit_Call(self, node):
        node = self.generic_visit(node)
        if (isinstance(node.func, ast.Name) and node.func.id == "range" and node.args
                and not node.keywords):
            first = node.args[0]
            if len(node.args) == 1:
                def make(n):
                    n.args = [ast.Constant(1), n.args[0]]
                    return n
            elif isinstance(first, ast.Constant):
                make = None  # an integer start is already moved by the constant mutation
            else:
                def make(n):
                    n.args[0] = ast.BinOp(n.args[0], ast.Add(), ast.Constant(1))
                    return n
            if make is not None:
                r = self._offer(node, "range start", make)
                if r is not None:
                    return r
        return node

    # the rest of `visit_*` is NodeTransformer.generic_visit


def list_mutants(source: str) -> list[dict]:
    m = Mutator()
    m.visit(ast.parse(source))
    seen: dict[tuple, int] = {}
    for s in m.sites:  # the same change twice on one line: number the later ones
        key = (s["line"], s["change"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            s["change"] += f" (#{seen[key]})"
    return m.sites


def mutated_tree(source: str, index: int) -> ast.Module:
    m = Mutator(index)
    tree = ast.fix_missing_locations(m.visit(ast.parse(source)))
    assert m.applied is not None and m.applied["index"] == index
    return tree


# ------------------------------------------------------------------------------ running

class _Recorder:
    """pytest plugin: the node ids of failed tests and collection errors."""

    def __init__(self, order: dict | None = None):
        self.failed: list[str] = []
        self.durations: dict[str, float] = {}
        self.order = order

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed.append(report.nodeid)
        if report.when == "call":
            self.durations[report.nodeid] = report.duration

    def pytest_collection_modifyitems(self, session, config, items):
        if self.order:  # fastest files and tests first: with -x a killed mutant stops sooner
            per_file: dict[str, float] = {}
            for nodeid, d in self.order.items():
                f = nodeid.split("::")[0]
                per_file[f] = per_file.get(f, 0.0) + d
            inf = float("inf")
            items.sort(key=lambda it: (per_file.get(it.nodeid.split("::")[0], inf),
                                       self.order.get(it.nodeid, inf)))

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed.append(report.nodeid or "<collection>")


def _child(work: Path, fullname: str, modfile: Path, code, pytest_args: list[str],
           log: Path, result: Path, tiny_cache: Path | None, order: dict | None) -> None:
    """Runs in the forked child; never returns."""
    rc = 70
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(work)
        # every temporary file of the run (pytest's tmp_path, conftest's caches) in a folder
        # of its own, removed by the parent when the child ends
        import tempfile as _tempfile

        ctmp = result.with_suffix(".tmp")
        ctmp.mkdir(exist_ok=True)
        os.environ["TMPDIR"] = str(ctmp)
        _tempfile.tempdir = str(ctmp)
        import importlib.abc
        import importlib.util

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return None

            def exec_module(self, module):
                exec(code, module.__dict__)

        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name != fullname or code is None:
                    return None
                return importlib.util.spec_from_file_location(name, str(modfile),
                                                              loader=Loader())

        sys.meta_path.insert(0, Finder())
        import emergent

        origin = Path(emergent.__file__).resolve()
        if work.resolve() not in origin.parents:
            raise RuntimeError(f"emergent imported from {origin}, not from the copy {work}")
        if tiny_cache is not None and fullname != "emergent.models.tiny":
            import emergent.models.tiny as tm

            real = tm.build_tiny_model

            def cached(out_dir, **kw):
                if kw:
                    return real(out_dir, **kw)
                shutil.copytree(tiny_cache, out_dir, dirs_exist_ok=True)
                return Path(out_dir)
            tm.build_tiny_model = cached
        import pytest

        rec = _Recorder(order)
        rc = int(pytest.main(pytest_args, plugins=[rec]))
        mod = sys.modules.get(fullname)
        result.write_text(json.dumps({
            "rc": rc, "failed": rec.failed, "durations": rec.durations, "emergent": str(origin),
            "module": getattr(mod, "__file__", None)}))
    except BaseException as e:  # noqa: BLE001 - reported through the result file
        try:
            result.write_text(json.dumps({"rc": rc, "error": repr(e)}))
        except Exception:
            pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


class Runner:
    def __init__(self, work: Path, workers: int, tiny_cache: Path | None):
        self.work, self.workers, self.tiny_cache = work, workers, tiny_cache
        self.logs = work / "_logs"
        self.logs.mkdir(exist_ok=True)
        self.n = 0

    def run_many(self, jobs: list[dict], deadline: float | None = None) -> None:
        """jobs: dicts with fullname, modfile, code, args, timeout; fills job['outcome']
        ('killed', 'survived', 'timeout', 'not_run') and job['info']."""
        queue = list(jobs)
        running: dict[int, tuple[dict, float, Path]] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    if deadline is not None and time.time() > deadline:
                        for j in queue:
                            j["outcome"] = "not_run"
                        queue = []
                        break
                    job = queue.pop(0)
                    self.n += 1
                    log = self.logs / f"{self.n}.log"
                    result = self.logs / f"{self.n}.json"
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(self.work, job["fullname"], job["modfile"], job["code"],
                               job["args"], log, result, self.tiny_cache, job.get("order"))
                    job["log"] = str(log)
                    running[pid] = (job, time.time(), result)
                if not running:
                    continue
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    now = time.time()
                    for p, (job, t0, _) in list(running.items()):
                        if now - t0 > job["timeout"]:
                            self._kill(p)
                            os.waitpid(p, 0)
                            shutil.rmtree(running[p][2].with_suffix(".tmp"), ignore_errors=True)
                            job["outcome"], job["seconds"] = "timeout", now - t0
                            del running[p]
                    time.sleep(0.02)
                    continue
                if pid not in running:
                    continue
                job, t0, result = running.pop(pid)
                shutil.rmtree(result.with_suffix(".tmp"), ignore_errors=True)
                job["seconds"] = time.time() - t0
                rc = os.waitstatus_to_exitcode(status)
                try:
                    info = json.loads(result.read_text())
                except (OSError, ValueError):
                    info = {"rc": rc, "error": "no result file (crashed)"}
                job["info"], job["rc"] = info, rc
                job["outcome"] = "survived" if rc == 0 else "killed"
        except BaseException:
            for p in running:
                self._kill(p)
            raise

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)  # the child's own process group (setsid)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------------------ equivalents

def load_equivalent(path: Path) -> dict[str, list[dict]]:
    if not path.exists():
        return {}
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return {mod: list(rows or []) for mod, rows in data.items()}


def match_equivalent(module: str, survivors: list[dict], judged: dict[str, list[dict]]):
    """Marks survivors judged equivalent: same line and change, else the same change when it
    occurs once in the module (the line moved). Returns the judgments that matched nothing."""
    rows = judged.get(module, [])
    used = set()
    for s in survivors:
        hit = next((k for k, r in enumerate(rows)
                    if r.get("line") == s["line"] and r.get("change") == s["change"]), None)
        if hit is None:
            same = [k for k, r in enumerate(rows) if r.get("change") == s["change"]]
            if len(same) == 1 and sum(t["change"] == s["change"] for t in survivors) == 1:
                hit = same[0]
        if hit is not None:
            used.add(hit)
            s["equivalent"] = True
            s["reason"] = rows[hit].get("reason", "")
        else:
            s["equivalent"] = False
    return [r for k, r in enumerate(rows) if k not in used]


# ------------------------------------------------------------------------------ main

def find_module(src: Path, name: str) -> Path:
    if name.endswith(".py") or "/" in name:
        p = src / "emergent" / (name if name.endswith(".py") else name + ".py")
        if p.exists():
            return p
        raise SystemExit(f"no module file {p}")
    hits = sorted((src / "emergent").rglob(f"{name.split('.')[-1]}.py"))
    hits = [h for h in hits if "__pycache__" not in h.parts]
    if len(hits) != 1:
        raise SystemExit(f"module {name!r}: {len(hits)} files match ({hits})")
    return hits[0]


def find_tests(tests: Path, names: list[str]) -> list[str]:
    out = []
    for n in names:
        if "/" in n:  # a path (or node id) relative to the repository root
            if not (tests.parent / n.split("::")[0]).exists():
                raise SystemExit(f"no test file {n.split('::')[0]}")
            out.append(n)
            continue
        name, sep, node = n.partition("::")  # a file name, or a file name and test name
        hits = sorted(h for h in tests.rglob(name) if "__pycache__" not in h.parts)
        out += [str(h.relative_to(tests.parent)) + sep + node for h in hits]
    return out


def parse_mapping(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items or []:
        mod, _, files = item.partition("=")
        if not files:
            raise SystemExit(f"--tests/--wider expects MODULE=FILE[,FILE...], got {item!r}")
        out[mod.strip()] = [f.strip() for f in files.split(",") if f.strip()]
    return out


def _preload():
    """Heavy imports done once, before forking (the children inherit them)."""
    for name in ("numpy", "torch", "yaml", "jinja2", "pytest", "tokenizers", "safetensors.torch",
                 "transformers"):
        try:
            __import__(name)
        except Exception:
            pass
    try:
        import torch

        torch.set_num_threads(1)
        from transformers import (AutoModelForCausalLM, AutoTokenizer,  # noqa: F401
                                  PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM)
    except Exception:
        pass


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default=",".join(DEFAULT_MODULES),
                    help="comma-separated module names (found under src/emergent/) or paths")
    ap.add_argument("--tests", action="append", default=[], metavar="MODULE=FILE[,FILE]",
                    help="a module's own tests (default: tests/**/test_<module>.py)")
    ap.add_argument("--wider", action="append", default=[], metavar="MODULE=FILE[,FILE]",
                    help="tests run on mutants the module's own tests miss (defaults built in)")
    ap.add_argument("--no-wider", action="store_true", help="own tests only")
    ap.add_argument("--budget", type=float, default=1800.0,
                    help="seconds for the whole run; mutants not started by then are 'not run'")
    ap.add_argument("--workers", type=int, default=2, help="mutants run at once (max 2 here)")
    ap.add_argument("--timeout-factor", type=float, default=4.0)
    ap.add_argument("--min-timeout", type=float, default=20.0)
    ap.add_argument("--nice", type=int, default=15, help="niceness added to this process")
    ap.add_argument("--equivalent", default=str(EQUIVALENT_FILE))
    ap.add_argument("--out", default=str(RESULT_FILE))
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy and its logs")
    ap.add_argument("--rejudge", action="store_true",
                    help="only re-apply --equivalent to the survivors already in --out")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other modules' results already in --out (rerun some only)")
    args = ap.parse_args(argv)

    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    if args.rejudge:
        out = Path(args.out)
        report = json.loads(out.read_text())
        judged = load_equivalent(Path(args.equivalent))
        for short, entry in report["modules"].items():
            if "survivors" in entry:
                _score(entry, short, judged)
                print(f"{short}: score {entry['score']} ({entry['equivalent']} equivalent)")
        out.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    if args.list:
        for name in modules:
            path = find_module(REPO / "src", name)
            for s in list_mutants(path.read_text()):
                print(f"{path.relative_to(REPO)}:{s['line']}: [{s['op']}] {s['change']}")
        return 0

    if args.nice:
        os.nice(args.nice)

    def stop(signum, frame):  # SIGTERM/SIGINT: kill the running mutants, then stop
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = "1"
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    os.environ.setdefault("EMERGENT_UPSTREAM", str(REPO.parent / "shared" / "upstream"))

    t_start = time.time()
    deadline = t_start + args.budget
    tmp = Path(tempfile.mkdtemp(prefix="emergent-mutation-"))
    work = tmp / "repo"
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    for part in ("src", "tests", "configs"):
        if (REPO / part).exists():
            shutil.copytree(REPO / part, work / part, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", work / "pyproject.toml")
    # the child imports from the copy only: the editable install's path entry goes
    sys.path[:] = [str(work / "src")] + [p for p in sys.path
                                         if not (Path(p or ".") / "emergent").is_dir()]
    if any(m == "emergent" or m.startswith("emergent.") for m in sys.modules):
        raise SystemExit("emergent was imported before the copy was put on sys.path")
    _preload()

    own_map = parse_mapping(args.tests)
    wider_map = {} if args.no_wider else {**DEFAULT_WIDER, **parse_mapping(args.wider)}
    judged = load_equivalent(Path(args.equivalent))

    runner = Runner(work, max(1, args.workers), None)
    # the tiny model, built once from the unmutated copy (fixture tiny_model_dir copies it)
    tiny_cache = tmp / "tiny_model"
    code_build = compile(
        "from emergent.models.tiny import build_tiny_model\n"
        f"build_tiny_model({str(tiny_cache)!r})\n", "<tiny>", "exec")
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(work)
            exec(code_build, {})
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, st = os.waitpid(pid, 0)
    runner.tiny_cache = tiny_cache if os.waitstatus_to_exitcode(st) == 0 else None

    report = {"tool": "benchmarks/mutation.py", "date": _dt.datetime.now().isoformat(
        timespec="seconds"), "git_commit": _git_commit(), "budget_s": args.budget,
        "workers": args.workers, "python": sys.version.split()[0], "modules": {}}
    print(f"copy: {work}  workers: {args.workers}  budget: {args.budget:.0f}s", flush=True)

    try:
        _run_modules(args, modules, work, runner, own_map, wider_map, judged, report, deadline)
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted", flush=True)
    finally:
        report["wall_seconds"] = round(time.time() - t_start, 1)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.merge and out.exists():
            old = json.loads(out.read_text())
            for mod, entry in report["modules"].items():
                entry["run"] = {k: report[k] for k in ("date", "git_commit", "wall_seconds")}
            old_mods = old.get("modules", {})
            for entry in old_mods.values():
                entry.setdefault("run", {k: old.get(k) for k in ("date", "git_commit",
                                                                  "wall_seconds")})
            report["modules"] = {**old_mods, **report["modules"]}
            report["merged"] = True
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out} ({report['wall_seconds']}s)", flush=True)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _run_modules(args, modules, work, runner, own_map, wider_map, judged, report, deadline):
    for name in modules:
        modfile = find_module(work / "src", name)
        rel = modfile.relative_to(work)
        fullname = ".".join(modfile.relative_to(work / "src").with_suffix("").parts)
        short = modfile.stem
        own = find_tests(work / "tests", own_map.get(name) or own_map.get(short)
                         or [f"test_{short}.py"])
        wider = find_tests(work / "tests", wider_map.get(name) or wider_map.get(short) or [])
        wider = [w for w in wider if w not in own]
        source = modfile.read_text()
        sites = list_mutants(source)
        entry = {"file": str(rel), "import_name": fullname, "tests": own, "wider_tests": wider,
                 "generated": len(sites)}
        report["modules"][short] = entry
        t_mod = time.time()
        if not own:
            entry["error"] = "no tests found"
            print(f"{short}: no tests found", flush=True)
            continue
        # the unmutated module, through the same hook: tests failing there are deselected
        base_code = compile(ast.parse(source), str(modfile), "exec", dont_inherit=True)
        # addopts cleared: its `-n auto` (pytest-xdist) would run the tests in fresh worker
        # interpreters, where this process's import hook does not serve the mutant
        common = ["-q", "-o", "addopts=", "-p", "no:cacheprovider", "-p", "no:randomly",
                  "--no-header", "-rN"]
        deselect: dict[str, list[str]] = {}
        base_s, order = {}, {}
        for kind, files in (("own", own), ("wider", wider)):
            if not files:
                continue
            job = {"fullname": fullname, "modfile": modfile, "code": base_code,
                   "args": common + files, "timeout": 900}
            runner.run_many([job])
            info = job.get("info", {})
            if info.get("module") and Path(info["module"]).resolve() != modfile.resolve():
                raise SystemExit(f"{fullname} imported from {info['module']}, not {modfile}")
            failed = info.get("failed", [])
            if job["outcome"] != "survived" and (not failed or "<collection>" in failed
                                                 or any("::" not in f for f in failed)):
                entry.setdefault("baseline_errors", {})[kind] = info.get("error") or failed
                print(f"{short}: {kind} tests fail to run unmutated ({failed}); log "
                      f"{job.get('log')}", flush=True)
                continue
            deselect[kind] = failed
            base_s[kind] = job["seconds"]
            order[kind] = info.get("durations") or {}
        entry["baseline_seconds"] = {k: round(v, 2) for k, v in base_s.items()}
        entry["deselected_failing_unmutated"] = sorted(set(sum(deselect.values(), [])))
        if "own" not in base_s:
            continue

        def argv_for(kind, files):
            out = common + ["-x"] + files
            for f in deselect.get(kind, []):
                out += ["--deselect", f]
            return out

        jobs = []
        for s in sites:
            tree = mutated_tree(source, s["index"])
            try:
                code = compile(tree, str(modfile), "exec", dont_inherit=True)
            except (SyntaxError, ValueError, TypeError) as e:
                s["outcome"] = "killed"
                s["note"] = f"does not compile: {e}"
                continue
            jobs.append({"site": s, "fullname": fullname, "modfile": modfile, "code": code,
                         "args": argv_for("own", own), "order": order.get("own"),
                         "timeout": max(args.min_timeout, args.timeout_factor * base_s["own"])})
        runner.run_many(jobs, deadline)
        for j in jobs:
            j["site"]["outcome"] = j["outcome"]
        if "wider" in base_s:
            second = [dict(j, args=argv_for("wider", wider), order=order.get("wider"),
                           timeout=max(args.min_timeout, args.timeout_factor * base_s["wider"]))
                      for j in jobs if j["outcome"] == "survived"]
            runner.run_many(second, deadline)
            for j in second:
                if j["outcome"] in ("killed", "timeout"):
                    j["site"]["outcome"] = j["outcome"]
                    j["site"]["by_wider"] = True
                elif j["outcome"] == "not_run":
                    j["site"]["wider_not_run"] = True
        outcomes = [s.get("outcome", "not_run") for s in sites]
        survivors = [{"line": s["line"], "location": f"{rel}:{s['line']}:{s['col']}",
                      "op": s["op"], "change": s["change"]}
                     for s in sites if s.get("outcome") == "survived"]
        killed, timed_out = outcomes.count("killed"), outcomes.count("timeout")
        not_run = outcomes.count("not_run")
        entry.update({
            "killed": killed, "killed_by_wider_tests": sum(bool(s.get("by_wider")) for s in sites),
            "timed_out": timed_out, "survived": len(survivors), "not_run": not_run,
            "partial": bool(not_run) or any(s.get("wider_not_run") for s in sites),
            "wall_seconds": round(time.time() - t_mod, 1),
            "mean_mutant_seconds": round(sum(j.get("seconds", 0) for j in jobs)
                                         / max(1, len(jobs)), 2),
            "by_operator": _by_operator(sites),
            "survivors": survivors,
        })
        _score(entry, short, judged)
        n_eq = entry["equivalent"]
        print(f"{short}: {len(sites)} mutants, killed {killed} "
              f"(wider {entry['killed_by_wider_tests']}), timeout {timed_out}, "
              f"survived {len(survivors)} ({n_eq} equivalent), not run {not_run}, "
              f"score {entry['score']}, {entry['wall_seconds']}s", flush=True)
        for s in survivors:
            tag = "  [equivalent] " if s["equivalent"] else "  "
            print(f"{tag}{s['location']}: [{s['op']}] {s['change']}", flush=True)


def _score(entry: dict, module: str, judged: dict) -> None:
    """Marks the entry's survivors judged equivalent and computes the score:
    (killed + timed out) / (generated - equivalent - not run)."""
    survivors = entry["survivors"]
    for s in survivors:
        s.pop("equivalent", None)
        s.pop("reason", None)
    stale = match_equivalent(module, survivors, judged)
    n_eq = sum(s["equivalent"] for s in survivors)
    detected = entry["killed"] + entry["timed_out"]
    ran = entry["generated"] - entry["not_run"]
    entry["equivalent"] = n_eq
    entry["score"] = round(detected / (ran - n_eq), 4) if ran - n_eq > 0 else None
    entry["score_without_equivalents"] = round(detected / ran, 4) if ran > 0 else None
    entry.pop("equivalent_judgments_unmatched", None)
    if stale:
        entry["equivalent_judgments_unmatched"] = stale
    entry["survivors"] = entry.pop("survivors")  # last, after the counts


def _by_operator(sites):
    out: dict[str, dict[str, int]] = {}
    for s in sites:
        d = out.setdefault(s["op"], {})
        k = s.get("outcome", "not_run")
        d[k] = d.get(k, 0) + 1
    return out


if __name__ == "__main__":
    sys.exit(main())
