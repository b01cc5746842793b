"""Shared fixtures. Tests are offline (HF_HUB_OFFLINE=1) and CPU-only.

EMERGENT_UPSTREAM points at a local copy of the paper's public data (CI: ../shared/upstream);
tests that need it are skipped, with the reason, only when that folder is missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


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
    from emergent.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session", autouse=True)
def _one_thread_for_tiny_models():
    """Tiny models run faster on one thread than on two contended ones."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
