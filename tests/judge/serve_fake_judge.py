"""A fake OpenAI-compatible judge server as a separate process, for `judge.server` tests:
`python serve_fake_judge.py --port N [--exit-at-once] [--delay S] [--ignore-term]
[--pid-file F] [--child-pid-file F]`.

It serves tests/fake_judge_server.py's chat completions (all mass on "50", or "90" for prompts
naming "kind") on 127.0.0.1:N plus GET /v1/models, prints a line per request to stdout (which
the judge writes to its log), and runs until SIGTERM. `--delay`: listen only after S seconds
(a model loading); `--exit-at-once`: print a message and exit 3 (a bad command line);
`--ignore-term`: ignore SIGTERM (the judge must SIGKILL it); `--child-pid-file`: also start a
sleeping child process (a vLLM worker) in the same process group and write its pid there.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fake_judge_server

from fake_judge_server import FakeJudgeServer, prompt_of  # noqa: E402
from loopback_server import _Server  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--exit-at-once", action="store_true")
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--pid-file")
    ap.add_argument("--child-pid-file")
    ap.add_argument("--api-key")  # accepted (and printed, as vLLM prints its args)
    a = ap.parse_args()
    print(f"fake judge server: args {sys.argv[1:]} env SECRET_TOKEN="
          f"{os.environ.get('SECRET_TOKEN', '')}", flush=True)
    if a.pid_file:
        Path(a.pid_file).write_text(str(os.getpid()))
    if a.exit_at_once:
        print("fake judge server: error: model file not found", flush=True)
        return 3
    if a.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if a.child_pid_file:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(a.child_pid_file).write_text(str(child.pid))
    time.sleep(a.delay)
    fake = FakeJudgeServer(lambda body: {"90": 1.0} if "kind" in prompt_of(body)
                           else {"50": 1.0})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            print(f"fake judge server: POST {self.path}", flush=True)
            fake._handle(self)

        def do_GET(self):
            ok = self.path.rstrip("/").endswith("/models")
            data = json.dumps({"object": "list", "data": [{"id": "fake-judge"}]} if ok
                              else {"error": "no route"}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = _Server(("127.0.0.1", a.port), Handler)
    print(f"fake judge server: listening on {a.port}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.05)
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
