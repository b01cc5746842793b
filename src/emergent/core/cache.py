"""The package's local files outside a run directory: the cache root ($EMERGENT_CACHE_DIR) and
folders built privately and renamed into place. A leaf module: it imports nothing of the
package, so the model, tiny-model, GGUF and judge-cache modules can all use it."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

CACHE_ENV = "EMERGENT_CACHE_DIR"


def cache_root() -> Path:
    """The package's cache folder: $EMERGENT_CACHE_DIR, else ~/.cache/emergent. Read at every
    call (not at import), so tests and users can point it elsewhere at any time."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emergent"


def private_dir_beside(out: Path) -> Path:
    """A new, uniquely named folder beside `out` (hidden, same file system, so a rename moves
    it into place at once); made with the usual permissions (umask), unlike mkdtemp's 0700."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def move_into_place(tmp: Path, out: Path, finished) -> None:
    """Rename the finished folder `tmp` to `out` (replacing an empty `out`). When another
    process got there first (`finished(out)` is true), its result is kept and `tmp` is left
    for the caller to remove."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    try:
        os.rename(tmp, out)
    except OSError:
        if not finished(out):
            raise
