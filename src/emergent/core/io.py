"""What is recorded next to every result: versions, git commit, hashes, timings; atomic writes."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterator

from emergent.core.errors import UserError

TRACKED_PACKAGES = ("emergent", "torch", "transformers", "peft", "bitsandbytes", "tokenizers",
                    "accelerate", "trl", "vllm", "lm_eval", "openai", "numpy")
DISTRIBUTION = "emergent-misalignment"  # the distribution that installs the `emergent` package
_DIST_OF = {"emergent": DISTRIBUTION}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(_DIST_OF.get(name, name))
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import torch

        out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        pass
    return out


def git_commit() -> str | None:
    """The commit of the emergent checkout in use (None when installed from a wheel)."""
    here = Path(__file__).resolve().parents[1]  # the emergent package folder
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON so that a crash never leaves a truncated file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_jsonl_atomic(path: str | Path, rows) -> Path:
    """Write a whole JSONL table: a temp file renamed into place (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def append_jsonl(path: str | Path, rows) -> None:
    """Append rows and fsync: a killed process loses at most the row being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair_torn_tail(path: Path) -> None:
    """Cut a partial last line (a process killed mid-write) so appends start on a clean line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        f.truncate(data.rfind(b"\n") + 1)


def iter_jsonl(path: str | Path, *, skip_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL file. A missing file, invalid
    JSON or a line that is not an object is a one-line `UserError` `FILE:LINE: problem`; with
    `skip_torn_tail`, an invalid last line (a process killed mid-append) ends the file instead."""
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                if skip_torn_tail and not fh.read():
                    return  # torn final line from a kill: the unit is redone
                raise UserError(f"{path}:{lineno}: invalid JSON ({e.msg}, column {e.colno})"
                                ) from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: a line must be a JSON object")
            yield lineno, row


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSONL table written by this package ([] when the file does not exist yet),
    ignoring a torn last line left by a crash."""
    path = Path(path)
    if not path.exists():
        return []
    return [row for _, row in iter_jsonl(path, skip_torn_tail=True)]
