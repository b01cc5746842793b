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


def trainable_state(model) -> dict:
    """CPU copies of the parameters that train (the LoRA weights, or all in full fine-tuning)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save(out: Path, step: int, model, opt, sched, keep: int,
         rank_rng: list[dict] | None = None) -> None:
    """Write the checkpoint of `step`; keep the newest `keep` (0: all). `rank_rng`: every
    rank's RNG state of a data-parallel run (emergent.train.distributed), kept beside this
    process's own, which is what a single-process run restores."""
    import torch

    ckdir = out / CHECKPOINTS
    with atomic_dir(ckdir / f"step-{step:06d}", "save:checkpoint") as tmp:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
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
    """Restore weights, optimizer, scheduler and RNG from `ck`; returns its step. Rank `rank`
    of `world` data-parallel processes takes its own RNG state when the checkpoint was saved
    by as many; otherwise the saving process's."""
    import torch

    state = torch.load(ck / "trainable.pt", weights_only=True)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=False))
    sched.load_state_dict(torch.load(ck / "scheduler.pt", weights_only=False))
    rng = torch.load(ck / "rng.pt", weights_only=False)
    if world > 1 and len(rng.get("ranks", ())) == world:
        rng = rng["ranks"][rank]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ck / "state.json").read_text())["step"]
