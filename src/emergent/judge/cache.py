"""On-disk cache of judge responses, so that no completed judge call is paid again.

One JSON Lines file, one line per call: {"key": sha256 hex, "value": {...}}. The key is the
sha256 of the JSON list of the parts that determine a response (for the OpenAI-compatible
backend: endpoint, judge model, full prompt). Lines are appended and flushed as results arrive
(fsync on `sync()`), so an interrupted run keeps every call that completed; a torn last line
from a crash is ignored on load. Replies that are no final answer (no numeric mass) are kept in
memory only (`put(..., persist=False)`), so a later run asks again. Nothing secret goes in: neither keys nor headers are part of a key or
a value.

Default location: ``<cache root>/judge/<model>-<hash of endpoint+model>.jsonl``, the cache root
being ``$EMERGENT_CACHE_DIR`` or ``~/.cache/emergent`` (``emergent.core.cache.cache_root``, read at
call time); ``JudgeConfig.cache_path`` overrides it, e.g. to keep the cache under a run
directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

from emergent.core.cache import cache_root
from emergent.core.faults import armed as faults_armed
from emergent.core.faults import fault_point


def default_cache_dir() -> Path:
    """<cache root>/judge, resolved now (the cache root can change between calls)."""
    return cache_root() / "judge"


def cache_key(*parts) -> str:
    """sha256 over the JSON encoding of `parts` (order matters)."""
    blob = json.dumps(list(parts), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def default_cache_path(endpoint: str, model: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[-60:] or "judge"
    return default_cache_dir() / f"{slug}-{cache_key(endpoint, model)[:12]}.jsonl"


class JudgeCache:
    """A dict-like, thread-safe, append-only cache backed by a JSONL file (or memory only when
    `path` is None)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path).expanduser() if path is not None else None
        self._data: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._fh = None
        if self.path is not None and self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                        self._data[row["key"]] = row["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn line from an interrupted write

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str):
        return self._data.get(key)

    def put(self, key: str, value: dict, persist: bool = True) -> None:
        """Keep `value` under `key`, appended to the file and flushed at once (it survives a
        kill of the process). `persist=False`: in memory only, for this process (a reply that
        is no final answer, e.g. one with no numeric mass: a later run asks again)."""
        fault_point("judge:call")  # a kill here: a reply paid for and lost (a call in flight)
        with self._lock:
            if key in self._data:
                return
            self._data[key] = value
            if self.path is None or not persist:
                return
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")
            line = json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n"
            if faults_armed():  # a kill here leaves a torn last line (ignored on load)
                self._fh.write(line[:len(line) // 2])
                fault_point("append:judge_cache", flush=self._fh)
                line = line[len(line) // 2:]
            self._fh.write(line)
            self._fh.flush()

    def sync(self) -> None:
        with self._lock:
            if self._fh is not None:
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None


def pending_tasks(tasks, key, cache) -> list:
    """Distinct tasks (by `key(task)`) whose result is not in `cache`: exactly the calls a run
    would make. Shared by both judge backends."""
    seen, out = set(), []
    for t in tasks:
        k = key(t)
        if k not in seen and (cache is None or k not in cache):
            seen.add(k)
            out.append(t)
    return out
