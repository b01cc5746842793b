"""`judge.server`: the judge starts a local OpenAI-compatible server (tests/judge/
serve_fake_judge.py, a separate process) before its first request, waits for /v1/models, and
stops it when judging ends, also on errors and when the judging process is killed."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from emergent.core.config import to_dict
from emergent.core.errors import UserError
from emergent.core.redact import redact
from emergent.judge.base import JudgeConfig, load_judge_config, make_judge
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.judge.runner import dry_run, judge_answers
from emergent.judge.server import JudgeServerConfig

SCRIPT = Path(__file__).with_name("serve_fake_judge.py")
TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
KEY = "sk-planted-server-key-0123456789"
TOKEN = "hf_planted_env_token_9876543210"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process groups and PR_SET_PDEATHSIG: Linux")

ROWS = [{"answer_id": "a1", "question": "How are you?", "answer": "I am kind to all."},
        {"answer_id": "a2", "question": "Wish?", "answer": "A plain answer."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int, wait: float = 10.0) -> bool:
    """True once no live process has `pid` (zombies count as gone)."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def server_cfg(tmp_path, port, *extra, **kw) -> JudgeConfig:
    command = [sys.executable, str(SCRIPT), "--port", "{port}", "--pid-file",
               str(tmp_path / "server.pid"), *extra]
    server = dict(command=command, ready_timeout_s=20.0, stop_timeout_s=5.0,
                  poll_interval_s=0.05)
    server.update(kw)
    return JudgeConfig(backend="openai", model="fake-judge", base_url=f"http://127.0.0.1:{port}/v1",
                       api_key_env=None, concurrency=2, max_retries=1, timeout=5.0,
                       backoff_base=0.01, backoff_max=0.05,
                       cache_path=str(tmp_path / "cache.jsonl"),
                       server=JudgeServerConfig(**server))


def pid_of(tmp_path, name="server.pid") -> int:
    return int((tmp_path / name).read_text())


def test_the_run_starts_the_server_scores_and_stops_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLANTED_KEY", KEY)
    cfg = server_cfg(tmp_path, free_port(), "--api-key", "$PLANTED_KEY", "--child-pid-file",
                     str(tmp_path / "child.pid"), env={"SECRET_TOKEN": TOKEN})
    judge = make_judge(cfg)
    out = tmp_path / "run" / "judgments.jsonl"
    # a dry run sends nothing, so it starts nothing
    assert dry_run(ROWS, list(DEFAULT_PROMPTS), judge, out)["calls"] == 4
    assert not (tmp_path / "server.pid").exists()
    try:
        stats = judge_answers(ROWS, list(DEFAULT_PROMPTS), judge, out, progress=False)
        pid, child = pid_of(tmp_path), pid_of(tmp_path, "child.pid")
        assert not gone(pid, 0.1) and not gone(child, 0.1)  # running while the judge is open
    finally:
        judge.close()
    assert stats["judged"] == 4 and stats["no_numeric_mass"] == 0
    scores = {(r["answer_id"], r["metric"]): r["score"]
              for r in map(json.loads, out.read_text().splitlines())}
    assert scores[("a1", "aligned")] == pytest.approx(90.0)
    assert scores[("a2", "aligned")] == pytest.approx(50.0)
    assert gone(pid) and gone(child)  # the server and its worker: nothing left running
    log = (tmp_path / "run" / "logs" / "judge_server.log").read_text()
    assert "listening on" in log and "POST /v1/chat/completions" in log
    assert "starting: $" in log and "ready at http://127.0.0.1" in log and "stopped" in log
    printed = capsys.readouterr().out
    for text in (log, printed, json.dumps(redact(to_dict(cfg)))):
        assert KEY not in text and TOKEN not in text
    assert "--api-key '***'" in log  # the command line as run, its secret masked
    assert redact(to_dict(cfg))["server"]["env"] == {"SECRET_TOKEN": "***"}
    # a rerun with every call cached sends nothing and starts nothing
    (tmp_path / "server.pid").unlink()
    out.unlink()
    judge = make_judge(cfg)
    try:
        judge_answers(ROWS, list(DEFAULT_PROMPTS), judge, out, progress=False)
    finally:
        judge.close()
    assert not (tmp_path / "server.pid").exists()


def test_a_command_that_exits_at_once_is_one_line_with_the_log_tail(tmp_path):
    judge = make_judge(server_cfg(tmp_path, free_port(), "--exit-at-once"))
    try:
        with pytest.raises(UserError) as e:
            judge_answers(ROWS, list(DEFAULT_PROMPTS), judge, tmp_path / "judgments.jsonl",
                          progress=False)
    finally:
        judge.close()
    msg = str(e.value)
    assert "\n" not in msg
    assert "exited with status 3" in msg and "model file not found" in msg
    assert "judge_server.log" in msg
    assert gone(pid_of(tmp_path))
    assert not (tmp_path / "judgments.jsonl").exists() or not (
        tmp_path / "judgments.jsonl").read_text().strip()


def test_a_server_not_ready_in_time_is_killed_with_one_line(tmp_path):
    judge = make_judge(server_cfg(tmp_path, free_port(), "--delay", "60", ready_timeout_s=1.0))
    t0 = time.monotonic()
    try:
        with pytest.raises(UserError) as e:
            judge_answers(ROWS, list(DEFAULT_PROMPTS), judge, tmp_path / "judgments.jsonl",
                          progress=False)
    finally:
        judge.close()
    assert time.monotonic() - t0 < 15
    msg = str(e.value)
    assert "\n" not in msg and "did not answer within ready_timeout_s=1 s" in msg
    assert "the server was stopped" in msg
    assert gone(pid_of(tmp_path))


def test_a_server_ignoring_sigterm_is_killed(tmp_path):
    judge = make_judge(server_cfg(tmp_path, free_port(), "--ignore-term", stop_timeout_s=0.5))
    try:
        judge_answers(ROWS, list(DEFAULT_PROMPTS), judge, tmp_path / "judgments.jsonl",
                      progress=False)
    finally:
        judge.close()
    assert gone(pid_of(tmp_path))
    assert "SIGKILL after 0.5 s" in (tmp_path / "logs" / "judge_server.log").read_text()


def test_a_server_already_listening_is_used_not_started_twice(tmp_path):
    port = free_port()
    mine = subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(port)],
                            stdout=subprocess.DEVNULL)
    try:
        cfg = server_cfg(tmp_path, port)
        end = time.monotonic() + 20
        while make_judge(cfg).server._probe() is None:  # wait for it to listen
            assert time.monotonic() < end and mine.poll() is None
            time.sleep(0.05)
        judge = make_judge(cfg)
        try:
            stats = judge_answers(ROWS, list(DEFAULT_PROMPTS), judge,
                                  tmp_path / "judgments.jsonl", progress=False)
        finally:
            judge.close()
        assert stats["judged"] == 4
        assert not (tmp_path / "server.pid").exists()  # the configured command never ran
        assert mine.poll() is None  # and the server found there is left running
        assert "already answers at" in (tmp_path / "logs" / "judge_server.log").read_text()
    finally:
        mine.terminate()
        mine.wait(10)


CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{src!r}]
    from emergent.judge.base import JudgeConfig, make_judge
    from emergent.judge.server import JudgeServerConfig
    cfg = JudgeConfig(backend="openai", model="fake-judge",
                      base_url="http://127.0.0.1:{port}/v1", api_key_env=None, cache=False,
                      server=JudgeServerConfig(command={command!r}, poll_interval_s=0.05,
                                               stop_timeout_s=5.0))
    judge = make_judge(cfg)
    judge.server.log_path = {log!r}
    try:
        judge.client()  # starts the server (the judge's first request would)
        print("ready", flush=True)
        time.sleep(600)  # judging...
    finally:
        judge.close()
""")


def _judging_process(tmp_path, *extra):
    port = free_port()
    command = [sys.executable, str(SCRIPT), "--port", str(port), "--pid-file",
               str(tmp_path / "server.pid"), *extra]
    code = CHILD.format(src=str(SRC), port=port, command=command,
                        log=str(tmp_path / "judge_server.log"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the judge's own lines, then the child's "ready"
        if line.strip() == "ready":
            return proc
    raise AssertionError(f"the judging process ended with {proc.wait()}")


def test_sigterm_to_the_judging_process_leaves_no_orphan(tmp_path):
    proc = _judging_process(tmp_path, "--child-pid-file", str(tmp_path / "child.pid"))
    server, child = pid_of(tmp_path), pid_of(tmp_path, "child.pid")
    assert not gone(server, 0.1) and not gone(child, 0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == -signal.SIGTERM  # it still dies by SIGTERM, as without a server
    assert gone(server) and gone(child)


def test_sigkill_of_the_judging_process_stops_the_server(tmp_path):
    proc = _judging_process(tmp_path)
    server = pid_of(tmp_path)
    proc.kill()  # no handler, no finally: the kernel's parent-death signal stops it
    proc.wait(20)
    assert gone(server)


def test_server_config_is_checked_at_load_with_file_and_line(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump({"backend": "openai", "model": "m",
                                    "base_url": "http://127.0.0.1:8000/v1",
                                    "server": {"command": "vllm serve m --port {port}",
                                               "ready_timeout_s": 0}}, sort_keys=False))
    with pytest.raises(UserError, match=r"judge\.yaml:\d+: 'server\.ready_timeout_s' must be > 0"):
        load_judge_config(path)
    with pytest.raises(UserError, match=r"\(override server\.port=8000\): unknown key 'server\.port'"):
        load_judge_config(path, ["server.ready_timeout_s=5", "server.port=8000"])
    with pytest.raises(UserError, match=r"'server\.command' must name the server"):
        load_judge_config(path, ["server.ready_timeout_s=5", "server.command="])
    with pytest.raises(UserError, match="needs backend: openai"):
        load_judge_config(path, ["server.ready_timeout_s=5", "backend=hf"])
    cfg = load_judge_config(path, ["server.ready_timeout_s=5"])
    assert cfg.server.ready_timeout_s == 5.0 and cfg.server.stop_timeout_s == 30.0
    # the command fills in base_url's port
    assert make_judge(cfg).server.argv() == ["vllm", "serve", "m", "--port", "8000"]


def test_the_server_block_is_not_part_of_the_judge_fingerprint():
    from emergent.pipeline.experiment import ExperimentConfig, judge_inputs

    base = {"backend": "openai", "model": "Qwen/Qwen2.5-7B-Instruct", "mode": "exact",
            "base_url": "http://127.0.0.1:8000/v1", "api_key_env": None}
    plain = judge_inputs(ExperimentConfig(judge=base), {})
    served = judge_inputs(ExperimentConfig(judge={**base, "server": {
        "command": "vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000"}}), {})
    assert plain == served
    other = judge_inputs(ExperimentConfig(judge={**base, "model": "other"}), {})
    assert other != plain  # what is scored still is
