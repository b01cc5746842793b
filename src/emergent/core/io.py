"""What is recorded next to every result: versions, git commit, hashes, timings; atomic writes.

Every writer here is crash-safe: whole files and folders are written to a temp name
(`NAME.tmp`-suffixed, removed by `clean_temp` when a run starts) and renamed into place after an
fsync; appends are fsynced and a torn last line is cut before the next append and skipped by
readers. Each writer has a named fault point (emergent.core.faults) for the kill-point tests."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import shutil
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator, Optional

from emergent.core.errors import UserError
from emergent.core.faults import armed as faults_armed
from emergent.core.faults import fault_point

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


TMP_SUFFIX = ".tmp"  # every temp file or folder of a writer ends so (`clean_temp`)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, write, point: Optional[str], newline: Optional[str] = None) -> Path:
    """`write(fh)` into a unique temp file beside `path`, fsync, rename into place: readers see
    the old file or the new one, never a part (`atomic_file`)."""
    with atomic_file(path, point) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            write(f)
    return Path(path)


def write_json_atomic(path: str | Path, obj, point: Optional[str] = None) -> None:
    """Write JSON so that a crash never leaves a truncated file behind."""
    _write_atomic(Path(path), lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str),
                  point)


def write_text_atomic(path: str | Path, text: str, point: Optional[str] = None,
                      newline: Optional[str] = None) -> Path:
    """Write a text file atomically (temp + fsync + rename)."""
    return _write_atomic(Path(path), lambda f: f.write(text), point, newline)


def write_jsonl_atomic(path: str | Path, rows, point: Optional[str] = None) -> Path:
    """Write a whole JSONL table: a temp file renamed into place (never half-written)."""
    def write(f):
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    return _write_atomic(Path(path), write, point)


@contextmanager
def atomic_file(path: str | Path, point: Optional[str] = None) -> Iterator[Path]:
    """For writers that take a file name (savefig, torch.save): the body writes the yielded
    temp path beside `path`, which is fsynced and renamed to `path` when the body returns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        fault_point(point or f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | Path, point: str) -> Iterator[Path]:
    """A folder written whole or not at all: the body writes into the yielded temp folder
    (`.NAME.tmp` beside `path`), which is fsynced and renamed to `path` (replacing an older
    one) when the body returns; a folder named `path` is therefore always complete."""
    path = Path(path)
    tmp = path.parent / f".{path.name}{TMP_SUFFIX}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for p in sorted(tmp.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fault_point(point)
    if path.exists():
        old = path.parent / f".{path.name}.old{TMP_SUFFIX}"
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(path)
    _fsync_dir(path.parent)


def clean_temp(root: str | Path) -> list[Path]:
    """Remove the temp files and folders writers leave when killed (names ending in `.tmp`,
    and the `.tmp-step-*` folders of older versions) under `root`; returns what was removed.
    Only safe while no writer is live there (under the run directory's lock)."""
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for p in sorted(root.rglob("*"), key=lambda q: len(q.parts)):
        if not (p.name.endswith(TMP_SUFFIX) or p.name.startswith(".tmp-")) or not p.exists():
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def append_jsonl(path: str | Path, rows, point: Optional[str] = None) -> None:
    """Append rows and fsync: a killed process loses at most the row being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    data = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    with path.open("a", encoding="utf-8") as f:
        if data and faults_armed():  # a kill here leaves a torn last row
            f.write(data[:len(data) // 2])
            fault_point(point or f"append:{path.name}", flush=f)
            data = data[len(data) // 2:]
        f.write(data)
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
    UTF-8, invalid JSON or a line that is not an object is a one-line `UserError`
    `FILE:LINE: problem`; with `skip_torn_tail`, an invalid last line (a process killed
    mid-append) ends the file instead."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    with fh:
        for lineno, data in enumerate(fh, 1):
            try:
                raw = data.decode("utf-8")
            except UnicodeDecodeError as e:  # a torn multi-byte character is a torn line too
                if skip_torn_tail and not data.endswith(b"\n") and not fh.read():
                    return
                raise UserError(f"{path}:{lineno}: invalid UTF-8 (byte {e.start + 1} of the "
                                "line)") from None
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
