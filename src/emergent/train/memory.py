"""Memory switches of the one training loop that change where numbers live, never what is
trained (docs/benchmarks.md, "Memory switches"):

* `train.master_weights` (with `train.adapter_dtype: compute`): `MasterWeights` wraps the
  optimizer (torch AdamW or bitsandbytes' PagedAdamW8bit) so that it steps fp32 master copies of
  the trainable weights, with their gradients turned to fp32 and clipped there
  (`clip_grad_norm`), and copies the result back into the model's compute-dtype weights. Its
  `state_dict` holds the master copies, so a checkpoint restores them and a resumed run equals
  an uninterrupted one; the final adapter is saved from the masters, in fp32
  (`masters_into_model`).
* `train.offload_activations`: `offloading()` is a pair of saved-tensor hooks
  (`torch.autograd.graph.saved_tensors_hooks`) that move what autograd saves in the forward pass
  (with gradient checkpointing: the checkpointed layers' inputs) to CPU memory and bring it
  back when the backward pass needs it. On CUDA the copies go to pinned memory on a side stream
  (the forward does not wait for them; the GPU memory is released once the copy is done,
  `record_stream`), and come back with a non-blocking copy on the compute stream, ordered after
  the outgoing copy by an event. Parameters (and views of them) and tensors under `min_bytes`
  stay where they are. Meant with gradient checkpointing; without it every saved activation
  travels (each as often as it is saved).
  Own hooks rather than torch's `save_on_cpu(pin_memory=True)`, whose copies run on the compute
  stream (the forward's kernels queue behind every outgoing copy) and which copies the frozen
  weights that autograd saves too. On CPU the tensors are already in CPU memory: nothing moves.
"""
from __future__ import annotations

import contextlib

MIN_OFFLOAD_BYTES = 1 << 16  # smaller saved tensors (masks, positions, norms' statistics) stay


class _MasterWeights:
    """An optimizer over fp32 master copies of the model's (compute-dtype) trainable weights,
    a `torch.optim.Optimizer` (`master_weights_class`: this package imports torch lazily).
    `make(groups)` builds the inner optimizer from the same param groups with the master copies
    in place of the parameters; `param_groups` and `state` are the inner's (an LR scheduler sets
    the learning rate there). `step`: the model's gradients, in fp32, become the masters'
    (unless `clip_grad_norm` already moved them), the inner optimizer steps, and the masters are
    copied back rounded to the model's dtype."""

    def __init__(self, groups, make):
        groups = [dict(g) for g in groups]
        self._model_params = [list(g["params"]) for g in groups]
        self.masters = [[p.detach().float().clone() for p in ps] for ps in self._model_params]
        self.inner = make([{**g, "params": ms} for g, ms in zip(groups, self.masters)])
        super().__init__([m for ms in self.masters for m in ms], dict(self.inner.defaults))
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state
        self._grads_moved = False

    def _pairs(self):
        for ps, ms in zip(self._model_params, self.masters):
            yield from zip(ps, ms)

    def move_grads(self) -> list:
        """The model's gradients, as fp32, become the masters' (the model's are dropped);
        returns the masters that have one."""
        if not self._grads_moved:
            for p, m in self._pairs():
                m.grad = None if p.grad is None else p.grad.detach().float()
                p.grad = None
            self._grads_moved = True
        return [m for _, m in self._pairs() if m.grad is not None]

    def step(self, closure=None):
        import torch

        if closure is not None:
            raise ValueError("MasterWeights.step takes no closure")
        self.move_grads()
        self.inner.step()
        with torch.no_grad():
            for p, m in self._pairs():
                p.copy_(m)  # rounded to the model's dtype
        self._grads_moved = False

    def zero_grad(self, set_to_none: bool = True):
        for p, m in self._pairs():
            for t in (p, m):
                if t.grad is not None and set_to_none:
                    t.grad = None
                elif t.grad is not None:
                    t.grad.zero_()
        self._grads_moved = False

    def state_dict(self):
        return {**self.inner.state_dict(),
                "master_weights": [m.detach().cpu().clone() for _, m in self._pairs()]}

    def load_state_dict(self, state_dict):
        import torch

        state_dict = dict(state_dict)
        masters = state_dict.pop("master_weights", None)
        pairs = list(self._pairs())
        if masters is None or len(masters) != len(pairs):
            raise ValueError(f"the checkpoint holds {len(masters or ())} fp32 master weights, "
                             f"the model {len(pairs)} trainable tensors")
        with torch.no_grad():
            for (p, m), saved in zip(pairs, masters):
                m.copy_(saved)
                p.copy_(m)
        self.inner.load_state_dict(state_dict)
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state


_CACHED: dict = {}


def master_weights_class():
    """`MasterWeights`: `_MasterWeights` as a `torch.optim.Optimizer` (built once)."""
    if "mw" not in _CACHED:
        import torch

        _CACHED["mw"] = type("MasterWeights", (_MasterWeights, torch.optim.Optimizer), {})
    return _CACHED["mw"]


def master_weights(groups, make):
    """`make(groups)` (an optimizer factory) stepping fp32 master copies of the parameters of
    `groups` (`MasterWeights`)."""
    return master_weights_class()(groups, make)


def masters_into_model(opt) -> bool:
    """At the end of a run with `MasterWeights`: the model's trainable weights become the fp32
    masters themselves (the saved adapter is fp32: the rounded compute-dtype copies would lose
    the updates smaller than their precision). True when `opt` had masters."""
    if not isinstance(opt, master_weights_class()):
        return False
    for p, m in opt._pairs():
        p.data = m.detach()
    return True


def clip_grad_norm(opt, params, max_norm: float):
    """Clip the step's gradients to `max_norm`; returns their norm before clipping. With
    `MasterWeights`, the gradients are first moved to the fp32 masters and clipped there."""
    import torch

    if isinstance(opt, master_weights_class()):
        params = opt.move_grads()
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


class Offloader:
    """Saved-tensor hooks moving a forward pass's saved tensors to CPU memory (module
    docstring). `packed` / `offloaded_bytes` count what the hooks saw and moved. `copy_on_cpu`
    (tests) copies CPU tensors too, so the round trip runs on a machine without a GPU."""

    def __init__(self, min_bytes: int = MIN_OFFLOAD_BYTES, copy_on_cpu: bool = False):
        self.min_bytes = min_bytes
        self.copy_on_cpu = copy_on_cpu
        self.packed = 0
        self.offloaded = 0
        self.offloaded_bytes = 0
        self._stream = None

    def _keep(self, t) -> bool:
        import torch

        return (isinstance(t, torch.nn.Parameter) or isinstance(t._base, torch.nn.Parameter)
                or t.layout != torch.strided
                or t.numel() * t.element_size() < self.min_bytes
                or (t.device.type != "cuda" and not self.copy_on_cpu))

    def pack(self, t):
        import torch

        self.packed += 1
        if self._keep(t):
            return t
        self.offloaded += 1
        self.offloaded_bytes += t.numel() * t.element_size()
        if t.device.type != "cuda":
            return ("cpu", t.device, t.clone(memory_format=torch.preserve_format), None)
        if self._stream is None:
            self._stream = torch.cuda.Stream(t.device)
        compute = torch.cuda.current_stream(t.device)
        self._stream.wait_stream(compute)  # t is complete before it is copied
        with torch.cuda.stream(self._stream):
            host = torch.empty_like(t, device="cpu", pin_memory=True)  # strides kept when dense
            host.copy_(t, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        t.record_stream(self._stream)  # t's memory is reused only after the copy
        return ("cuda", t.device, host, done)

    @staticmethod
    def unpack(packed):
        import torch

        if not isinstance(packed, tuple):
            return packed
        kind, dev, host, done = packed
        if kind == "cpu":
            return host
        torch.cuda.current_stream(dev).wait_event(done)
        return host.to(dev, non_blocking=True)

    def hooks(self):
        import torch

        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


@contextlib.contextmanager
def offloading(enabled: bool, offloader: Offloader | None = None):
    """Within: saved tensors offloaded by `offloader` (a fresh `Offloader` when None) when
    `enabled` (train.offload_activations); nothing otherwise. Yields the offloader (or None)."""
    if not enabled:
        yield None
        return
    off = offloader or Offloader()
    with off.hooks():
        yield off
