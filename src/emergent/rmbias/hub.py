"""Opening a public Hugging Face dataset as a seeded, shuffled stream (lazy `datasets`)."""
from __future__ import annotations

from emergent.core.errors import UserError


def open_shuffled_stream(dataset: str, split: str, seed: int, buffer_size: int):
    """`datasets.load_dataset(dataset, split=split, streaming=True).shuffle(seed, buffer)`;
    a missing package or an unreachable hub is a one-line UserError."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise UserError("streaming a hub dataset needs the `datasets` package: "
                        "pip install 'emergent-misalignment[hub]'") from None
    try:
        stream = load_dataset(dataset, split=split, streaming=True)
    except Exception as e:  # ConnectionError, DatasetNotFoundError, offline mode, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{dataset}: cannot open the hub dataset (split '{split}'): {msg} "
                        f"(needs access to huggingface.co; HF_HUB_OFFLINE must be unset)") from None
    return stream.shuffle(seed=seed, buffer_size=buffer_size)
