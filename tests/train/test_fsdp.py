"""Sharded data-parallel training (`train.distributed: fsdp`, emergent.train.distributed) on
CPU: 2 gloo processes with the tiny model sharded by FSDP2 equal 1 process with the same global
batch, a killed 2-process FSDP run resumes, and a single process reads its checkpoints; the
same for a 4-bit (QLoRA) DPO run, whose bitsandbytes weights and reference pass are sharded,
and for full fine-tuning (every weight sharded, the tied lm_head with the embeddings), whose
saved model a single process loads."""
import json
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file

from emergent.core.config import ModelConfig, dump_yaml
from emergent.core.errors import UserError
from emergent.models.loading import load_for_inference
from emergent.train import loop, objectives
from emergent.train.loop import train

from tests.train.test_ddp import TOL, _adapter, _cfg, _emergent, _log, _max_diff
from tests.train.test_dpo import dpo_cfg, write_pairs

FSDP = "train.distributed=fsdp"
# 3 micro-batches of 4 per step (no token packing): rank 0 runs 2 forward passes a step, rank 1
# runs fewer (down to none) plus zero-weighted padding passes; 26 examples x 2 epochs: 6 steps, checkpoints 2, 4
RAGGED = ("train.grad_accum=3", "train.micro_batch_tokens=0")
# the LoRA SFT runs below train packed rows under FSDP (the single-process reference is padded)
PACKED = "train.padding_free=true"


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One uninterrupted single-process run (padded micro-batches) and one of 2 FSDP processes
    (torchrun) training packed rows."""
    root = tmp_path_factory.mktemp("fsdp")
    config = root / "train.yaml"
    dump_yaml(_cfg(tiny_model_dir, FSDP, *RAGGED, PACKED), config)
    train(_cfg(tiny_model_dir, *RAGGED), root / "one")
    t0 = time.time()
    r = _emergent("-q", "train", str(config), "--output", str(root / "two"),
                  "--num-processes", "2", "--launcher", "torchrun", "--cpu")
    seconds = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    return {"root": root, "config": config, "one": root / "one", "two": root / "two",
            "seconds": seconds}


@pytest.mark.slow
def test_two_fsdp_processes_equal_one_process(runs, tiny_model_dir):
    one, two = runs["one"], runs["two"]
    a, b = _log(one), _log(two)
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["trained_tokens"] for r in a] == [r["trained_tokens"] for r in b]
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b)) <= TOL
    assert max(abs(x["grad_norm"] - y["grad_norm"]) for x, y in zip(a, b)) <= TOL
    assert _max_diff(_adapter(one), _adapter(two)) <= TOL
    print(f"fsdp: max loss diff {max(abs(x['loss'] - y['loss']) for x, y in zip(a, b)):.2g}, "
          f"adapter diff {_max_diff(_adapter(one), _adapter(two)):.2g}, "
          f"2-process run {runs['seconds']:.0f} s")
    m2 = json.loads((two / "manifest.json").read_text())
    assert m2["status"] == "done" and m2["processes"] == 2
    assert m2["config"]["train"]["distributed"] == "fsdp" and m2["padding_fraction"] == 0.0
    # the ranks' shares of some steps differ in forward passes: the padding passes ran
    cfg = _cfg(tiny_model_dir, FSDP, *RAGGED, PACKED)
    objective = objectives.make(cfg)
    data = loop._load_data(cfg, two, objective, write=False)
    passes = [[len(st) for st in loop._shard(cfg, objective, data, r, 2)] for r in (0, 1)]
    assert any(x > y for x, y in zip(*passes)) and 0 in passes[1]  # even a share of nothing
    # a single-process run (default ddp) reads the FSDP run's folder as its own, finished
    stamp = (two / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    assert train(_cfg(tiny_model_dir, *RAGGED, PACKED), two) == two / "adapter"
    assert (two / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_killed_fsdp_run_resumes_and_a_single_process_reads_its_checkpoint(runs,
                                                                          tiny_model_dir):
    killed = runs["root"] / "killed"
    args = ["-q", "train", str(runs["config"]), "--output", str(killed),
            "--num-processes", "2", "--launcher", "torchrun", "--cpu"]
    r = _emergent(*args, env={"EMERGENT_FAULT": "save:checkpoint@2"})
    assert r.returncode == 2 and "launch of 2 training processes failed" in r.stderr
    assert sorted(p.name for p in (killed / "checkpoints").glob("step-*")) == ["step-000002"]
    assert not (killed / "adapter").exists()
    single = runs["root"] / "killed-single"
    shutil.copytree(killed, single)
    r = _emergent(*args)  # the same command again: resumes from step 2
    assert r.returncode == 0, r.stderr[-3000:]
    assert [row["step"] for row in _log(killed)] == list(range(1, 7))
    uninterrupted = _adapter(runs["two"])
    assert _max_diff(_adapter(killed), uninterrupted) <= TOL
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(_log(killed), _log(runs["two"]))) \
        <= TOL
    train(_cfg(tiny_model_dir, FSDP, *RAGGED, PACKED), single)  # one process reads the checkpoint
    assert _max_diff(_adapter(single), uninterrupted) <= TOL


@pytest.mark.slow
def test_fsdp_qlora_dpo_equals_one_process_resumes_and_a_single_process_reads_it(
        tiny_model_dir, tmp_path):
    """4-bit QLoRA and DPO under FSDP in one run (the cheapest that covers both): a 2-process
    run killed after its first checkpoint, then resumed, equals the 1-process 4-bit DPO run
    step by step (losses, rewards, adapter, reference log-probabilities); a single process
    finishes a copy of the killed folder to the same adapter."""
    data = write_pairs(tmp_path / "pairs.jsonl", n=14)
    # 6 pairs a step in 3 micro-batches of 2 (rank 0: 2, rank 1: 1), the last step 2 pairs
    # (rank 1: none, a zero-weighted padding pass); no warmup, so step 1 moves the weights
    over = {"model.quantization": "4bit", "train.epochs": 1, "train.grad_accum": 3,
            "train.micro_batch_tokens": 0, "train.warmup_steps": 0,
            "train.checkpoint_every": 1}
    one, two, single = tmp_path / "one", tmp_path / "two", tmp_path / "single"
    train(dpo_cfg(tiny_model_dir, data, **over), one)
    fsdp_cfg = dpo_cfg(tiny_model_dir, data, **over, **{"train.distributed": "fsdp"})
    dump_yaml(fsdp_cfg, tmp_path / "fsdp.yaml")
    args = ["-q", "train", str(tmp_path / "fsdp.yaml"), "--output", str(two),
            "--num-processes", "2", "--launcher", "torchrun", "--cpu"]
    r = _emergent(*args, env={"EMERGENT_FAULT": "save:checkpoint@2"})
    assert r.returncode == 2 and "launch of 2 training processes failed" in r.stderr, \
        r.stderr[-3000:]
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == ["step-000001"]
    shutil.copytree(two, single)
    r = _emergent(*args)  # the same command again: resumes from step 1
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _log(one), _log(two)
    assert [row["step"] for row in b] == [1, 2, 3]
    assert [row["trained_tokens"] for row in a] == [row["trained_tokens"] for row in b]
    # relative to values above 1: gradients summed over 2 ranks in another float32 order, then
    # Adam, move the adapter by 3.2e-6 by step 3 on some CPUs (bit-identical on others): the
    # grad norm, 6.45, by 2.1e-5 (3.3e-6 relative); the reward margin, a difference of summed
    # log-probabilities, by 1.1e-5. Weighting the ranks 1:1 instead moves the loss by 0.08.
    for key, tol in (("loss", TOL), ("grad_norm", TOL), ("reward_margin", 3 * TOL),
                     ("reward_accuracy", 5e-5)):  # a rank's accuracy is logged to 4 digits
        assert max(abs(x[key] - y[key]) / max(1.0, abs(x[key])) for x, y in zip(a, b)) <= tol, \
            (key, [(x[key], y[key]) for x, y in zip(a, b)])
    assert a[-1]["loss"] != a[0]["loss"]  # the weights moved
    assert _max_diff(_adapter(one), _adapter(two)) <= TOL
    ref_one, ref_two = (torch.load(d / "dpo_reference.pt", weights_only=True) for d in (one, two))
    assert ref_one.shape == (14, 2) and (ref_one - ref_two).abs().max().item() <= TOL
    m = json.loads((two / "manifest.json").read_text())
    assert m["status"] == "done" and m["processes"] == 2
    assert m["config"]["model"]["quantization"] == "4bit"
    assert m["config"]["train"]["objective"] == "dpo"
    print(f"fsdp qlora dpo: max loss diff {max(abs(x['loss'] - y['loss']) for x, y in zip(a, b)):.2g}, "
          f"adapter diff {_max_diff(_adapter(one), _adapter(two)):.2g}")
    train(fsdp_cfg, single)  # one process reads the 2-process checkpoint and finishes
    assert _max_diff(_adapter(single), _adapter(one)) <= TOL


FULL = "lora.full_finetune=true"


@pytest.fixture(scope="module")
def full_runs(tiny_model_dir, tmp_path_factory):
    """Full fine-tuning, RAGGED: one uninterrupted single-process run, and one of 2 FSDP
    processes, killed writing its second checkpoint (step 4), then resumed by the same command
    (a copy of the killed folder kept for a single process to finish)."""
    root = tmp_path_factory.mktemp("fsdp-full")
    config = root / "train.yaml"
    dump_yaml(_cfg(tiny_model_dir, FSDP, *RAGGED, FULL), config)
    train(_cfg(tiny_model_dir, *RAGGED, FULL), root / "one")
    two, single = root / "two", root / "killed-single"
    args = ["-q", "train", str(config), "--output", str(two), "--num-processes", "2",
            "--launcher", "torchrun", "--cpu"]
    t0 = time.time()
    killed = _emergent(*args, env={"EMERGENT_FAULT": "save:checkpoint@2"})
    checkpoints = sorted(p.name for p in (two / "checkpoints").glob("step-*"))
    finished_early = (two / "model").exists()
    shutil.copytree(two, single)
    resumed = _emergent(*args)
    return {"root": root, "one": root / "one", "two": two, "single": single, "killed": killed,
            "resumed": resumed, "checkpoints": checkpoints, "finished_early": finished_early,
            "seconds": time.time() - t0}


def _model(out):
    return load_file(out / "model" / "model.safetensors")


@pytest.mark.slow
def test_fsdp_full_finetune_killed_and_resumed_equals_one_process(full_runs):
    """Every weight trains, sharded (the tied embeddings/lm_head in the root unit): the
    2-process run, killed after its checkpoint at step 2 and resumed, equals the 1-process run
    step by step and in every weight of the saved model."""
    r, one, two = full_runs, full_runs["one"], full_runs["two"]
    assert r["killed"].returncode == 2, r["killed"].stderr[-3000:]
    assert "launch of 2 training processes failed" in r["killed"].stderr
    assert r["checkpoints"] == ["step-000002"] and not r["finished_early"]
    assert r["resumed"].returncode == 0, r["resumed"].stderr[-3000:]
    a, b = _log(one), _log(two)
    assert [row["step"] for row in b] == list(range(1, 7))
    assert [row["trained_tokens"] for row in a] == [row["trained_tokens"] for row in b]
    loss_diff = max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b))
    assert loss_diff <= TOL
    assert max(abs(x["grad_norm"] - y["grad_norm"]) for x, y in zip(a, b)) <= TOL
    assert a[-1]["loss"] < a[0]["loss"] - 0.1  # every weight moved: a real fine-tune
    m1, m2 = _model(one), _model(two)
    assert "model.embed_tokens.weight" in m2 and "lm_head.weight" not in m2  # tied, saved once
    assert len(m2) == 2 * 12 + 2  # 2 layers of 12 tensors, embeddings, final norm
    weight_diff = _max_diff(m1, m2)
    assert weight_diff <= TOL
    print(f"fsdp full fine-tune: max loss diff {loss_diff:.2g}, weight diff {weight_diff:.2g}, "
          f"killed + resumed 2-process runs {r['seconds']:.0f} s")
    m = json.loads((two / "manifest.json").read_text())
    assert m["status"] == "done" and m["processes"] == 2
    assert m["config"]["lora"]["full_finetune"] and m["output"] == str(two / "model")
    assert not (two / "checkpoints").exists() and (two / "model" / "tokenizer.json").exists()


@pytest.mark.slow
def test_a_single_process_reads_the_fsdp_full_finetune(full_runs, tiny_model_dir):
    """The killed 2-process folder finished by one process (its checkpoint: every weight and
    AdamW state, whole) gives the same model; the saved model loads in one process, tied."""
    one, two, single = full_runs["one"], full_runs["two"], full_runs["single"]
    train(_cfg(tiny_model_dir, FSDP, *RAGGED, FULL), single)  # one process: fsdp ignored
    assert [row["step"] for row in _log(single)] == list(range(1, 7))
    assert _max_diff(_model(single), _model(one)) <= TOL
    model, _ = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"),
                                  str(two / "model"))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    loaded = {n: p.detach() for n, p in model.named_parameters()}
    assert _max_diff(loaded, _model(one)) <= TOL


def test_a_forward_without_a_backward_leaves_no_gathered_weight_behind(tiny_model_dir):
    """DPO's reference pass runs the sharded model forward without a backward, after which FSDP
    keeps the root unit (embeddings, the tied lm_head, final norm) gathered: plain tensors in
    the model where the optimizer holds the shards. A full fine-tune then clipped, and would
    resume, the wrong tensors; `distributed.reshard` puts the shards back (one process, a
    1-rank gloo group: FSDP behaves alike)."""
    import torch.distributed as td

    from emergent.models.loading import apply_lora, load_model
    from emergent.train import distributed
    from emergent.train.token_logps import token_logps

    cfg = _cfg(tiny_model_dir, FULL)
    model = apply_lora(load_model(cfg.model, for_training=True), cfg.lora)
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{distributed.free_port()}",
                          rank=0, world_size=1)
    try:
        distributed.shard_model(model)
        sharded = list(model.parameters())
        assert all(distributed.is_sharded(p) for p in sharded)
        assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, one shard
        ids = torch.tensor([[5, 6, 7, 8, 9]])
        with torch.no_grad():
            token_logps(model, ids, torch.ones_like(ids), ids, 4)
        distributed.reshard(model)
        after = list(model.parameters())
        assert len(after) == len(sharded) and all(p is q for p, q in zip(after, sharded))
    finally:
        td.destroy_process_group()


@pytest.mark.parametrize("extra, reason", [
    ("lora.full_finetune=true model.quantization=4bit", "lora.full_finetune of a 4bit model"),
    ("model.quantization=8bit", "model.quantization 8bit"),
    ("train.adapter_dtype=compute train.master_weights=true", "train.master_weights"),
])
def test_fsdp_refuses_what_it_does_not_shard(tiny_model_dir, tmp_path, extra, reason):
    with pytest.raises(UserError, match=f"fsdp: not supported with {reason}"):
        train(_cfg(tiny_model_dir, FSDP, *extra.split()), tmp_path / "o")
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="checkpoint evaluation"):
        train(_cfg(tiny_model_dir, FSDP), tmp_path / "o", on_step=lambda step, model: None)


def test_distributed_mode_is_validated(tiny_model_dir):
    with pytest.raises(UserError, match="train.distributed"):
        _cfg(tiny_model_dir, "train.distributed=zero3")
