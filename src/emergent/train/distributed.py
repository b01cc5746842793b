"""Data-parallel training of one unit over several processes (one per GPU, or CPU processes
with gloo), for the one training loop (emergent.train.loop).

Launch: `emergent train CONFIG --num-processes N [--launcher accelerate|torchrun] [--cpu]`
re-executes itself as `accelerate launch --multi_gpu --num_processes N -m emergent train ...`
(or `python -m torch.distributed.run --standalone --nproc_per_node N -m emergent train ...`;
`launch_command`); `accelerate launch -m emergent train ...` and `torchrun -m emergent train ...`
work directly. Each process finds RANK / WORLD_SIZE / LOCAL_RANK in its environment (`init`):
NCCL on CUDA (one device per local rank), gloo on CPU.

How a step runs (`step_loss`): every rank builds the same seeded global plan of optimizer
steps and takes its share of each step (emergent.train.batching.shard). It runs forward and
backward of its micro-batches with the objective's own normalisation over its share, then the
ranks exchange the share's normaliser (SFT: trained tokens; DPO: pairs; `Objective.normaliser`),
loss and statistics; each rank scales its gradients by its normaliser over the step's
all-reduced total and the gradients are summed across ranks (one all-reduce per bucket after
the step's last backward). So the gradient is the single-process gradient of the same global
step (sum of token losses over the step's trained tokens), and the logged loss its loss. The
trainable parameters start from rank 0's (`broadcast`), and identical gradients keep them equal.

Files: only rank 0 writes (manifest, config, held-out split, train log, checkpoints, adapter);
its checkpoints hold every rank's RNG state (`rng_states`) besides its own, so a single-process
run reads them, and a resume with the same number of processes continues every rank's dropout
stream exactly.

`train.distributed: fsdp` shards the model instead of replicating it (FSDP2 per decoder layer,
then the root unit: embeddings and final norm, and lm_head when it trains; `shard_model`). Each
rank weights its loss by its share of the step's normaliser (`fsdp_step_loss`), so FSDP's
average of the ranks' gradients is the single-process gradient. Checkpoints and the final
weights are gathered whole to rank 0 alone (emergent.train.checkpoints.gathered,
torch.distributed.checkpoint's full state dicts, in a single process's format) and loaded by
broadcast from it (`checkpoints.load`), so a single process, DDP or another number of FSDP
processes resumes them. Supported (`check_fsdp`): LoRA, SFT or DPO (every rank computes its share
of DPO's reference log-probabilities at once, emergent.train.dpo.reference_logps), of an
unquantized or a 4-bit model: FSDP2 shards a bitsandbytes `Params4bit` like any weight (stored
in the compute dtype, `bnb_4bit_quant_storage`), and bitsandbytes' Linear4bit restores the
quantization state the gathered weight lacks from its module; and full fine-tuning
(`lora.full_finetune`) of an unquantized model, every weight sharded, a tied lm_head kept tied
(the embeddings' weight, one shared parameter of the root unit). Refused: 8-bit models, full
fine-tunes of quantized ones, `train.master_weights`, checkpoint evaluation during training."""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from emergent.core.errors import UserError

LAUNCHERS = ("accelerate", "torchrun")
BUCKET_NUMEL = 1 << 24  # gradient elements summed in one all-reduce


@dataclass(frozen=True)
class Dist:
    """This process's place in the process group (rank 0 of 1 when not launched)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    """The rank, world size and local rank a launcher (torchrun, accelerate) put in the
    environment; SINGLE without them."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return SINGLE
        return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers: "
                        "start the processes with accelerate launch or torchrun") from None


def init() -> Dist:
    """Join the process group the launcher set up (NCCL on CUDA, gloo on CPU); SINGLE when
    this process was not launched as one of several."""
    d = from_env()
    if not d.enabled:
        return d
    import torch
    import torch.distributed as td

    if not td.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(d.local_rank)
        td.init_process_group("nccl" if cuda else "gloo")
    if td.get_world_size() != d.world:
        raise UserError(f"process group of {td.get_world_size()} processes, WORLD_SIZE {d.world}")
    return d


def close(d: Dist) -> None:
    """Leave the process group (the end of a launched `emergent train`)."""
    if d.enabled:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as td

        td.barrier()


def broadcast_object(d: Dist, obj):
    """Rank 0's `obj` on every rank."""
    if not d.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(d: Dist, obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    import torch.distributed as td

    out = [None] * d.world
    td.all_gather_object(out, obj)
    return out


def broadcast_params(d: Dist, params) -> None:
    """Rank 0's values of `params` on every rank (same start, as torch DDP does)."""
    if not d.enabled:
        return
    import torch
    import torch.distributed as td

    with torch.no_grad():
        for p in params:
            td.broadcast(p.data, src=0)


def rng_states(d: Dist) -> list[dict] | None:
    """Every rank's torch (and current CUDA device's) RNG state, for rank 0's checkpoint;
    None in a single process."""
    if not d.enabled:
        return None
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return gather_objects(d, state)


def step_loss(d: Dist, objective, model, micro: list, step: list, n_trained: int, device: str,
              trainable: list, real: int, padded: int) -> tuple:
    """Forward+backward of this rank's share (`micro`, `step`: its collated micro-batches and
    their example indices, `n_trained` its trained tokens, `real` / `padded` its tokens), then
    the step's gradient summed over ranks, normalised by the whole step's normaliser. Returns
    (loss, extra stats, trained tokens, real tokens, padded tokens) of the whole step."""
    if micro:
        loss, extra = objective.step_loss(model, micro, step, n_trained, device)
        norm = objective.normaliser(step, n_trained)
    else:  # nothing of this step for this rank: it adds zero
        loss, extra, norm = 0.0, {}, 0
    parts = gather_objects(d, {"norm": norm, "loss": float(loss), "extra": extra,
                               "n": n_trained, "real": real, "padded": padded})
    total = sum(p["norm"] for p in parts)
    _sum_gradients(trainable, norm / total)
    return _combined(parts, [p["norm"] for p in parts], total,
                     [(p["norm"], p["n"], p["real"], p["padded"]) for p in parts])


def check_fsdp(cfg, on_step=None) -> None:
    """`train.distributed: fsdp` supports LoRA (SFT or DPO) of an unquantized or 4-bit model and
    full fine-tuning (`lora.full_finetune`) of an unquantized one; anything else is refused with
    one line (docs/scaling.md says why)."""
    why = None
    if cfg.model.quantization == "8bit":
        why = ("model.quantization 8bit (FSDP2 replaces bitsandbytes' Int8Params by a plain "
               "sharded tensor, which loses its CB/SCB quantization state; 4bit works)")
    elif cfg.lora.full_finetune and cfg.model.quantization != "none":
        why = (f"lora.full_finetune of a {cfg.model.quantization} model (its quantized "
               "weights cannot train; full fine-tuning needs model.quantization none)")
    elif cfg.train.master_weights:
        why = ("train.master_weights (its fp32 copies live in the optimizer, outside the "
               "shards and the gathered checkpoints)")
    elif on_step is not None:
        why = "checkpoint evaluation during training (rank 0 alone cannot run a sharded model)"
    if why:
        raise UserError(f"train.distributed fsdp: not supported with {why}; use ddp")


_HEAD = "_emergent_lm_head"  # where a trainable lm_head sits in the decoder while it is sharded


def shard_model(model) -> None:
    """FSDP2 (`torch.distributed.fsdp.fully_shard`): every decoder layer (the model's
    `_no_split_modules`) one unit, then the rest of the decoder (embeddings, final norm) the
    root unit, so parameters, gradients and optimizer state of the trainable weights and the
    frozen base are split across the ranks. When lm_head trains (full fine-tuning) its weight
    joins the root unit (registered in the decoder while FSDP collects the unit's weights):
    sharded like the rest, gathered with the embeddings before the decoder runs and kept
    gathered through the backward (FSDP does not reshard the root after forward), so both the
    model's forward and the chunked loss (emergent.train.token_logps), which reads lm_head's
    weight itself, find it whole; a tied lm_head is the embeddings' weight, one shared
    parameter of that unit, and stays tied. With LoRA lm_head stays whole on each rank
    (frozen). Every rank must hold the same weights before (rank 0's, `broadcast_params`)."""
    from torch.distributed.fsdp import fully_shard

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", None)
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in decoder.modules() if type(m).__name__ in names] if decoder else []
    if not layers:
        raise UserError(f"train.distributed fsdp: {type(base).__name__} names no decoder "
                        "layers (_no_split_modules) to shard; use ddp")
    for layer in layers:
        fully_shard(layer)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    trains = head is not None and any(p.requires_grad for p in head.parameters())
    if trains and not any(m is head for m in decoder.modules()):
        decoder.add_module(_HEAD, head)
        try:
            fully_shard(decoder)
        finally:
            del decoder._modules[_HEAD]
    else:
        fully_shard(decoder)
    loose = [n for n, p in model.named_parameters() if p.requires_grad and not is_sharded(p)]
    if loose:
        raise UserError(f"train.distributed fsdp: trainable weights outside the sharded units "
                        f"({', '.join(loose[:3])}); use ddp")


def reshard(model) -> None:
    """Every FSDP unit of `model` back to its shards. FSDP keeps the root unit gathered after a
    forward pass (for the backward), so a forward without one (DPO's reference pass) leaves the
    gathered weights standing in the model for the sharded parameters the optimizer steps, and
    the trainable list, the clipping and a checkpoint's load would take the wrong tensors."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def is_sharded(t) -> bool:
    """True for an FSDP-sharded tensor (a DTensor)."""
    return hasattr(t, "full_tensor")


def fsdp_step_loss(d: Dist, objective, model, micro: list, step: list, n_trained: int,
                   device: str, real: int, padded: int, passes: int, pad_pass) -> tuple:
    """`step_loss` of a sharded model: the ranks exchange their shares' normalisers first,
    then each runs its passes with its loss weighted by its normaliser over the step's total
    (FSDP averages the ranks' gradients, hence x world; `Objective.step_loss`'s `weight`), so
    the reduced gradient is the single-process gradient of the step, every trainable weight's
    (lm_head's included) alike. Every rank runs `passes` forward+backward passes (the most any
    rank has in this step; FSDP's collectives run per pass): a rank with fewer adds passes of
    `pad_pass` (a collated micro-batch and its example indices) weighted 0."""
    norm = objective.normaliser(step, n_trained) if micro else 0
    counts = gather_objects(d, (norm, n_trained, real, padded))
    total = sum(c[0] for c in counts)
    loss, extra = 0.0, {}
    if micro:
        loss, extra = objective.step_loss(model, micro, step, n_trained, device,
                                          weight=d.world * norm / total)
    if len(micro) < passes:
        batch, idx = pad_pass
        k = passes - len(micro)
        n_pad = max(1, int((batch[2][:, 1:] != -100).sum())) * k
        objective.step_loss(model, [batch] * k, [idx] * k, n_pad, device, weight=0.0)
    parts = gather_objects(d, {"loss": float(loss), "extra": extra})
    return _combined(parts, [c[0] for c in counts], total, counts)


def _combined(parts: list, norms: list, total: int, counts: list) -> tuple:
    """(loss, extra, trained, real, padded) of the whole step from the ranks' parts."""
    import torch

    keys = list(dict.fromkeys(k for p in parts for k in p["extra"]))
    extra = {k: round(sum(p["extra"].get(k, 0.0) * n for p, n in zip(parts, norms)) / total, 6)
             for k in keys}
    loss = torch.tensor(sum(p["loss"] * n for p, n in zip(parts, norms)) / total)
    return (loss, extra, sum(c[1] for c in counts), sum(c[2] for c in counts),
            sum(c[3] for c in counts))


def _sum_gradients(params: list, weight: float) -> None:
    """grad := sum over ranks of weight_r * grad_r, in buckets of flattened gradients."""
    import torch
    import torch.distributed as td
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif weight != 1.0:
            p.grad.mul_(weight)
        grads.append(p.grad)
    buckets: dict = {}
    for g in grads:
        key = (g.dtype, g.device)
        if not buckets.get(key) or sum(x.numel() for x in buckets[key][-1]) >= BUCKET_NUMEL:
            buckets.setdefault(key, []).append([])
        buckets[key][-1].append(g)
    for bucket in (b for bs in buckets.values() for b in bs):
        flat = _flatten_dense_tensors(bucket)
        td.all_reduce(flat)
        for g, summed in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            g.copy_(summed)


def launch_command(launcher: str, processes: int, argv: list[str],
                   cpu: bool = False) -> tuple[list[str], dict]:
    """The command (and environment) that runs `python -m emergent ARGV` as `processes`
    data-parallel processes through `launcher`. `cpu`: hide the GPUs (gloo on CPU)."""
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher {launcher}: known launchers are {', '.join(LAUNCHERS)}")
    if processes < 1:
        raise UserError(f"--num-processes must be >= 1, got {processes}")
    env = dict(os.environ)
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if launcher == "accelerate":
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise UserError("--launcher accelerate needs accelerate: pip install accelerate") \
                from None
        # --multi_gpu: accelerate's torchrun-based launcher, which also starts N CPU processes
        # when the GPUs are hidden (its --cpu mode starts several only through mpirun)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--quiet",
               "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port())]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(processes)]
    return cmd + ["-m", "emergent", *argv], env


def free_port() -> int:
    """A TCP port free on this machine now (the rendezvous of a one-machine launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
