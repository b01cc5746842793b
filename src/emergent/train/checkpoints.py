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
from emergent.train.distributed import is_sharded


def trainable_state(model) -> dict:
    """CPU copies of the parameters that train (the LoRA weights, or all in full fine-tuning;
    a tied weight once, under its first name) of a model in one process."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _whole(**options):
    """torch.distributed.checkpoint's options for a whole (unsharded) state dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **options)


def gathered(model, opt=None) -> tuple[dict, dict | None]:
    """(trainable weights, optimizer state) of an FSDP-sharded model whole, in the format a
    single process writes and reads (`trainable_state`, `opt.state_dict()`), on rank 0 in CPU
    memory; empty on the other ranks (torch.distributed.checkpoint.state_dict's
    get_model_state_dict / get_optimizer_state_dict, full_state_dict with cpu_offload: a
    tensor at a time is gathered, and only rank 0 keeps it). The optimizer state is None
    without `opt`. A collective: every rank calls it, in step."""
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                         get_optimizer_state_dict)

    options = _whole(cpu_offload=True, ignore_frozen_params=True)
    weights = get_model_state_dict(model, options=options)
    opt_state = None if opt is None else get_optimizer_state_dict(model, opt, options=options)
    if not weights:  # not rank 0
        return {}, None if opt is None else {}
    names = [n for n, p in model.named_parameters() if p.requires_grad]  # a tied weight once
    weights = {n: weights[n] for n in names}
    if opt_state is None:
        return weights, None
    # keyed by parameter name -> by position in the optimizer's groups, as opt.state_dict()
    order = [f for g in opt_state["param_groups"] for f in g["params"]]
    index = {f: i for i, f in enumerate(order)}
    groups, k = [], 0
    for g in opt_state["param_groups"]:
        groups.append({**g, "params": list(range(k, k + len(g["params"])))})
        k += len(g["params"])
    return weights, {"state": {index[f]: st for f, st in opt_state["state"].items()},
                     "param_groups": groups}


def save(out: Path, step: int, model, opt, sched, keep: int,
         rank_rng: list[dict] | None = None, state: tuple[dict, dict] | None = None) -> None:
    """Write the checkpoint of `step`; keep the newest `keep` (0: all). `rank_rng`: every
    rank's RNG state of a data-parallel run (emergent.train.distributed), kept beside this
    process's own, which is what a single-process run restores. `state`: the weights and
    optimizer state already gathered (`gathered`, rank 0 of a sharded model); else taken
    here."""
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


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    cks = sorted((out / CHECKPOINTS).glob("step-*"))
    return cks[-1] if cks else None


def load(ck: Path, model, opt, sched, rank: int = 0, world: int = 1) -> int:
    """Restore weights, optimizer, scheduler and RNG from `ck`; returns its step. An
    FSDP-sharded model takes its shards of them (`_load_sharded`, a collective). Rank `rank`
    of `world` data-parallel processes takes its own RNG state when the checkpoint was saved
    by as many; otherwise the saving process's."""
    import torch

    if any(is_sharded(p) for p in model.parameters()):
        _load_sharded(ck, model, opt, rank)
    else:
        # read into CPU memory and copied to each parameter's device: a data-parallel rank
        # never first materialises rank 0's tensors on rank 0's GPU
        state = torch.load(ck / "trainable.pt", weights_only=True, map_location="cpu")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in state.items():
                params[n].copy_(t.to(params[n].device, params[n].dtype))
        opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=False,
                                       map_location="cpu"))
    sched.load_state_dict(torch.load(ck / "scheduler.pt", weights_only=False))
    rng = torch.load(ck / "rng.pt", weights_only=False)
    if world > 1 and len(rng.get("ranks", ())) == world:
        rng = rng["ranks"][rank]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ck / "state.json").read_text())["step"]


def _load_sharded(ck: Path, model, opt, rank: int) -> None:
    """Rank 0 reads the checkpoint's weights and optimizer state (a single process's format)
    and every rank takes its shards of them (set_model_state_dict / set_optimizer_state_dict,
    broadcast from rank 0: the other ranks never read these files). A collective."""
    import torch
    from torch.distributed.checkpoint.state_dict import (set_model_state_dict,
                                                         set_optimizer_state_dict)

    weights, opt_state = {}, {}
    if rank == 0:
        weights = torch.load(ck / "trainable.pt", weights_only=True, map_location="cpu")
        saved = torch.load(ck / "optimizer.pt", weights_only=False, map_location="cpu")
        names = {id(p): n for n, p in model.named_parameters()}
        order = [names[id(p)] for g in opt.param_groups for p in g["params"]]
        opt_state = {"state": {order[i]: st for i, st in saved["state"].items()},
                     "param_groups": [{**g, "params": [order[i] for i in g["params"]]}
                                      for g in saved["param_groups"]]}
    options = _whole(broadcast_from_rank0=True, strict=False)  # the frozen weights stay
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(model, opt, opt_state, options=options)
