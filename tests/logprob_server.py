"""A real OpenAI-compatible logprob server for judge tests: stdlib http.server on 127.0.0.1
(random free port) in a background thread, serving a transformers causal LM's next-token
log-probabilities on

* POST /v1/completions: `prompt` as token ids (a list of ints) or text (tokenized without
  special tokens), `max_tokens` 1, `logprobs` N: the top N alternatives of the next token, in
  the legacy format vLLM uses (`choices[0].logprobs.top_logprobs[0]` = {text: logprob}, texts
  that decode alike merged by logsumexp) or, with `completions_format="content"`, the chat-like
  list llama.cpp's server uses (`choices[0].logprobs.content[0].top_logprobs`);
* POST /v1/chat/completions: the messages rendered with the tokenizer's chat template
  (generation prompt added), `logprobs` true, `top_logprobs` N, in the chat format.

`max_logprobs` caps N as vLLM's --max-logprobs does (a larger request is answered 400); None
allows the full vocabulary. One worker thread runs the model (float32) like a serving engine:
requests that arrive together are computed together; the KV cache of each new root prompt is
kept (a few, least recently used dropped), and requests that extend it run only their extra
tokens, batched, on copies of it; results are remembered (bounded), so asking the same
sequence again with another N costs no forward pass. `calls` counts every POST,
`routes` per path; after `max_requests` POSTs it answers 400 so a runaway loop fails fast; the
server is always shut down by `stop()` / the context manager.
"""
from __future__ import annotations

import copy
import json
import queue
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import Future

from loopback_server import LoopbackServer


class LogprobServer(LoopbackServer):
    def __init__(self, model, tokenizer, *, served_name: str = "local-judge",
                 max_logprobs: int | None = 20, completions_format: str = "legacy",
                 max_requests: int = 20000, kept_prompts: int = 4, max_batch: int = 32,
                 batch_wait: float = 0.01, memo_size: int = 1024):
        self.model, self.tok = model.eval(), tokenizer
        self.served_name = served_name
        self.max_logprobs = max_logprobs
        self.completions_format = completions_format
        self.max_requests = max_requests
        self.kept_prompts = kept_prompts
        self.calls = 0
        self.routes: Counter = Counter()
        self.requested_n: list = []
        self.max_batch, self.batch_wait, self.memo_size = max_batch, batch_wait, memo_size
        self._roots: OrderedDict = OrderedDict()  # prompt ids -> (KV cache, last log-probs)
        self._memo: OrderedDict = OrderedDict()  # ids -> next-token log-probs
        self._queue: queue.Queue = queue.Queue()
        self._worker = None
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control
    def start(self) -> "LogprobServer":
        super().start()
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
            self._worker = None
        self._roots.clear()
        self._memo.clear()

    # ------------------------------------------------------------------ the model
    def text(self, token_id: int) -> str:
        """A token's text as a server lists it (its decoding; "" past the tokenizer)."""
        if token_id not in self._texts:
            self._texts[token_id] = (self.tok.decode([token_id]) if token_id < len(self.tok)
                                     else "")
        return self._texts[token_id]

    def next_logprobs(self, ids: list[int]):
        """log-softmax (float32) of the next token after `ids`: remembered, or computed by the
        batching worker together with the requests that arrive meanwhile."""
        key = tuple(int(i) for i in ids)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        fut: Future = Future()
        self._queue.put((key, fut))
        return fut.result(timeout=300)

    def _work(self) -> None:
        """Worker: takes the queued requests (waiting `batch_wait` s for more), computes them."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            time.sleep(self.batch_wait)
            items = [first]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                items.append(nxt)
            try:
                results = self._compute(list(dict.fromkeys(k for k, _ in items)))
                for k, fut in items:
                    fut.set_result(results[k])
            except Exception as e:  # noqa: BLE001 - handed to the waiting request
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)

    def _root_of(self, key: tuple):
        return next((r for r in reversed(self._roots) if len(r) <= len(key) and key[:len(r)] == r),
                    None)

    def _compute(self, keys: list[tuple]) -> dict:
        """A forward over each new root prompt (its KV cache kept); every other sequence in
        right-padded batches of `max_batch` on copies of its root's cache (causal attention:
        the padding after a row's tokens does not change its logits)."""
        import torch

        out: dict = {}
        groups: dict[tuple, list] = {}
        with torch.inference_mode():
            for key in sorted(keys, key=len):
                root = self._root_of(key)
                if root is None:
                    res = self.model(input_ids=torch.tensor([list(key)]), use_cache=True)
                    cache = getattr(res, "cache", None) or res.past_key_values
                    out[key] = torch.log_softmax(res.logits[0, -1].float(), dim=-1)
                    self._roots[key] = (cache, out[key])
                    while len(self._roots) > self.kept_prompts:
                        self._roots.popitem(last=False)
                elif len(root) == len(key):
                    out[key] = self._roots[root][1]
                else:
                    groups.setdefault(root, []).append(key)
            for root, members in groups.items():
                self._roots.move_to_end(root)
                for i in range(0, len(members), self.max_batch):
                    out.update(self._extend(root, members[i:i + self.max_batch]))
        with self._lock:
            for key, logp in out.items():
                self._memo[key] = logp
                while len(self._memo) > self.memo_size:
                    self._memo.popitem(last=False)
        return out

    def _extend(self, root: tuple, keys: list[tuple]) -> dict:
        import torch

        cache = copy.deepcopy(self._roots[root][0])
        cache.batch_repeat_interleave(len(keys))
        extras = [list(k[len(root):]) for k in keys]
        width = max(len(e) for e in extras)
        ids = torch.tensor([e + [0] * (width - len(e)) for e in extras])
        pos = torch.arange(len(root), len(root) + width).expand(len(keys), width)
        mask = torch.ones(len(keys), len(root) + width, dtype=torch.long)
        res = self.model(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=True,
                         **{self._cache_kw(): cache})
        logits = res.logits.float()
        return {k: torch.log_softmax(logits[r, len(e) - 1], dim=-1)
                for r, (k, e) in enumerate(zip(keys, extras))}

    def _cache_kw(self) -> str:
        """The forward's KV-cache argument name (`cache` in newer transformers)."""
        import inspect

        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def top(self, logp, n: int) -> list[tuple[str, float]]:
        """The n most likely next tokens as (text, logprob), best first."""
        import torch

        vals, idx = torch.topk(logp, min(n, logp.shape[-1]))
        return [(self.text(i), v) for v, i in zip(vals.tolist(), idx.tolist())]

    # ------------------------------------------------------------------ serving
    def _send(self, h, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, h, status: int, message: str) -> None:
        self._send(h, status, {"error": {"message": message, "type": "invalid_request_error"}})

    def _handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(min(length, 10_000_000)) or b"{}")
        route = h.path.rstrip("/")
        with self._lock:
            self.calls += 1
            n_call = self.calls
            self.routes[route] += 1
        if n_call > self.max_requests:
            return self._error(h, 400, "logprob server: too many requests")
        if route.endswith("/chat/completions"):
            n = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
            ids = self.tok.apply_chat_template(body.get("messages", []), tokenize=False,
                                               add_generation_prompt=True)
            ids = list(self.tok(ids, add_special_tokens=False)["input_ids"])
        elif route.endswith("/completions"):
            n = int(body.get("logprobs") or 0)
            prompt = body.get("prompt")
            ids = (list(prompt) if isinstance(prompt, list)
                   else list(self.tok(str(prompt), add_special_tokens=False)["input_ids"]))
        else:
            return self._error(h, 404, f"no route {h.path}")
        if self.max_logprobs is not None and n > self.max_logprobs:
            return self._error(h, 400, f"Requested logprobs of {n}, which is greater than max "
                                       f"allowed: {self.max_logprobs}")
        with self._lock:
            self.requested_n.append(n)
        try:
            logp = self.next_logprobs(ids)
        except Exception as e:  # a bug here must fail the test, not hang a retry loop
            return self._error(h, 400, f"logprob server: {type(e).__name__}: {e}")
        alts = self.top(logp, max(1, n))
        first, first_lp = alts[0]
        if route.endswith("/chat/completions"):
            return self._send(h, 200, self._chat_payload(body, n_call, first, first_lp,
                                                         alts[:n]))
        self._send(h, 200, self._completion_payload(body, n_call, first, first_lp, alts[:n]))

    def _chat_payload(self, body, n_call, first, first_lp, alts) -> dict:
        content = [{"token": first, "logprob": first_lp, "bytes": list(first.encode()),
                    "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                     for t, v in alts]}]
        return {"id": f"chatcmpl-{n_call}", "object": "chat.completion", "created": 0,
                "model": self.served_name,
                "choices": [{"index": 0, "finish_reason": "length",
                             "message": {"role": "assistant", "content": first},
                             "logprobs": {"content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def _completion_payload(self, body, n_call, first, first_lp, alts) -> dict:
        if self.completions_format == "content":
            logprobs = {"content": [{"token": first, "logprob": first_lp,
                                     "top_logprobs": [{"token": t, "logprob": v}
                                                      for t, v in alts]}]}
        else:
            merged: dict[str, float] = {}
            for t, v in alts:  # texts that decode alike: one entry, their mass added
                merged[t] = _logaddexp(merged[t], v) if t in merged else v
            logprobs = {"tokens": [first], "token_logprobs": [first_lp],
                        "top_logprobs": [merged], "text_offset": [0]}
        return {"id": f"cmpl-{n_call}", "object": "text_completion", "created": 0,
                "model": self.served_name,
                "choices": [{"index": 0, "text": first, "finish_reason": "length",
                             "logprobs": logprobs}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _logaddexp(a: float, b: float) -> float:
    import math

    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))
