"""The `openai` judge backend: any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure
proxies, vLLM, Ollama, llama.cpp server...) that returns logprobs.

One call per (answer, metric): the prompt as a single user message, max_tokens 1, temperature
0, logprobs with the top 20 alternatives, seed 0. The first token's top-20 distribution is
scored by `judge_scoring`. Calls run in a thread pool (`concurrency`), each retried with
exponential backoff on 429, 5xx, timeouts and connection errors (the client's own retries are
off, so every attempt is visible and counted here). Every response is written to the on-disk
cache as soon as it arrives, keyed by sha256(endpoint, model, prompt): a prompt already
answered is never sent again, within a run or across runs.

The API key is read from the environment variable *named* by `api_key_env`; the key itself is
never stored, logged or written to any table.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Optional

from emergent.errors import UserError
from emergent.judge_cache import JudgeCache, cache_key, default_cache_path
from emergent.judge_scoring import JudgeTask, Score, logprobs_to_probs, score_top_tokens

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20


class JudgeCallError(UserError):
    """A judge call that kept failing after all retries (finished work stays cached)."""


class OpenAIJudge:
    def __init__(self, model: str, base_url: Optional[str] = None,
                 api_key_env: Optional[str] = "OPENAI_API_KEY", *, concurrency: int = 8,
                 max_retries: int = 6, timeout: float = 60.0, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, min_mass: float = 0.25,
                 cache_path: Optional[str] = None, use_cache: bool = True):
        self.model = model
        self.endpoint = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.timeout = float(timeout)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.min_mass = float(min_mass)
        path = (cache_path or default_cache_path(self.endpoint, model)) if use_cache else None
        self.cache = JudgeCache(path)
        self.calls_made = 0  # HTTP attempts, failed ones included
        self.retries_made = 0
        self._count_lock = threading.Lock()
        self._client = None
        self.judge_id = f"openai:{model}@{self.endpoint}"

    # ------------------------------------------------------------------ plumbing
    def _key(self, task: JudgeTask) -> str:
        return cache_key(self.endpoint, self.model, task.prompt)

    def client(self):
        if self._client is None:
            from openai import OpenAI

            if self.api_key_env:
                key = os.environ.get(self.api_key_env)
                if not key:
                    raise UserError(f"judge.api_key_env: environment variable {self.api_key_env} "
                                    "is not set (set it, or api_key_env=null for a local server "
                                    "without a key)")
            else:
                key = "no-key"
            self._client = OpenAI(base_url=self.endpoint, api_key=key, max_retries=0,
                                  timeout=self.timeout)
        return self._client

    def pending(self, tasks: list[JudgeTask]) -> list[JudgeTask]:
        """Distinct tasks whose prompt is not cached yet: exactly the calls a run would make."""
        from emergent.judge_cache import pending_tasks

        return pending_tasks(tasks, self._key, self.cache)

    # ------------------------------------------------------------------ one call
    def _call_once(self, prompt: str) -> dict[str, float]:
        with self._count_lock:
            self.calls_made += 1
        resp = self.client().chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=1,
            temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS, seed=0)
        try:
            first = resp.choices[0].logprobs.content[0]
            pairs = [(t.token, t.logprob) for t in first.top_logprobs]
        except (AttributeError, IndexError, TypeError):
            raise UserError(f"judge endpoint {self.endpoint} returned no logprobs for model "
                            f"{self.model}: the judge needs logprobs=True with top_logprobs "
                            "support") from None
        if not pairs:
            pairs = [(first.token, first.logprob)]
        return logprobs_to_probs(pairs)

    def _call(self, prompt: str) -> dict[str, float]:
        import openai

        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                     openai.APIConnectionError)
        attempt = 0
        while True:
            try:
                return self._call_once(prompt)
            except retryable as e:
                status = getattr(e, "status_code", None)
                if attempt >= self.max_retries:
                    what = f"HTTP {status}" if status else type(e).__name__
                    raise JudgeCallError(f"judge {self.judge_id}: call failed after "
                                         f"{attempt + 1} attempts ({what}); finished calls are "
                                         "cached, rerun to resume") from None
                wait = min(self.backoff_max, self.backoff_base * (2 ** attempt))
                retry_after = _retry_after(e)
                if retry_after is not None:
                    wait = min(self.backoff_max, max(wait, retry_after))
                with self._count_lock:
                    self.retries_made += 1
                time.sleep(wait)
                attempt += 1
            except openai.APIStatusError as e:  # 4xx other than 429: retrying will not help
                raise UserError(f"judge {self.judge_id}: HTTP {e.status_code}: "
                                f"{_short(e.message)}") from None

    def _fetch(self, task: JudgeTask) -> None:
        """Call and cache at once (in the worker), so a paid answer is kept even when another
        call of the same run fails."""
        self.cache.put(self._key(task), {"top": self._call(task.prompt)})

    # ------------------------------------------------------------------ public
    def top_tokens(self, tasks: list[JudgeTask], progress: bool = True) -> list[dict[str, float]]:
        """First-token distributions for `tasks` (from the cache, or one call per new prompt)."""
        todo = self.pending(tasks)
        if todo:
            from tqdm.auto import tqdm

            self.client()  # create it once, here, not racing in the workers
            bar = tqdm(total=len(todo), desc="judge calls", unit="call", disable=not progress)
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                futures = [pool.submit(self._fetch, t) for t in todo]
                try:
                    for fut in as_completed(futures):
                        fut.result()
                        bar.update(1)
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
                finally:
                    bar.close()
                    self.cache.sync()
        return [dict(self.cache.get(self._key(t))["top"]) for t in tasks]

    def evaluate(self, tasks: list[JudgeTask], progress: bool = True) -> list[Score]:
        tops = self.top_tokens(tasks, progress=progress)
        return [score_top_tokens(top, t.kind, list(t.labels), self.min_mass)
                for t, top in zip(tasks, tops)]

    def close(self) -> None:
        self.cache.close()
        if self._client is not None:
            self._client.close()
            self._client = None


def _retry_after(e) -> Optional[float]:
    resp = getattr(e, "response", None)
    try:
        value = resp.headers.get("retry-after") if resp is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _short(msg, n: int = 200) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[:n] + "..."
