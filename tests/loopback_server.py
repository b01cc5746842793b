"""The HTTP plumbing shared by the tests' loopback servers (fake_judge_server, logprob_server):
a threaded server on 127.0.0.1 at a free port, POSTs handed to the subclass's `_handle(h)`,
started and stopped explicitly or as a context manager. Nothing leaves the machine."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    """A listen backlog for many concurrent judge connections (the default of 5 refuses some
    of 32 simultaneous connects on a loaded machine)."""

    request_queue_size = 256
    daemon_threads = True


class LoopbackServer:
    """Subclasses define `_handle(self, h)` for one POST request (`h` is the request handler)."""

    _httpd = None
    _thread = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                server._handle(self)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
