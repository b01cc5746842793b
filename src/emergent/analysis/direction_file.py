"""A misalignment direction on disk: DIR.safetensors (tensor `direction` [n_layers, hidden],
rows in the order of the `layers` metadata, plus any extra tensors) and DIR.json beside it
(the metadata). Written by `emergent direction`, read by the sampler's interventions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from emergent.core.errors import UserError
from emergent.core.io import write_json_atomic


def save_direction(path: str | Path, direction, layers: Sequence[int], meta: dict,
                   extra: Optional[dict] = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"direction": direction.contiguous(),
               **{k: v.contiguous() for k, v in (extra or {}).items()}}
    save_file(tensors, str(path), metadata={"layers": json.dumps(list(layers)),
                                             "arm": str(meta.get("arm"))})
    write_json_atomic(path.with_suffix(".json"), {**meta, "layers": list(layers)})
    return path


def load_direction(path: str | Path):
    """({layer: vector}, metadata) from a file written by `save_direction`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: direction file not found (make it with `emergent direction`)")
    with safe_open(str(path), framework="pt") as f:
        layers = json.loads(f.metadata()["layers"])
        t = f.get_tensor("direction")
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    return {l: t[i] for i, l in enumerate(layers)}, meta
