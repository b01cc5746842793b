"""A fake OpenAI-compatible judge for tests: stdlib http.server on 127.0.0.1 (random free port),
served from a background thread, speaking POST /v1/chat/completions with
choices[0].logprobs.content[0].top_logprobs.

* `responder(body) -> {token: prob}` scripts the first-token distribution per request (default:
  all mass on "50");
* `inject("429", "500", "400", ("slow", seconds), ...)` queues faults (an HTTP status, or a slow
  response, or ("raw", text): an HTTP 200 with that body, malformed JSON included) consumed by
  the next requests in arrival order (a slow response sleeps, then answers normally: the client
  should have timed out by then);
* `calls` counts every POST (faults included), `ok_calls` the successful ones, `bodies` keeps the
  request JSON (bounded);
* bounded: after `max_requests` POSTs it answers 400, so a runaway retry loop fails fast; sleeps
  are capped at 5 s; the server is always shut down by `stop()` / the context manager.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque

from loopback_server import LoopbackServer


def _entry(token: str, prob: float) -> dict:
    return {"token": token, "logprob": math.log(prob) if prob > 0 else -9999.0,
            "bytes": list(token.encode("utf-8"))}


class FakeJudgeServer(LoopbackServer):
    def __init__(self, responder=None, max_requests: int = 500):
        self.responder = responder or (lambda body: {"50": 1.0})
        self.max_requests = max_requests
        self.calls = 0
        self.ok_calls = 0
        self.bodies: deque = deque(maxlen=max_requests)
        self._faults: deque = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control
    def inject(self, *faults) -> None:
        with self._lock:
            self._faults.extend(faults)

    # ------------------------------------------------------------------ serving
    def _send(self, h, status: int, payload, headers: dict | None = None,
              raw: bool = False) -> None:
        data = payload.encode() if raw else json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def _handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(min(length, 1_000_000)) or b"{}")
        with self._lock:
            self.calls += 1
            n = self.calls
            fault = self._faults.popleft() if self._faults else None
            self.bodies.append(body)
        if n > self.max_requests:
            return self._send(h, 400, {"error": {"message": "fake server: too many requests"}})
        if not h.path.rstrip("/").endswith("/chat/completions"):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        if fault == "429":
            return self._send(h, 429, {"error": {"message": "rate limited", "type": "rate"}},
                              {"retry-after": "0"})
        if isinstance(fault, str) and fault.isdigit():  # "500", "503", "400", ...
            return self._send(h, int(fault), {"error": {"message": f"injected {fault}"}})
        if isinstance(fault, tuple) and fault[0] == "slow":
            time.sleep(min(float(fault[1]), 5.0))
        if isinstance(fault, tuple) and fault[0] == "raw":  # a 200 with this body, as is
            return self._send(h, 200, fault[1], raw=True)
        top = self.responder(body)
        ranked = sorted(top.items(), key=lambda kv: -kv[1])[: int(body.get("top_logprobs") or 1)]
        first = ranked[0][0] if ranked else "0"
        content = [dict(_entry(first, top.get(first, 1.0)),
                        top_logprobs=[_entry(t, p) for t, p in ranked])]
        payload = {
            "id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": first},
                         "logprobs": {"content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        with self._lock:
            self.ok_calls += 1
        self._send(h, 200, payload)


def prompt_of(body: dict) -> str:
    """The user text of a chat request body."""
    return "\n".join(m.get("content", "") for m in body.get("messages", [])
                     if isinstance(m.get("content"), str))
