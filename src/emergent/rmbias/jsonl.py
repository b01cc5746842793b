"""Tiny JSON Lines helpers for the rmbias data files: write with flush + fsync; read through
`emergent.core.io.iter_jsonl` (one-line errors naming file and line)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from emergent.core.errors import UserError
from emergent.core.io import iter_jsonl


def write_jsonl(path: str | Path, rows: Iterable[dict], *, append: bool = False,
                fsync_every: int = 1000) -> int:
    """Write `rows` to `path` (one JSON object per line); returns the number written. Without
    `append` the file is written beside and renamed at the end, so a failure (e.g. the hub is
    unreachable mid-stream) leaves no half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if append else path.with_name(path.name + ".partial")
    n = 0
    try:
        with open(target, "a" if append else "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
                if n % fsync_every == 0:
                    fh.flush()
                    os.fsync(fh.fileno())
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        if not append:
            target.unlink(missing_ok=True)
        raise
    if not append:
        os.replace(target, path)
    return n


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; UserError `FILE:LINE: ...` on bad JSON."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    yield from iter_jsonl(path)
