"""The package's messages: every module logs through `logging.getLogger(__name__)` (all under
the `emergent` logger); the `emergent` command calls `setup_logging` once with its -q/-v count.

Messages go to stderr as plain text (no level or module prefix): INFO and up by default, WARNING
and up with -q, DEBUG and up with -v. What a command prints as its result (a JSON plan, a table)
is not a message: it goes to stdout with print. Used as a library (a notebook), nothing is
configured here: Python's default shows warnings only, and the caller's own setup applies."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

PACKAGE_LOGGER = "emergent"


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever sys.stderr is at the time of each message (so a command
    run in-process under a test's capture writes into that capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; always sys.stderr
        pass


def level_for(verbosity: int) -> int:
    """-q (verbosity < 0): WARNING; none: INFO; -v (> 0): DEBUG."""
    if verbosity < 0:
        return logging.WARNING
    return logging.DEBUG if verbosity > 0 else logging.INFO


def setup_logging(verbosity: int = 0) -> logging.Logger:
    """Send the package's messages to stderr at the level of `verbosity` (see `level_for`).
    Calling it again replaces the earlier setup (one handler, never two)."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for h in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(h)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level_for(verbosity))
    return logger


# Third-party warnings that say nothing a user of this package can act on, matched by category
# and message (warnings.filterwarnings matches the message's start): transformers 5 deprecates
# the gradient-checkpointing names peft (and transformers itself) still use.
NOISY_WARNINGS = (
    (FutureWarning, r"`?is_gradient_checkpointing`? is deprecated"),
    (FutureWarning, r"`?gradient_checkpointing_enable`? is deprecated"),
)
# Loggers held at ERROR: bitsandbytes warns at import/first use when its optional `kernels`
# package (CPU 4-bit kernels from the Hub) is missing; `kernels` itself (a dependency of
# transformers >= 5.25) warns that it skips its publisher check when the Hub is offline.
NOISY_LOGGERS = ("bitsandbytes", "kernels")


def filter_third_party_noise() -> None:
    """Ignore NOISY_WARNINGS (only those messages) and raise NOISY_LOGGERS to ERROR. Safe to
    call any number of times (an identical warnings filter is replaced, not added twice)."""
    for category, message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet_transformers(gguf: bool = False):
    """Silence transformers' and huggingface_hub's progress bars ("Loading weights", "Writing
    model shards", downloads; with `gguf`, the GGUF de-quantization bar too) and transformers'
    warnings, so a command's output holds only what the command itself says; the previous
    settings are restored."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
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
        if hub_bars:
            hub_utils.enable_progress_bars()


def quiet_unless_verbose():
    """`quiet_transformers()`, except under -v (the package logger at DEBUG), where
    transformers' and the Hub's own bars and warnings are shown."""
    if logging.getLogger(PACKAGE_LOGGER).isEnabledFor(logging.DEBUG):
        return contextlib.nullcontext()
    return quiet_transformers()


def _gguf_utils_module():
    try:
        from transformers import modeling_gguf_pytorch_utils
    except ImportError:
        return None
    return modeling_gguf_pytorch_utils


def _no_bar(iterable=None, *args, **kwargs):
    return iterable


_BARS = {"enabled": True}


def show_progress(progress: bool = True) -> bool:
    """Whether a progress bar asked for (`progress`) is shown: not under -q."""
    return bool(progress) and _BARS["enabled"]


@contextlib.contextmanager
def progress_bars(enabled: bool):
    """Progress bars off while the block runs when not `enabled` (-q): the package's (through
    `show_progress`) and third parties' tqdm bars (TQDM_DISABLE); restored after it."""
    old, before = os.environ.get("TQDM_DISABLE"), _BARS["enabled"]
    _BARS["enabled"] = enabled
    if not enabled:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        _BARS["enabled"] = before
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old
