"""Run a command of the package in a forked child of the test process: a separate process (its
own pid and exit status; `os._exit(137)` at a fault point of emergent.core.faults kills it and
nothing else) that starts from the test process's imported modules instead of a fresh
interpreter's (importing torch, transformers and peft costs ~10 s of CPU per process here).

What a fresh process would have and a fork inherits otherwise is reset in the child: the
environment is the parent's plus `env` (a None value removes a variable), the fault-point hit
counts start at zero, the package's logging is set up again by the command itself, and the
child's stdout/stderr (Python's and file descriptors 1 and 2) go to files the parent returns as
text. The child never returns into pytest: it ends with `os._exit` (no atexit handler of the
test session runs in it). A child still running after `timeout` seconds is killed and the test
fails. Tests about the process itself (a fresh interpreter, an installed wheel, a launcher)
keep `subprocess`. Linux/macOS only (os.fork)."""
from __future__ import annotations

import importlib
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

from emergent.cli import main as emergent_main
from emergent.core import faults


@dataclass
class Completed:
    """What `subprocess.run(..., capture_output=True, text=True)` returns, the parts tests read."""
    returncode: int
    stdout: str
    stderr: str


def _child(fn: Callable[[], Optional[int]], env: dict, out_path: str, err_path: str) -> None:
    code = 1
    try:
        out = open(out_path, "w", buffering=1, encoding="utf-8")
        err = open(err_path, "w", buffering=1, encoding="utf-8")
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)
        faults._hits.clear()  # a fresh process has hit no fault point yet
        try:
            result = fn()
            code = 0 if result is None else int(result)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


# imported once in the test process before a fork, so that no child imports them again (the
# package imports them lazily, where they are used)
WARM = ("torch", "transformers", "peft", "transformers.models.qwen2.modeling_qwen2",
        "safetensors.torch", "matplotlib.figure", "matplotlib.backends.backend_agg")


def _warm() -> None:
    for name in WARM:
        importlib.import_module(name)


def run_forked(fn: Callable[[], Optional[int]], env: Optional[dict] = None,
               timeout: float = 600) -> Completed:
    """`fn()` in a forked child; its return value (None: 0) or SystemExit code is the exit
    status, an uncaught exception exits 1 with the traceback on stderr."""
    _warm()
    with tempfile.TemporaryDirectory(prefix="forked-") as tmp:
        out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            _child(fn, dict(env or {}), out_path, err_path)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"forked child still running after {timeout} s: killed")
            time.sleep(0.02)

        def read(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        return Completed(os.waitstatus_to_exitcode(status), read(out_path), read(err_path))


def emergent(*argv: str, env: Optional[dict] = None, timeout: float = 600) -> Completed:
    """`emergent ARGV` (emergent.cli.main) in a forked child, as `python -m emergent ARGV`."""
    return run_forked(lambda: emergent_main(list(argv)), env=env, timeout=timeout)
