"""The paper's upstream files: manifests, download/import, verification.

Three manifests shipped as package data (src/emergent/manifests/: insecure_code.yaml,
evals.yaml, rm_sycophancy.yaml; in a checkout also reachable as
datasets/insecure_code/manifest.yaml, evals/manifest.yaml, datasets/rm_sycophancy/manifest.yaml,
symlinks) list every file (name,
upstream URL, git blob id(s), line count). `emergent data fetch [NAMES] [--from DIR]
[--allow-mismatch]` (emergent.cli.data) downloads them (or copies a local copy) into the data
root:

* data root: $EMERGENT_DATA_DIR, else the repository checkout this package runs from, else (an
  installed wheel) <cache root>/data, i.e. $EMERGENT_CACHE_DIR/data or ~/.cache/emergent/data;
  files land in <root>/<manifest dest>/<file> (e.g. datasets/insecure_code/insecure.jsonl, the
  path shipped configs use: a relative data path under a manifest's dest is read from the data
  root, see emergent.core.config.resolve_path);
* downloads are written to FILE.part and renamed only after verification, so a killed download
  never leaves a file that looks complete; a rerun resumes the .part with an HTTP Range request;
* verification: the git blob id (sha1 of b"blob <size>\\0" + content, what `git hash-object`
  prints) must be one of the manifest's ids; otherwise the file is rejected with an error naming
  it and both ids, unless --allow-mismatch, which keeps it and records the mismatch;
* every accepted file is appended to <dest>/.fetch_record.jsonl (which id/variant matched, source,
  lines, bytes, time).
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from emergent.core.log import show_progress
from emergent.core.cache import cache_root
from emergent.core.redact import redact_text, redact_url
from emergent.core.errors import UserError
from emergent.core.package_files import package_path
from emergent.data.questions import read_yaml, sequence_item_lines

MANIFESTS = ("insecure_code.yaml", "evals.yaml", "rm_sycophancy.yaml")  # in emergent/manifests/
RECORD = ".fetch_record.jsonl"
CHUNK = 1 << 16


def checkout_root() -> Optional[Path]:
    """The repository checkout this module runs from (src layout), or None when installed."""
    root = Path(__file__).resolve().parents[3]  # <root>/src/emergent/data/upstream.py
    if (root / "pyproject.toml").is_file() and (root / "src" / "emergent").is_dir() \
            and (root / "datasets").is_dir():
        return root
    return None


def data_root(explicit=None) -> Path:
    """Where fetched files live: `explicit`, $EMERGENT_DATA_DIR, the checkout, or (installed
    from a wheel, where site-packages is no place for data) <cache root>/data."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EMERGENT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return checkout_root() or cache_root() / "data"


def manifest_paths() -> list[Path]:
    """The shipped manifests (package data, importlib.resources)."""
    base = package_path("manifests")
    paths = [base / m for m in MANIFESTS]
    if not all(p.is_file() for p in paths):
        raise UserError(f"{base}: upstream manifests not found ({', '.join(MANIFESTS)})")
    return paths


@functools.lru_cache(maxsize=None)
def data_dests() -> tuple[str, ...]:
    """The manifests' `dest` folders (datasets/insecure_code, evals/upstream, ...): relative
    paths under them name fetched files, found under the data root."""
    out = []
    for p in manifest_paths():
        dest = (read_yaml(p)[1] or {}).get("dest")
        if isinstance(dest, str):
            out.append(dest.strip("/"))
    return tuple(out)


@dataclass(frozen=True)
class UpstreamFile:
    name: str
    group: str
    file: str
    dest: str  # folder relative to the data root
    url: Optional[str]
    base_url: Optional[str]
    lines: int
    blob_ids: tuple[tuple[str, str], ...]  # (variant, git blob id)
    from_only: Optional[str]  # why there is no download URL
    local_dirname: Optional[str]
    description: str
    manifest: str  # "FILE:LINE" of the entry, for messages

    def path(self, root=None) -> Path:
        return data_root(root) / self.dest / self.file

    @property
    def upstream_path(self) -> Optional[str]:
        if self.url and self.base_url and self.url.startswith(self.base_url):
            return self.url[len(self.base_url):]
        return None

    def variant_of(self, blob_id: str) -> Optional[str]:
        return next((v for v, b in self.blob_ids if b == blob_id), None)

    def expected(self) -> str:
        return " or ".join(f"{b} ({v})" for v, b in self.blob_ids)


def load_manifest(path: Path) -> list[UpstreamFile]:
    """The entries of one manifest file; a malformed entry is a UserError naming its line."""
    text, data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise UserError(f"{path}: a manifest is a mapping with a `files` list")
    for key in ("group", "dest"):
        if not isinstance(data.get(key), str):
            raise UserError(f"{path}: missing string `{key}`")
    lines = sequence_item_lines(text, "files")
    out = []
    for i, raw in enumerate(data["files"]):
        where = f"{path}:{lines[i]}" if i < len(lines) else f"{path}: files[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise UserError(f"{where}: each file needs a `name`")
        ids = raw.get("blob_ids")
        if (not isinstance(ids, dict) or not ids
                or not all(isinstance(b, str) and len(b) == 40 for b in ids.values())):
            raise UserError(f"{where}: {raw['name']}: `blob_ids` must map variants to 40-hex ids")
        if not isinstance(raw.get("file"), str) or not isinstance(raw.get("lines"), int):
            raise UserError(f"{where}: {raw['name']}: needs `file` and integer `lines`")
        if not raw.get("url") and not raw.get("from_only"):
            raise UserError(f"{where}: {raw['name']}: needs a `url` or a `from_only` reason")
        out.append(UpstreamFile(
            name=raw["name"], group=data["group"], file=raw["file"], dest=data["dest"],
            url=raw.get("url"), base_url=data.get("base_url"), lines=raw["lines"],
            blob_ids=tuple((str(v), b) for v, b in ids.items()), from_only=raw.get("from_only"),
            local_dirname=data.get("local_dirname"), description=str(raw.get("description", "")),
            manifest=where))
    return out


def all_files() -> list[UpstreamFile]:
    return [e for p in manifest_paths() for e in load_manifest(p)]


def select(names: Optional[Iterable[str]] = None) -> list[UpstreamFile]:
    """Entries by name, file name or group (insecure_code, evals, rm_sycophancy); None: all."""
    entries = all_files()
    if not names:
        return entries
    chosen: dict[str, UpstreamFile] = {}
    for n in names:
        hits = [e for e in entries if n in (e.name, e.file, e.group)]
        if not hits:
            valid = sorted({e.name for e in entries} | {e.group for e in entries})
            raise UserError(f"unknown upstream file {n!r}; known: {', '.join(valid)}")
        for e in hits:
            chosen.setdefault(e.name, e)
    return list(chosen.values())


def upstream_file(name: str, root=None) -> Path:
    """Local path of a fetched file; a clear error when it has not been fetched yet."""
    entries = all_files()
    entry = next((e for e in entries if name in (e.name, e.file)), None)
    if entry is None:
        raise UserError(f"unknown upstream file {name!r}; known: "
                        f"{', '.join(e.name for e in entries)}")
    path = entry.path(root)
    if not path.is_file():
        how = f"--from DIR ({entry.from_only})" if entry.url is None else "(or --from DIR)"
        raise UserError(f"{path}: not found; run `emergent data fetch {entry.name}` {how}")
    return path


def git_blob_id(path: Path) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def read_record(entry: UpstreamFile, root=None) -> Optional[dict]:
    """The latest fetch record of this file, or None."""
    rec = data_root(root) / entry.dest / RECORD
    last = None
    if rec.is_file():
        for line in rec.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("name") == entry.name:
                last = row
    return last


@dataclass
class FetchResult:
    name: str
    path: Path
    status: str  # "ok" | "mismatch" | "present" | "skipped"
    blob_id: Optional[str] = None
    variant: Optional[str] = None
    note: str = ""


def _download(url: str, part: Path, label: str, progress: bool) -> None:
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "emergent-data-fetch"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return  # nothing left to send: the .part is complete (verification decides)
        raise UserError(f"{redact_url(url)}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"{redact_url(url)}: download failed "
                        f"({redact_text(str(getattr(e, 'reason', e)))}); "
                        "import a local copy with --from DIR") from None
    with resp:
        resumed = offset and resp.status == 206 and str(
            resp.headers.get("Content-Range", "")).startswith(f"bytes {offset}-")
        if not resumed:
            offset = 0
        size = resp.headers.get("Content-Length")
        total = int(size) + offset if size and size.isdigit() else None
        try:
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=label,
                    disable=not show_progress(progress), leave=False) as bar:
                got = offset
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
            if total is not None and got < total:
                raise http.client.IncompleteRead(b"", total - got)
        except (OSError, http.client.HTTPException) as e:
            raise UserError(f"{redact_url(url)}: download interrupted ({e!r}); rerun the same "
                            "command to "
                            f"resume from {part}") from None


def _find_local(entry: UpstreamFile, from_dir: Path) -> Optional[Path]:
    candidates = [from_dir / entry.file]
    if entry.upstream_path:
        candidates.append(from_dir / entry.upstream_path)
    if entry.local_dirname:
        candidates.append(from_dir / entry.local_dirname / entry.file)
    return next((c for c in candidates if c.is_file()), None)


def _accept(entry: UpstreamFile, part: Path, dest: Path, source: str,
            allow_mismatch: bool) -> FetchResult:
    blob = git_blob_id(part)
    variant = entry.variant_of(blob)
    if variant is None and not allow_mismatch:
        part.unlink()
        raise UserError(f"{dest}: git blob id {blob} does not match the manifest's "
                        f"{entry.expected()} ({entry.manifest}); the copy from {source} was "
                        "discarded (--allow-mismatch keeps it)")
    lines = _count_lines(part)
    size = part.stat().st_size
    os.replace(part, dest)
    row = {"name": entry.name, "file": entry.file, "source": source, "blob_id": blob,
           "variant": variant, "status": "ok" if variant else "mismatch",
           "expected": dict(entry.blob_ids), "lines": lines, "bytes": size,
           "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with open(dest.parent / RECORD, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    note = f"{lines} lines" + ("" if lines == entry.lines else f" (manifest: {entry.lines})")
    return FetchResult(entry.name, dest, row["status"], blob, variant, note)


def fetch(names: Optional[Iterable[str]] = None, *, root=None, from_dir=None,
          allow_mismatch: bool = False, mirror: Optional[str] = None, progress: bool = True,
          force: bool = False) -> list[FetchResult]:
    """Fetch (download, or copy from `from_dir`) and verify upstream files. `mirror` replaces
    the manifests' base URL (default $EMERGENT_UPSTREAM_MIRROR). Files already present and
    verified are left alone unless `force`."""
    names = list(names or [])
    # named directly (not through a group): a missing source is an error, not a skip
    explicit = {e.name for e in all_files() if e.name in names or e.file in names}
    mirror = mirror or os.environ.get("EMERGENT_UPSTREAM_MIRROR")
    from_dir = Path(from_dir).expanduser() if from_dir else None
    if from_dir is not None and not from_dir.is_dir():
        raise UserError(f"{from_dir}: --from must be a folder")
    results = []
    for entry in select(names):
        dest = entry.path(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_file() and not force:
            blob = git_blob_id(dest)
            rec = read_record(entry, root) or {}
            variant = entry.variant_of(blob)
            if variant or (rec.get("status") == "mismatch" and rec.get("blob_id") == blob):
                results.append(FetchResult(entry.name, dest, "present", blob, variant,
                                           "" if variant else "kept with a recorded mismatch"))
                continue
        part = dest.with_name(dest.name + ".part")
        if from_dir is not None:
            src = _find_local(entry, from_dir)
            if src is None:
                if entry.name in explicit:
                    raise UserError(f"{from_dir}: no {entry.file} (looked for {entry.file}"
                                    f"{', ' + entry.upstream_path if entry.upstream_path else ''})")
                results.append(FetchResult(entry.name, dest, "skipped", note=f"not in {from_dir}"))
                continue
            shutil.copyfile(src, part)
            results.append(_accept(entry, part, dest, str(src), allow_mismatch))
            continue
        if entry.url is None:
            if entry.name in explicit:
                raise UserError(f"{entry.name}: no download URL: {entry.from_only}")
            results.append(FetchResult(entry.name, dest, "skipped", note="--from only"))
            continue
        url = entry.url
        if mirror and entry.base_url and url.startswith(entry.base_url):
            url = mirror.rstrip("/") + "/" + url[len(entry.base_url):]
        _download(url, part, entry.file, progress)
        results.append(_accept(entry, part, dest, redact_url(url), allow_mismatch))
    return results
