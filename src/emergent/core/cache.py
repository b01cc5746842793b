"""The package's local files outside a run directory: the cache root ($EMERGENT_CACHE_DIR),
folders built privately and renamed into place, and quiet internal model builds. A leaf module:
it imports nothing of the package, so the model, tiny-model, GGUF and judge-cache modules can
all use it."""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def quiet_transformers(gguf: bool = False):
    """Silence transformers' progress bars ("Writing model shards", "Loading weights"; with
    `gguf`, the GGUF de-quantization bar too) and its warnings for an internal model build, so
    a command's error output holds only what the command itself says; the previous settings
    are restored."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    gguf_utils = _gguf_utils_module() if gguf else None
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:  # it imports tqdm directly, outside the switch above
        gguf_utils.tqdm = _no_bar
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _gguf_utils_module():
    try:
        from transformers import modeling_gguf_pytorch_utils
    except ImportError:
        return None
    return modeling_gguf_pytorch_utils


def _no_bar(iterable=None, *args, **kwargs):
    return iterable
