"""A local judge server the run starts and stops itself (`judge.server`, docs/judging.md, "A
local judge server started by the run").

With a `server:` block in the judge config (backend `openai`, a `base_url`), the judge starts
`command` (vLLM, llama.cpp's llama-server, TGI...) as a subprocess just before it sends its first
request (a dry run, or a run whose calls are all cached, starts nothing), polls
``base_url + "/models"`` until the server answers, and stops it when the judge is closed:

* its output (stdout and stderr) goes to ``RUN/logs/judge_server.log`` (beside the judgments
  file; `emergent.core.rundir.judge_server_log_path`), headed by the command line, redacted;
* ready: an HTTP reply other than 5xx from ``/models`` (vLLM binds its port once the model is
  loaded; llama.cpp answers 503 while loading). The command exiting first, or no reply within
  `ready_timeout_s`, is one error line (`UserError`) with the log's last lines, and the process
  is stopped;
* a server already answering at `base_url` before the start is used as it is, not started a
  second time (the log says so) and not stopped at the end;
* stopping: SIGTERM to the server's process group (it runs in its own session, so a Ctrl-C in
  the terminal does not reach it first and vLLM's worker processes go with it), SIGKILL after
  `stop_timeout_s`. It is stopped by `Judge.close()` (every caller closes its judge in a
  `finally`, so also on errors and Ctrl-C), at interpreter exit (atexit), when the process gets
  SIGTERM (a handler installed while a server runs stops it, then lets the signal act as
  before), and when the parent dies abruptly (Linux: the child asks for SIGTERM on its
  parent's death, PR_SET_PDEATHSIG, when started from the main thread);
* credentials: the command and `env` are written only redacted (`emergent.core.redact`:
  values of secret-named flags such as ``--api-key`` and of secret-named variables such as
  ``HF_TOKEN``); `$VAR` / `${VAR}` in the command and in `env` values are expanded from the
  environment at start, so a config can name a secret without holding it; the server's own
  output is written with those secret values masked.

The command line is not part of the judge's fingerprint (`OPERATIONAL` in
emergent.pipeline.experiment): what is scored is named by the judge's `model`, `base_url` and
`mode`, which are.
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlencode, urlsplit

from emergent.core.config import above, at_least
from emergent.core.errors import UserError
from emergent.core.redact import (MASK, redact_command, redact_text, redact_url, secret_name,
                                  secret_values_of_command, split_credentials)

TAIL_LINES = 5  # log lines quoted in a start error
PROBE_TIMEOUT_S = 2.0  # seconds per /models request while waiting


def _command_problem(cmd) -> Optional[str]:
    if isinstance(cmd, str):
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            return f"cannot be split into arguments ({e})"
    else:
        argv = list(cmd or [])
    if not argv or not str(argv[0]).strip():
        return "must name the server's command, e.g. \"vllm serve MODEL --port {port}\""
    return None


def _env_problem(env) -> Optional[str]:
    for k, v in (env or {}).items():
        if not isinstance(k, str) or not k or "=" in k or not isinstance(v, (str, int, float)) \
                or isinstance(v, bool):
            return (f"must map variable names to string values, got {k!r}: "
                    f"{MASK if secret_name(k) else repr(v)}")
    return None


@dataclass(frozen=True)
class JudgeServerConfig:
    """`judge.server`: a server the run starts before its first judge request and stops when
    judging ends (see the module docstring)."""

    # the server's command line: a string (split as a shell would, not run by a shell) or an
    # argv list; "{port}" and "{host}" are replaced by base_url's, $VAR from the environment
    command: Union[str, list[str]] = field(default="", metadata={"check": _command_problem})
    # extra environment variables for the server (e.g. CUDA_VISIBLE_DEVICES); values may be
    # "$VAR"; secret-named ones (HF_TOKEN) are written as *** in every config
    env: dict[str, str] = field(default_factory=dict, metadata={"check": _env_problem})
    ready_timeout_s: float = field(default=600.0, metadata=above(0))  # start until /models answers
    stop_timeout_s: float = field(default=30.0, metadata=at_least(0))  # SIGTERM until SIGKILL
    poll_interval_s: float = field(default=1.0, metadata=above(0))  # between /models probes

    def __post_init__(self):
        for problem in (_command_problem(self.command), _env_problem(self.env)):
            if problem:
                raise ValueError(f"server: {problem}")
        if not self.ready_timeout_s > 0 or self.stop_timeout_s < 0 or not self.poll_interval_s > 0:
            raise ValueError("server: ready_timeout_s and poll_interval_s must be > 0, "
                             "stop_timeout_s >= 0")


# ------------------------------------------------------------------ process-wide stop hooks
_LIVE: set = set()  # JudgeServers whose process this interpreter started and has not stopped
_HOOK_LOCK = threading.RLock()
_ATEXIT = False
_PREV_TERM = None  # the SIGTERM handler replaced while a server runs (None: not installed)


def _stop_all() -> None:
    for s in list(_LIVE):
        s.stop()


def _on_sigterm(signum, frame):
    """Stop every live server, then let SIGTERM do what it did before (default: die)."""
    global _PREV_TERM
    prev = _PREV_TERM
    _PREV_TERM = None
    _stop_all()
    signal.signal(signal.SIGTERM, prev if prev is not None else signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
    else:
        os.kill(os.getpid(), signum)


def _register(server: "JudgeServer") -> None:
    global _ATEXIT, _PREV_TERM
    with _HOOK_LOCK:
        _LIVE.add(server)
        if not _ATEXIT:
            atexit.register(_stop_all)
            _ATEXIT = True
        if _PREV_TERM is None and threading.current_thread() is threading.main_thread():
            prev = signal.getsignal(signal.SIGTERM)
            if prev is not signal.SIG_IGN and prev is not _on_sigterm:
                _PREV_TERM = prev if prev is not None else signal.SIG_DFL
                signal.signal(signal.SIGTERM, _on_sigterm)


def _unregister(server: "JudgeServer") -> None:
    global _PREV_TERM
    with _HOOK_LOCK:
        _LIVE.discard(server)
        if (not _LIVE and _PREV_TERM is not None
                and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is _on_sigterm):
            signal.signal(signal.SIGTERM, _PREV_TERM)
            _PREV_TERM = None


_LIBC = None
if sys.platform.startswith("linux"):
    try:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover
        _LIBC = None
PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int, death_signal: bool):
    """In the child before exec: its own session (process group), and on Linux SIGTERM when
    the parent dies."""
    def setup():
        os.setsid()
        if death_signal and _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
    return setup


class JudgeServer:
    """The server of one judge (`JudgeServerConfig`), started once by `start()`, stopped by
    `stop()`; `log_path` is set by the judging (RUN/logs/judge_server.log) before the start."""

    def __init__(self, cfg: JudgeServerConfig, base_url: str, api_key_env: Optional[str] = None,
                 log_path: Optional[Path] = None):
        self.cfg = cfg
        self.base_url = base_url
        self.endpoint = redact_url(base_url).rstrip("/")
        self.api_key_env = api_key_env
        self.log_path = Path(log_path) if log_path else None
        self.proc: Optional[subprocess.Popen] = None
        self.reused = False  # a server already answered at base_url: not started, not stopped
        self._secrets: list[str] = []
        self._pump: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ command and probes
    def argv(self) -> list[str]:
        """The command as run: placeholders and $VARs filled in."""
        cmd = self.cfg.command
        argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        p = urlsplit(split_credentials(self.base_url)[0])
        port = str(p.port or (443 if p.scheme == "https" else 80))
        host = p.hostname or "127.0.0.1"
        return [os.path.expandvars(a.replace("{port}", port).replace("{host}", host))
                for a in argv]

    def _env(self) -> dict:
        extra = {k: os.path.expandvars(str(v)) for k, v in self.cfg.env.items()}
        return {**os.environ, **extra}

    def _probe(self) -> Optional[int]:
        """The HTTP status of GET base_url/models, or None when nothing answers."""
        base, userinfo, query = split_credentials(self.base_url)
        url = base.rstrip("/") + "/models" + (("?" + urlencode(query)) if query else "")
        headers = {}
        if userinfo:
            headers["Authorization"] = "Basic " + b64encode(userinfo.encode()).decode("ascii")
        elif self.api_key_env and os.environ.get(self.api_key_env):
            headers["Authorization"] = "Bearer " + os.environ[self.api_key_env]
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=PROBE_TIMEOUT_S) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, ValueError):  # refused, reset, timed out, not HTTP
            return None

    @staticmethod
    def _ready(status: Optional[int]) -> bool:
        return status is not None and status < 500

    # ------------------------------------------------------------------ log
    def _log_file(self) -> Path:
        if self.log_path is None:  # judged outside judge_answers: a temporary log
            self.log_path = Path(tempfile.gettempdir()) / f"emergent-judge-server-{os.getpid()}.log"
        self.log_path = Path(self.log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return self.log_path

    def _note(self, line: str) -> None:
        """A line of ours in the log (and on stdout)."""
        text = f"[emergent {time.strftime('%Y-%m-%d %H:%M:%S')}] {self._mask(line)}"
        with open(self._log_file(), "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"judge server: {self._mask(line)}", flush=True)

    def _mask(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, MASK)
        return redact_text(text)

    def _pump_output(self, stream, path: Path) -> None:
        with open(path, "a", encoding="utf-8", errors="replace") as fh:
            for raw in iter(stream.readline, b""):
                fh.write(self._mask(raw.decode("utf-8", errors="replace")))
                fh.flush()
        stream.close()

    def tail(self, n: int = TAIL_LINES) -> str:
        """The log's last `n` non-empty lines, joined by " | " (one line)."""
        try:
            lines = [ln.strip() for ln in self._log_file().read_text(
                encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    # ------------------------------------------------------------------ start / stop
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the server unless it runs (or another answers at base_url); return once
        base_url/models answers. One UserError line (and nothing left running) otherwise."""
        if self.proc is not None or self.reused:  # started (a crash is not restarted)
            return
        with self._lock:
            if self.proc is not None or self.reused:
                return
            if self._probe() is not None:  # something answers there already: use it
                self.reused = True
                self._note(f"a server already answers at {self.endpoint}; using it (not "
                           "started, not stopped by this run)")
                self._wait_ready(None)
                return
            argv = self.argv()
            env = self._env()
            self._secrets = sorted({v for v in secret_values_of_command(argv) if len(v) >= 4}
                                   | {v for k, v in env.items()
                                      if k in self.cfg.env and secret_name(k) and len(v) >= 4},
                                   key=len, reverse=True)
            log = self._log_file()
            self._note(f"starting: $ {shlex.join(redact_command(argv))} "
                       f"(log: {log}; ready when {self.endpoint}/models answers, at most "
                       f"{self.cfg.ready_timeout_s:g} s)")
            main = threading.current_thread() is threading.main_thread()
            try:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, env=env,
                    preexec_fn=_child_setup(os.getpid(), main))
            except OSError as e:
                self._note(f"could not start: {e}")
                raise UserError(f"judge.server: cannot run {redact_command(argv)[0]!r}: "
                                f"{e.strerror or e}; log: {log}") from None
            _register(self)
            self._pump = threading.Thread(target=self._pump_output, args=(self.proc.stdout, log),
                                          name="judge-server-log", daemon=True)
            self._pump.start()
            self._wait_ready(self.proc)

    def _wait_ready(self, proc: Optional[subprocess.Popen]) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.cfg.ready_timeout_s
        while True:
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                self._finish_pump()
                self._note(f"the server exited with status {code} before answering")
                _signal_group(proc.pid, signal.SIGKILL)  # any child it left behind
                self.proc = None
                self._stopped()
                raise UserError(f"judge.server: the command exited with status {code} before "
                                f"{self.endpoint}/models answered; last lines of "
                                f"{self.log_path}: {self.tail()}")
            if self._ready(self._probe()):
                self._note(f"ready at {self.endpoint} after {time.monotonic() - t0:.1f} s"
                           + (f" (pid {proc.pid})" if proc is not None else ""))
                return
            if time.monotonic() >= deadline:
                self._note(f"no answer within {self.cfg.ready_timeout_s:g} s")
                if proc is not None:
                    self.stop()
                raise UserError(f"judge.server: {self.endpoint}/models did not answer within "
                                f"ready_timeout_s={self.cfg.ready_timeout_s:g} s"
                                + ("; the server was stopped" if proc is not None else
                                   " (a server already listening there, not started by this run)")
                                + f"; last lines of {self.log_path}: {self.tail()}")
            time.sleep(self.cfg.poll_interval_s)

    def _finish_pump(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None

    def _stopped(self) -> None:
        _unregister(self)

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after `stop_timeout_s`; waits until
        the process is gone. A reused server, or none, is left alone."""
        proc = self.proc
        if proc is None:
            return
        try:
            pgid = proc.pid  # its own session: the group id is its pid
            if proc.poll() is None:
                _signal_group(pgid, signal.SIGTERM)
                try:
                    proc.wait(timeout=self.cfg.stop_timeout_s)
                    how = "stopped (SIGTERM)"
                except subprocess.TimeoutExpired:
                    _signal_group(pgid, signal.SIGKILL)
                    proc.wait()
                    how = f"killed (SIGKILL after {self.cfg.stop_timeout_s:g} s)"
            else:
                how = f"had exited (status {proc.returncode})"
            _signal_group(pgid, signal.SIGKILL)  # any worker left behind by the leader
            self._finish_pump()
            self._note(f"{how}, pid {proc.pid}")
        finally:
            self.proc = None
            self._stopped()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
