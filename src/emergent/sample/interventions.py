"""Activation interventions on the residual stream, as forward hooks on decoder layers.

What is hooked: the OUTPUT of a decoder layer (`model.model.layers[i]` for Llama/Qwen/Mistral-
style models, found automatically, through a peft wrapper too). That output is the residual
stream after layer i, before the model's final norm. Layer indices are 0-based decoder-layer
indices, the same indices `emergent.analysis.direction` uses (layer i = `hidden_states[i + 1]` of
transformers, except for the last layer, whose `hidden_states` entry has the final norm applied).

* `steer(model, direction, layer, scale)`: adds `scale * direction / |direction|` to the output
  of `layer` at every position (prompt and every generated token).
* `ablate(model, direction, layers)`: replaces h by h - (h . u) u, u = direction / |direction|,
  at every position of every listed layer, so the residual stream leaving those layers has no
  component along the direction. `direction` is one vector (used at every layer) or a mapping
  {layer: vector} (each layer its own).

Both are context managers; the hooks are removed on exit, also after an exception.

`SteerConfig` / `AblateConfig` are the sampling-config form (`sampling.steer`,
`sampling.ablate`): the direction is a file written by `emergent direction`;
`intervention(model, steer_cfg, ablate_cfg)` turns them into a reusable context manager (the
sampler enters it around each generate call).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence, Union

from emergent.analysis.direction_file import load_direction
from emergent.core.errors import UserError


@dataclass(frozen=True)
class SteerConfig:
    direction: str  # .safetensors written by `emergent direction`
    layer: int  # decoder layer whose output is steered
    scale: float  # added vector = scale * unit direction
    source_layer: Optional[int] = None  # which layer's direction in the file; None: `layer`
    random_seed: Optional[int] = None  # control: a random direction of the same norm (seeded)


@dataclass(frozen=True)
class AblateConfig:
    direction: str  # .safetensors written by `emergent direction`
    layers: Union[list[int], Literal["all"]] = "all"
    source_layer: Optional[int] = None  # None: each layer its own direction; int: that one
    random_seed: Optional[int] = None  # control: random directions of the same norms (seeded)


def decoder_layers(model):
    """The model's list of decoder layers (unwrapping peft)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers",
                 "model.language_model.layers"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj) > 0:
            return obj
    n = getattr(getattr(base, "config", None), "num_hidden_layers", None)
    for _, mod in base.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return mod
    raise UserError(f"{type(base).__name__}: cannot find the decoder layers to hook")


def _check_layer(layers, i: int) -> None:
    if not 0 <= i < len(layers):
        raise UserError(f"layer {i} out of range: the model has {len(layers)} decoder layers "
                        f"(0..{len(layers) - 1})")


def _replace_output(output, fn):
    """Apply fn to the hidden-state tensor of a decoder layer's output (tensor or tuple)."""
    if isinstance(output, tuple):
        return (fn(output[0]),) + tuple(output[1:])
    return fn(output)


def _unit(v, ref):
    v = v.detach().to(device=ref.device, dtype=ref.dtype)
    norm = v.norm()
    if not float(norm) > 0:
        raise UserError("intervention direction has zero norm")
    return v / norm


@contextlib.contextmanager
def hooks(model, fns: Mapping[int, callable]):
    """Register `fn(hidden) -> hidden` on the output of each layer in `fns`; remove on exit."""
    layers = decoder_layers(model)
    handles = []
    try:
        for i, fn in fns.items():
            _check_layer(layers, i)
            handles.append(layers[i].register_forward_hook(
                lambda mod, inp, out, fn=fn: _replace_output(out, fn)))
        yield model
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def steer(model, direction, layer: int, scale: float):
    """Add `scale` times the unit `direction` to the residual stream leaving `layer`."""
    def add(h):
        return h + scale * _unit(direction, h)

    with hooks(model, {layer: add}):
        yield model


def project_out(h, direction):
    """h minus its component along `direction` (last dimension), computed in float32."""
    hf = h.float()
    u = _unit(direction, hf)
    return (hf - (hf @ u).unsqueeze(-1) * u).to(h.dtype)


@contextlib.contextmanager
def ablate(model, direction, layers: Union[Sequence[int], Literal["all"]] = "all"):
    """Project `direction` out of the residual stream leaving each of `layers`, every position.

    `direction`: one vector for all layers, or {layer: vector}."""
    all_layers = decoder_layers(model)
    idx = range(len(all_layers)) if layers == "all" else list(layers)
    per = dict(direction) if isinstance(direction, Mapping) else {i: direction for i in idx}
    missing = [i for i in idx if i not in per]
    if missing:
        raise UserError(f"ablate: no direction for layers {missing}")
    with hooks(model, {i: (lambda h, d=per[i]: project_out(h, d)) for i in idx}):
        yield model


def random_like(vec, seed: int):
    """A Gaussian random vector with the norm of `vec` (seeded, reproducible on any device)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    r = torch.randn(vec.shape, generator=g, dtype=torch.float32)
    return (r * (vec.float().norm() / r.norm())).to(vec.dtype)


def _pick(vectors: dict, layer: int, path: str):
    if layer not in vectors:
        raise UserError(f"{path}: no direction for layer {layer} (file has layers "
                        f"{sorted(vectors)})")
    return vectors[layer]


class intervention:
    """The configured steering and/or ablation (or nothing) as a reusable context manager:
    direction files are read once; hooks are added on each `with` and removed on its exit."""

    def __init__(self, model, steer_cfg: Optional[SteerConfig] = None,
                 ablate_cfg: Optional[AblateConfig] = None):
        self.model, self.ablate_per, self.steer_vec = model, None, None
        self.steer_cfg = steer_cfg
        if ablate_cfg is not None:
            vecs, _ = load_direction(ablate_cfg.direction)
            n_layers = len(decoder_layers(model))
            layers = (list(range(n_layers)) if ablate_cfg.layers == "all"
                      else list(ablate_cfg.layers))
            if ablate_cfg.source_layer is not None:
                one = _pick(vecs, ablate_cfg.source_layer, ablate_cfg.direction)
                per = {i: one for i in layers}
            else:
                per = {i: _pick(vecs, i, ablate_cfg.direction) for i in layers}
            if ablate_cfg.random_seed is not None:
                per = {i: random_like(v, ablate_cfg.random_seed + i) for i, v in per.items()}
            self.ablate_per = per
        if steer_cfg is not None:
            vecs, _ = load_direction(steer_cfg.direction)
            src = steer_cfg.layer if steer_cfg.source_layer is None else steer_cfg.source_layer
            vec = _pick(vecs, src, steer_cfg.direction)
            if steer_cfg.random_seed is not None:
                vec = random_like(vec, steer_cfg.random_seed)
            self.steer_vec = vec
        self._stack = None

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        if self.ablate_per is not None:
            self._stack.enter_context(ablate(self.model, self.ablate_per, list(self.ablate_per)))
        if self.steer_vec is not None:
            self._stack.enter_context(steer(self.model, self.steer_vec, self.steer_cfg.layer,
                                            self.steer_cfg.scale))
        return self.model

    def __exit__(self, *exc):
        stack, self._stack = self._stack, None
        return stack.__exit__(*exc)


def describe(steer_cfg: Optional[SteerConfig], ablate_cfg: Optional[AblateConfig]) -> dict | None:
    """The intervention as recorded in answer rows (None when there is none)."""
    from dataclasses import asdict

    if steer_cfg is None and ablate_cfg is None:
        return None
    return {"steer": asdict(steer_cfg) if steer_cfg else None,
            "ablate": asdict(ablate_cfg) if ablate_cfg else None}
