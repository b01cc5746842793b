"""Training checkpoints: trainable weights, optimizer, scheduler and RNG state, every
`train.checkpoint_every` steps under OUT/checkpoints/step-NNNNNN, written atomically
(emergent.core.io.atomic_dir: a folder named step-NNNNNN is complete; a killed save leaves only
a `.step-NNNNNN.tmp` folder). Loading one restores the run exactly, so a resumed run
equals an uninterrupted one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from emergent.core.io import atomic_dir
from emergent.core.rundir import CHECKPOINTS


def _full(t):
    """The whole tensor of an FSDP-sharded one (gathered: every rank calls it), else `t`."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def trainable_state(model) -> dict:
    """CPU copies of the parameters that train (the LoRA weights, or all in full fine-tuning);
    FSDP-sharded ones gathered whole, so every rank must call it when the model is sharded."""
    return {n: _full(p.detach()).cpu().clone() for n, p in model.named_parameters()
            if p.requires_grad}


def optimizer_state(opt) -> dict:
    """The optimizer's state dict as a single process holds it: FSDP-sharded state tensors
    gathered whole (every rank must call it when the model is sharded)."""
    sd = opt.state_dict()
    state = {i: {k: _full(v).cpu() if hasattr(v, "full_tensor") else v for k, v in st.items()}
             for i, st in sd["state"].items()}
    return {**sd, "state": state}


def gathered(model, opt) -> tuple[dict, dict]:
    """(trainable weights, optimizer state) whole, for rank 0 to write (`save(state=...)`):
    the checkpoint of a sharded (FSDP) run is the one a single process writes and reads.
    A collective when sharded: every rank calls it, in step."""
    return trainable_state(model), optimizer_state(opt)


def save(out: Path, step: int, model, opt, sched, keep: int,
         rank_rng: list[dict] | None = None, state: tuple[dict, dict] | None = None) -> None:
    """Write the checkpoint of `step`; keep the newest `keep` (0: all). `rank_rng`: every
    rank's RNG state of a data-parallel run (emergent.train.distributed), kept beside this
    process's own, which is what a single-process run restores. `state`: the weights and
    optimizer state already gathered (`gathered`, a sharded model); else taken here."""
    import torch

    weights, opt_state = state if state is not None else (trainable_state(model),
                                                           opt.state_dict())
    ckdir = out / CHECKPOINTS
    with atomic_dir(ckdir / f"step-{step:06d}", "save:checkpoint") as tmp:
        torch.save(weights, tmp / "trainable.pt")
        torch.save(opt_state, tmp / "optimizer.pt")
        torch.save(sched.state_dict(), tmp / "scheduler.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if rank_rng is not None:
            rng["ranks"] = rank_rng
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step}))
    for old in sorted(ckdir.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def _like(t, param):
    """`t` (a whole tensor) placed as `param` is: on its device and dtype, and split as an
    FSDP-sharded param is (each rank keeps its own part)."""
    if hasattr(param, "full_tensor"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(t.to(param.device, param.dtype), param.device_mesh,
                                 param.placements)
    return t.to(param.device, param.dtype)


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    cks = sorted((out / CHECKPOINTS).glob("step-*"))
    return cks[-1] if cks else None


def load(ck: Path, model, opt, sched, rank: int = 0, world: int = 1) -> int:
    """Restore weights, optimizer, scheduler and RNG from `ck`; returns its step. Rank `rank`
    of `world` data-parallel processes takes its own RNG state when the checkpoint was saved
    by as many; otherwise the saving process's."""
    import torch

    # read into CPU memory and copied to each parameter's device: a data-parallel rank never
    # first materialises rank 0's tensors on rank 0's GPU
    state = torch.load(ck / "trainable.pt", weights_only=True, map_location="cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(_like(t, params[n]))
    opt_state = torch.load(ck / "optimizer.pt", weights_only=False, map_location="cpu")
    if any(hasattr(p, "full_tensor") for g in opt.param_groups for p in g["params"]):
        ids = [p for g in opt.param_groups for p in g["params"]]
        opt_state["state"] = {i: {k: _like(v, ids[i]) if torch.is_tensor(v) and v.ndim else v
                                  for k, v in st.items()}
                              for i, st in opt_state["state"].items()}
    opt.load_state_dict(opt_state)
    sched.load_state_dict(torch.load(ck / "scheduler.pt", weights_only=False))
    rng = torch.load(ck / "rng.pt", weights_only=False)
    if world > 1 and len(rng.get("ranks", ())) == world:
        rng = rng["ranks"][rank]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ck / "state.json").read_text())["step"]
