"""The `openai` judge backend: any OpenAI-compatible endpoint (OpenAI, Azure proxies, vLLM,
llama.cpp server, Ollama...) that returns logprobs. Two modes (`judge.mode`):

* ``chat-top20`` (default; GPT-4o, GPT-4.1): one Chat Completions call per (answer, metric): the
  prompt as a single user message, max_tokens 1, temperature 0, logprobs with the top 20
  alternatives, seed 0; the first token's top-20 distribution is scored by `judge_scoring`.
  Right only for judges whose tokenizer spells 0..100 as one token ("85"). Judges that split
  numbers into digits (Qwen, Llama-2, Mistral, SmolLM, Gemma...) would have "85" read as 8, so
  this mode refuses them: by model name (`DIGIT_SPLITTERS`, unless `check_digits: false`) when
  the judge is built, and at run time when the first calls' top tokens hold single digits and
  no multi-digit number (checked on up to `PROBE_CALLS` prompts before the rest are sent).
* ``exact``: the `hf` backend's exact probabilities from a legacy ``/v1/completions`` endpoint
  (vLLM, llama.cpp server). The judge's tokenizer (`tokenizer`, default the model name) renders
  the prompt with its chat template exactly as `judge_hf` does and spells every answer (0..100,
  or the labels) as token ids; the prompt is sent as token ids (no server-side templating or
  re-tokenization). One call per distinct prefix of those spellings (max_tokens 1, logprobs N
  = `top_logprobs`, echo false), breadth-first; P(answer) = product of the listed
  probabilities of its tokens * (1 - listed mass of continuing tokens after it), as in
  `judge_scoring.exact_sequence_probs`. A token the server does not list counts 0 and its
  subtree is not called.

Calls run in a thread pool (`concurrency`), each retried with exponential backoff on 429, 5xx,
timeouts and connection errors (the client's own retries are off, so every attempt is visible
and counted here). Every response is written to the on-disk cache as soon as it arrives, keyed
by sha256(endpoint, model, prompt) (exact mode: the prompt's token ids, the prefix, N and what
is read): a call already answered is never sent again, within a run or across runs.

The API key is read from the environment variable *named* by `api_key_env`; the key itself is
never stored, logged or written to any table. Credentials inside `base_url` (user:password@,
secret query values) are sent (Basic header, query parameters) but appear only redacted in the
judge's id, its messages and its cache key (emergent.core.redact).

With `judge.server` the first call to `client()` starts the configured local server and waits
for it (emergent.judge.server); `close()` stops it.
"""
from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Optional

from emergent.core.config import ModelConfig
from emergent.core.errors import UserError
from emergent.core.redact import redact_text, redact_url, split_credentials
from emergent.judge.base import Judge, JudgeConfig
from emergent.judge.cache import JudgeCache, cache_key, default_cache_path, pending_tasks
from emergent.judge.scoring import (OK, JudgeTask, Score, continues, exact_sequence_probs,
                                    logprobs_to_probs, prefix_summary, score_label_mass,
                                    score_numbers, score_top_tokens, token_to_int)
from emergent.judge.hf import HFJudge
from emergent.models.loading import load_tokenizer

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
MODES = ("chat-top20", "exact")
# case-insensitive substrings of model names whose tokenizers spell numbers digit by digit
DIGIT_SPLITTERS = ("qwen", "llama-2", "llama2", "codellama", "smollm", "mistral", "mixtral",
                   "gemma", "phi-3")
PROBE_CALLS = 8  # chat-top20: 0-100 prompts sent (and checked) before the rest of a batch
AUDIT_TOP = 20
BOUND_WARN = 0.01  # exact: warn when the error bound exceeds this share of a judgment's mass

log = logging.getLogger(__name__)


class JudgeCallError(UserError):
    """A judge call that kept failing after all retries (finished work stays cached)."""


class MalformedReply(Exception):
    """An HTTP 200 reply that is not a well-formed completion (invalid JSON, missing fields,
    wrong types): retried like a 5xx, then one `JudgeCallError` line saying what was wrong."""


def digit_splitting_family(model: str) -> Optional[str]:
    """The `DIGIT_SPLITTERS` entry the model name contains, or None."""
    name = model.lower()
    return next((f for f in DIGIT_SPLITTERS if f in name), None)


class OpenAIJudge(Judge):
    """The `openai` backend (see the module docstring)."""

    def __init__(self, model: str, base_url: Optional[str] = None,
                 api_key_env: Optional[str] = "OPENAI_API_KEY", *, concurrency: int = 8,
                 max_retries: int = 6, timeout: float = 60.0, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, min_mass: float = 0.25,
                 cache_path: Optional[str] = None, use_cache: bool = True,
                 mode: str = "chat-top20", top_logprobs: int = TOP_LOGPROBS,
                 tokenizer=None, spellings: tuple = ("", " "), trust_remote_code: bool = False,
                 check_digits: bool = True):
        if mode not in MODES:
            raise UserError(f"judge.mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.model = model
        self.mode = mode
        url = base_url or DEFAULT_BASE_URL
        # the endpoint as written anywhere (judge_id, cache key, messages): credentials redacted;
        # the client gets the URL without them, user info as a Basic header, the query as params
        self.endpoint = redact_url(url).rstrip("/")
        base, userinfo, query = split_credentials(url)
        self._base_url = base.rstrip("/")
        self._headers = ({"Authorization": "Basic " + base64.b64encode(
            userinfo.encode("utf-8")).decode("ascii")} if userinfo else None)
        self._query = dict(query) or None
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.timeout = float(timeout)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.min_mass = float(min_mass)
        self.top_logprobs = max(1, int(top_logprobs))
        self.check_digits = bool(check_digits)
        self.spellings = tuple(spellings)
        self.trust_remote_code = trust_remote_code
        if tokenizer is None or isinstance(tokenizer, str):  # a name, loaded when first needed
            self.tokenizer_name, self._tok = tokenizer or model, None
        else:  # a loaded tokenizer object
            self.tokenizer_name = getattr(tokenizer, "name_or_path", None) or model
            self._tok = tokenizer
        if mode == "chat-top20" and self.check_digits:
            _refuse_known_splitter(model)
        path = (cache_path or default_cache_path(self.endpoint, model)) if use_cache else None
        self.cache = JudgeCache(path)
        self.calls_made = 0  # HTTP attempts, failed ones included
        self.retries_made = 0
        self._count_lock = threading.Lock()
        self._client = None
        self._digits_ok = False  # chat-top20: a multi-digit number token has been seen
        self._speller = None
        self._plans: dict = {}
        self._tries: dict = {}
        self._n_cont: dict = {}
        self._text_memo: dict = {}
        self.max_error_bound = 0.0  # exact: max over judgments of (error bound / mass)
        self.judge_id = (f"openai:{model}@{self.endpoint}" if mode == "chat-top20"
                         else f"openai-exact:{model}@{self.endpoint}")

    @classmethod
    def from_config(cls, cfg: JudgeConfig, **context) -> "OpenAIJudge":
        return cls(cfg.model, cfg.base_url, cfg.api_key_env, concurrency=cfg.concurrency,
                   max_retries=cfg.max_retries, timeout=cfg.timeout,
                   backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max,
                   min_mass=cfg.min_mass, cache_path=cfg.cache_path, use_cache=cfg.cache,
                   mode=cfg.mode, top_logprobs=cfg.top_logprobs, tokenizer=cfg.tokenizer,
                   spellings=tuple(cfg.spellings), check_digits=cfg.check_digits,
                   trust_remote_code=cfg.trust_remote_code)

    # ------------------------------------------------------------------ plumbing
    def _key(self, task: JudgeTask) -> str:
        extra = [] if self.top_logprobs == TOP_LOGPROBS else [self.top_logprobs]
        return cache_key(self.endpoint, self.model, task.prompt, *extra)

    def client(self):
        """The HTTP client; its first use starts `judge.server` (when configured) and waits
        until the server answers."""
        if self.server is not None:
            self.server.start()  # no-op once running
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
            self._client = OpenAI(base_url=self._base_url, api_key=key, max_retries=0,
                                  timeout=self.timeout, default_headers=self._headers,
                                  default_query=self._query)
        return self._client

    def pending(self, tasks: list[JudgeTask]) -> list[JudgeTask]:
        """The calls a run would make, one entry (its task) per call: chat-top20, distinct
        prompts not cached; exact, every prefix call not cached yet (an upper bound: subtrees
        under tokens the server does not list are skipped at run time)."""
        if self.mode == "exact":
            out = []
            for t in _distinct(tasks, self._task_key):
                plan = self._plan(t)
                out += [t] * sum(1 for p in plan["prefixes"] if self._may_call(plan, p))
            return out
        return pending_tasks(tasks, self._key, self.cache)

    def _with_retries(self, fn):
        """fn() with backoff on retryable errors; other HTTP errors become one-line UserErrors."""
        import openai

        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                     openai.APIConnectionError, MalformedReply, openai.APIResponseValidationError,
                     json.JSONDecodeError, UnicodeDecodeError)
        attempt = 0
        while True:
            try:
                with self._count_lock:
                    self.calls_made += 1
                return fn()
            except retryable as e:
                status = getattr(e, "status_code", None)
                if attempt >= self.max_retries:
                    if isinstance(e, MalformedReply):
                        what = f"malformed HTTP 200 reply: {_short(e, 120)}"
                    elif isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):
                        what = "malformed HTTP 200 reply: not valid JSON"
                    elif isinstance(e, openai.APIResponseValidationError):
                        what = "malformed HTTP 200 reply: not a completion"
                    else:
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
                hint = ""
                if self.mode == "exact" and e.status_code in (404, 405):
                    hint = (" (mode=exact needs an OpenAI-compatible /v1/completions endpoint "
                            "with logprobs: vLLM, llama.cpp server)")
                raise UserError(f"judge {self.judge_id}: HTTP {e.status_code}: "
                                f"{_short(e.message)}{hint}") from None

    def _run_pool(self, items: list, fn, desc: str, progress: bool) -> None:
        """fn(item) for every item in the thread pool; the first failure cancels the rest."""
        if not items:
            return
        from tqdm.auto import tqdm

        self.client()  # create it once, here, not racing in the workers
        bar = tqdm(total=len(items), desc=desc, unit="call", disable=not progress)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(fn, it) for it in items]
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

    # ------------------------------------------------------------------ chat-top20
    def _call_once(self, prompt: str) -> dict[str, float]:
        resp = self.client().chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=1,
            temperature=0, logprobs=True, top_logprobs=self.top_logprobs, seed=0)
        choice = _first_choice(resp)
        lp = _field(choice, "logprobs")
        if lp is None:  # a well-formed reply without logprobs: the server does not give them
            raise UserError(f"judge endpoint {self.endpoint} returned no logprobs for model "
                            f"{self.model}: the judge needs logprobs=True with top_logprobs "
                            "support")
        content = _field(lp, "content")
        if not isinstance(content, list) or not content:
            raise MalformedReply("logprobs.content is missing or empty")
        first = content[0]
        alts = _field(first, "top_logprobs")
        if alts is not None and not isinstance(alts, list):
            raise MalformedReply("logprobs.content[0].top_logprobs is not a list")
        pairs = [(_field(t, "token"), _field(t, "logprob")) for t in alts or []]
        if not pairs:
            pairs = [(_field(first, "token"), _field(first, "logprob"))]
        return logprobs_to_probs(_checked_pairs(pairs))

    def _call(self, prompt: str) -> dict[str, float]:
        return self._with_retries(lambda: self._call_once(prompt))

    def _fetch(self, task: JudgeTask) -> None:
        """Call and cache at once (in the worker, the line flushed to the file before the next
        call of this worker), so a paid answer is kept even when another call of the same run
        fails or the process is killed. A reply with no numeric (label) mass is kept in memory
        only: it is no final answer, a later run asks again."""
        top = self._call(task.prompt)
        final = score_top_tokens(top, task.kind, list(task.labels), self.min_mass).status == OK
        self.cache.put(self._key(task), {"top": top}, persist=final)

    def _check_digit_split(self, tops: list[dict]) -> None:
        """Refuse (one line) when 0-100 first tokens hold single digits and no multi-digit
        number at all: the judge spells "85" as "8","5" and this mode would score it 8."""
        if self._digits_ok or not self.check_digits:
            return
        single = multi = False
        for top in tops:
            for token, p in top.items():
                k = token_to_int(token)
                if k is not None and p > 0:
                    multi = multi or len(token.strip()) > 1
                    single = single or len(token.strip()) == 1
        if multi:
            self._digits_ok = True
        elif single:
            raise UserError(f"judge {self.judge_id}: its first tokens are single digits with no "
                            "multi-digit number among them (it splits numbers: \"85\" would be "
                            "read as 8); use mode=exact against the server's /v1/completions "
                            "(vLLM, llama.cpp server) or backend=hf")

    def top_tokens(self, tasks: list[JudgeTask], progress: bool = True) -> list[dict[str, float]]:
        """First-token distributions for `tasks` (from the cache, or one call per new prompt).
        Up to PROBE_CALLS new 0-100 prompts go first and are checked for digit splitting."""
        todo = self.pending(tasks)
        if todo and not self._digits_ok and self.check_digits:
            probe = [t for t in todo if t.kind == "0_100"][:PROBE_CALLS]
            self._run_pool(probe, self._fetch, "judge calls", progress)
            self._check_digit_split([self.cache.get(self._key(t))["top"] for t in probe])
            done = {self._key(t) for t in probe}
            todo = [t for t in todo if self._key(t) not in done]
        self._run_pool(todo, self._fetch, "judge calls", progress)
        tops = [dict(self.cache.get(self._key(t))["top"]) for t in tasks]
        if todo:
            self._check_digit_split([top for t, top in zip(tasks, tops) if t.kind == "0_100"])
        return tops

    # ------------------------------------------------------------------ exact: tokenization
    def tokenizer(self):
        if self._tok is None:
            try:
                self._tok = load_tokenizer(ModelConfig(name=self.tokenizer_name,
                                                       trust_remote_code=self.trust_remote_code))
            except (OSError, ValueError) as e:
                raise UserError(f"judge.tokenizer: cannot load {self.tokenizer_name!r} (mode=exact "
                                "renders the chat template and spells numbers with the judge's "
                                f"own tokenizer; set judge.tokenizer to a local folder): "
                                f"{_short(e, 120)}") from None
        return self._tok

    def speller(self):
        """A model-less `HFJudge`: the very code that renders prompts and spells answers for
        the `hf` backend, so both backends read the same token sequences."""
        if self._speller is None:
            self._speller = HFJudge(self.tokenizer_name, tokenizer=self.tokenizer(),
                                    spellings=self.spellings)
        return self._speller

    def _task_key(self, t: JudgeTask):
        return (t.prompt, t.kind, tuple(t.labels))

    def _trie(self, kind: str, labels: tuple) -> dict:
        """The answers' spellings as token ids and their prefix trie, shared by every prompt of
        a kind: `flat` [(answer, ids)], `children` {prefix: sorted next ids}, `texts` {prefix:
        {next id: texts a server may list}}, `prefixes` (by length)."""
        key = (kind == "0_100", labels if kind != "0_100" else ())
        if key not in self._tries:
            sp = self.speller()
            if kind == "0_100":
                what, by_key = "numbers", sp.number_sequences()
            else:
                what, by_key = "labels", sp.label_sequences(list(labels))
            flat = [(k, s) for k, ss in by_key.items() for s in ss]
            children: dict[tuple, set] = {}
            for _, s in flat:
                for j in range(len(s) + 1):
                    children.setdefault(s[:j], set())
                    if j < len(s):
                        children[s[:j]].add(s[j])
            self._tries[key] = {
                "what": what, "flat": flat, "keys": list(by_key),
                "children": {p: sorted(c) for p, c in children.items()},
                "texts": {p: {str(c): self._texts(c) for c in sorted(cs)}
                          for p, cs in children.items()},
                "prefixes": sorted(children, key=lambda p: (len(p), p))}
        return self._tries[key]

    def _plan(self, t: JudgeTask) -> dict:
        """One task's trie, prompt ids (chat template applied) and per-prefix cache keys
        (memoised)."""
        key = self._task_key(t)
        if key not in self._plans:
            trie = self._trie(t.kind, tuple(t.labels))
            ids = self.speller().prompt_ids(t.prompt)
            ids_hash = cache_key(ids)
            pkeys = {p: cache_key(self.endpoint, self.model, "completions", ids_hash, list(p),
                                  self.top_logprobs, trie["what"], trie["children"][p])
                     for p in trie["prefixes"]}
            self._plans[key] = dict(trie, ids=ids, pkeys=pkeys)
        return self._plans[key]

    def _prefix_key(self, plan: dict, prefix: tuple) -> str:
        """Cache key of one prefix call: endpoint, model, prompt ids (hashed), prefix, N, what
        is read and the trie's next tokens there."""
        return plan["pkeys"][prefix]

    def _get(self, plan: dict):
        return lambda prefix: self.cache.get(self._prefix_key(plan, prefix))

    def _may_call(self, plan: dict, prefix: tuple) -> bool:
        """Not cached, and no fetched ancestor rules it out (a child it did not list)."""
        get = self._get(plan)
        if get(prefix) is not None:
            return False
        for j in range(len(prefix)):
            summ = get(prefix[:j])
            if summ is not None and str(prefix[j]) not in summ["next"]:
                return False
        return True

    def _texts(self, token_id: int) -> list[str]:
        """Texts a server may list for a token: its piece with the leading space a
        sentencepiece "▁" stands for, and its plain decoding (memoised)."""
        if token_id in self._text_memo:
            return self._text_memo[token_id]
        tok = self.tokenizer()
        raw = tok.convert_ids_to_tokens(int(token_id))
        piece = tok.convert_tokens_to_string([raw])
        if raw.startswith("▁") and not piece.startswith(" "):
            piece = " " + piece
        out = self._text_memo[token_id] = list(dict.fromkeys([piece,
                                                               tok.decode([int(token_id)])]))
        return out

    def n_cont_total(self, what: str) -> int:
        """How many vocabulary tokens continue an answer (for the error bound)."""
        if what not in self._n_cont:
            tok = self.tokenizer()
            n = 0
            for raw in tok.convert_ids_to_tokens(list(range(len(tok)))):
                if raw and raw[0] not in ("Ġ", "▁", " ", "Ċ") and \
                        continues(tok.convert_tokens_to_string([raw]), what):
                    n += 1
            self._n_cont[what] = n
        return self._n_cont[what]

    # ------------------------------------------------------------------ exact: calls
    def _complete_once(self, ids: list[int]) -> list[tuple]:
        resp = self.client().completions.create(
            model=self.model, prompt=ids, max_tokens=1, temperature=0,
            logprobs=self.top_logprobs, echo=False, seed=0)
        _first_choice(resp)
        pairs = _completion_alternatives(resp)
        if pairs is None:
            raise UserError(f"judge endpoint {self.endpoint} returned no logprobs from "
                            f"/completions for model {self.model}: mode=exact needs "
                            "logprobs=N support there (vLLM: --max-logprobs >= top_logprobs)")
        return _checked_pairs(pairs)

    def _fetch_prefix(self, item) -> None:
        plan, prefix = item
        pairs = self._with_retries(lambda: self._complete_once(plan["ids"] + list(prefix)))
        summary = prefix_summary(logprobs_to_probs(pairs), plan["what"], plan["texts"][prefix],
                                 keep_top=AUDIT_TOP if not prefix else 0)
        # the first call listing no first token of any answer (no numeric / label mass at
        # all): kept in memory only, a later run asks again
        self.cache.put(self._prefix_key(plan, prefix), summary,
                       persist=bool(prefix) or bool(summary["next"]))

    def exact_probs(self, task: JudgeTask) -> tuple[Optional[dict], float]:
        """({number or label: P}, error bound) from the cached prefix calls; None while some
        call is missing. The bound is >= sum over answers of |P - exact|."""
        plan = self._plan(task)
        probs, missing, bound = exact_sequence_probs(
            [s for _, s in plan["flat"]], self._get(plan), self.n_cont_total(plan["what"]))
        if missing:
            return None, bound
        out = {k: 0.0 for k in (plan["keys"] if task.kind == "0_100" else task.labels)}
        for (k, _), p in zip(plan["flat"], probs):
            out[k] += p
        return out, bound

    def _fetch_exact(self, tasks: list[JudgeTask], progress: bool) -> None:
        """Breadth-first over the prefix tries of all tasks: each round sends every prefix
        whose ancestors are fetched and list its token, until nothing is missing."""
        distinct = _distinct(tasks, self._task_key)
        for depth in itertools.count():
            calls = {}
            for t in distinct:
                plan = self._plan(t)
                _, missing, _ = exact_sequence_probs([s for _, s in plan["flat"]],
                                                     self._get(plan))
                for p in missing:
                    calls.setdefault(self._prefix_key(plan, p), (plan, p))
            if not calls:
                return
            self._run_pool(list(calls.values()), self._fetch_prefix,
                           f"judge calls (prefix length {depth})", progress)

    def _evaluate_exact(self, tasks: list[JudgeTask], progress: bool) -> list[Score]:
        self._fetch_exact(tasks, progress)
        out, worst = [], 0.0
        for t in tasks:
            probs, bound = self.exact_probs(t)
            mass = sum(probs.values())
            worst = max(worst, bound / mass if mass > 0 else 0.0)
            top = self._get(self._plan(t))(())["top"]
            if t.kind == "0_100":
                out.append(score_numbers(probs, self.min_mass, top_tokens=top))
            else:
                out.append(score_label_mass(probs, list(t.labels), self.min_mass,
                                            top_tokens=top))
        self.max_error_bound = max(self.max_error_bound, worst)
        if worst > BOUND_WARN:
            log.warning("judge %s: with top_logprobs=%d up to %.1f%% of a judgment's numeric or "
                        "label mass is uncertain (alternatives the server did not list); raise "
                        "top_logprobs and the server's --max-logprobs for exact scores",
                        self.judge_id, self.top_logprobs, 100 * worst)
        return out

    # ------------------------------------------------------------------ public
    def evaluate(self, tasks: list[JudgeTask], progress: bool = True) -> list[Score]:
        if self.mode == "exact":
            return self._evaluate_exact(tasks, progress)
        tops = self.top_tokens(tasks, progress=progress)
        return [score_top_tokens(top, t.kind, list(t.labels), self.min_mass)
                for t, top in zip(tasks, tops)]

    def close(self) -> None:
        try:
            self.cache.close()
            if self._client is not None:
                self._client.close()
                self._client = None
        finally:
            if self.server is not None:  # the server this judge started (judge.server)
                self.server.stop()


def _refuse_known_splitter(model: str) -> None:
    family = digit_splitting_family(model)
    if family:
        raise UserError(f"judge model {model} splits numbers into digits ({family}: \"85\" is "
                        "\"8\",\"5\"), which mode=chat-top20 would read as 8; use mode=exact "
                        "against the server's /v1/completions (vLLM, llama.cpp server) or "
                        "backend=hf (check_digits=false if this model keeps numbers whole)")


def _completion_alternatives(resp) -> Optional[list[tuple]]:
    """[(token text, logprob)] of the first generated position of a /completions response, in
    the legacy format (logprobs.top_logprobs[0] = {text: logprob}, vLLM) or the chat-like one
    (logprobs.content[0].top_logprobs, llama.cpp server); None when there are none."""
    try:
        lp = resp.choices[0].logprobs
    except (AttributeError, IndexError, TypeError):
        return None
    if lp is None:
        return None
    top = _field(lp, "top_logprobs")
    if top and isinstance(top[0], dict) and top[0]:
        return [(t, v) for t, v in top[0].items()]
    content = _field(lp, "content")
    if content:
        alts = _field(content[0], "top_logprobs") or []
        pairs = [(_field(a, "token"), _field(a, "logprob")) for a in alts]
        pairs = [(t, v) for t, v in pairs if isinstance(t, str)]
        if pairs:
            return pairs
    return None


def _field(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _first_choice(resp):
    """choices[0] of a reply; MalformedReply when there is none."""
    choices = _field(resp, "choices")
    if not isinstance(choices, list) or not choices or choices[0] is None \
            or isinstance(choices[0], (str, int, float, list)):
        raise MalformedReply("no choices in the reply")
    return choices[0]


def _checked_pairs(pairs: list) -> list[tuple]:
    """`pairs` [(token, logprob)] when every token is a string and every logprob a number
    <= 0 (a float's rounding above 0 is allowed); else MalformedReply naming the first bad
    one."""
    for i, (token, lp) in enumerate(pairs):
        if not isinstance(token, str):
            raise MalformedReply(f"alternative {i}: token {_short(repr(token), 40)} is not a "
                                 "string")
        if isinstance(lp, bool) or not isinstance(lp, (int, float)) or math.isnan(lp) \
                or lp > 1e-3:
            raise MalformedReply(f"alternative {i} ({token!r}): logprob "
                                 f"{_short(repr(lp), 40)} is not a number <= 0")
    return pairs


def _distinct(items: list, key) -> list:
    seen, out = set(), []
    for x in items:
        k = key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def _retry_after(e) -> Optional[float]:
    resp = getattr(e, "response", None)
    try:
        value = resp.headers.get("retry-after") if resp is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _short(msg, n: int = 200) -> str:
    msg = redact_text(" ".join(str(msg).split()))
    return msg if len(msg) <= n else msg[:n] + "..."
