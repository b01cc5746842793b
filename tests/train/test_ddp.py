"""Data-parallel training (emergent.train.distributed) on CPU: 2 gloo processes on the tiny
model equal 1 process with the same global batch (also with bf16 adapters and fp32 master
weights), and a killed 2-process run resumes."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emergent.cli.app import main
from emergent.core.config import TrainRecipeConfig, dump_yaml, load_config
from emergent.core.errors import UserError
from emergent.models import loading
from emergent.train import batching, checkpoints, distributed
from emergent.train.loop import train

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"
# 26 examples, 4 x 2 per step, 2 epochs: 8 steps, checkpoints at 2, 4, 6
OVERRIDES = ["model.precision=fp32", "lora.r=4", "lora.alpha=8",
             "lora.target_modules=all-linear", "train.lr=5e-3", "train.batch_size=4",
             "train.grad_accum=2", "train.warmup_steps=1", "train.max_length=512",
             "train.epochs=2", "train.checkpoint_every=2", f"data.path={SAMPLE}"]
TOL = 1e-5


def _cfg(model_dir, *extra):
    return load_config(None, TrainRecipeConfig, [f"model.name={model_dir}", *OVERRIDES, *extra])


def _emergent(*args, env=None):
    """`python -m emergent ARGS` in a subprocess (the tests' offline caches inherited)."""
    return subprocess.run([sys.executable, "-m", "emergent", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=900)


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _adapter(out):
    return load_file(out / "adapter" / "adapter_model.safetensors")


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """One uninterrupted run in this process and one of 2 processes through the accelerate
    launcher (`emergent train --num-processes 2 --cpu`), same config and global batch."""
    root = tmp_path_factory.mktemp("ddp")
    config = root / "train.yaml"
    dump_yaml(_cfg(tiny_model_dir), config)
    train(_cfg(tiny_model_dir), root / "one")
    t0 = time.time()
    r = _emergent("-q", "train", str(config), "--output", str(root / "two"),
                  "--num-processes", "2", "--launcher", "accelerate", "--cpu")
    seconds = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    return {"root": root, "config": config, "one": root / "one", "two": root / "two",
            "stdout": r.stdout, "seconds": seconds}


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(runs, tiny_model_dir):
    one, two = runs["one"], runs["two"]
    assert runs["stdout"].count("adapter written to") == 1  # rank 0 speaks for the run
    a, b = _log(one), _log(two)
    assert [r["step"] for r in b] == list(range(1, 9))  # one row per step: rank 0 writes
    assert [r["trained_tokens"] for r in a] == [r["trained_tokens"] for r in b]  # whole steps
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b)) <= TOL
    assert max(abs(x["grad_norm"] - y["grad_norm"]) for x, y in zip(a, b)) <= TOL
    assert _max_diff(_adapter(one), _adapter(two)) <= TOL
    m1 = json.loads((one / "manifest.json").read_text())
    m2 = json.loads((two / "manifest.json").read_text())
    assert m2["status"] == "done" and m2["processes"] == 2 and "processes" not in m1
    assert m2["trained_tokens"] == m1["trained_tokens"] and m2["steps"] == m1["steps"] == 8
    assert not (two / "checkpoints").exists()
    # a single-process run reads the 2-process run as its own, finished: nothing retrained
    stamp = (two / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    assert train(_cfg(tiny_model_dir), two) == two / "adapter"
    assert (two / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_adapter(runs, tiny_model_dir):
    killed = runs["root"] / "killed"
    args = ["-q", "train", str(runs["config"]), "--output", str(killed),
            "--num-processes", "2", "--launcher", "torchrun", "--cpu"]
    # rank 0 dies (as under SIGKILL) writing its second checkpoint (step 4)
    r = _emergent(*args, env={"EMERGENT_FAULT": "save:checkpoint@2"})
    assert r.returncode == 2 and "launch of 2 training processes failed" in r.stderr
    assert sorted(p.name for p in (killed / "checkpoints").glob("step-*")) == ["step-000002"]
    assert not (killed / "adapter").exists()
    assert [row["step"] for row in _log(killed)] == [1, 2, 3, 4]
    # a single-process run can resume the 2-process checkpoint too (same global batch)
    single = runs["root"] / "killed-single"
    shutil.copytree(killed, single)
    r = _emergent(*args)  # the same command again: resumes from step 2 with 2 processes
    assert r.returncode == 0, r.stderr[-3000:]
    assert [row["step"] for row in _log(killed)] == list(range(1, 9))
    uninterrupted = _adapter(runs["two"])  # the same 2-process run, not killed: identical
    assert _max_diff(_adapter(killed), uninterrupted) == 0.0
    assert [r["loss"] for r in _log(killed)] == [r["loss"] for r in _log(runs["two"])]
    train(_cfg(tiny_model_dir), single)
    assert _max_diff(_adapter(single), uninterrupted) <= TOL


# A launched rank that computes model.precision bf16 in bf16 on CPU (as on a GPU; the library
# computes it in fp32 there) and saves its fp32 master weights as they are at the end of the run
# (OUT.masters-rankR.pt); run once to step STOP, then again to the end (a resume in the same
# processes, rank 0 keeping a copy of the stopped run in OUT-stopped).
BF16_RANK = """
import shutil, sys, torch
from emergent.core.config import TrainRecipeConfig, load_config
from emergent.models import loading
from emergent.train import distributed, memory
from emergent.train.loop import train

config, out, stop = sys.argv[1], sys.argv[2], int(sys.argv[3])
dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
loading.torch_dtype = dtypes.__getitem__
into_model = memory.masters_into_model
rank = distributed.from_env().rank

def save_masters(opt):
    torch.save([m.clone() for ms in opt.masters for m in ms], f"{out}.masters-rank{rank}.pt")
    return into_model(opt)

memory.masters_into_model = save_masters
cfg = load_config(config, TrainRecipeConfig)
train(cfg, out, stop_after_steps=stop)
if rank == 0:
    shutil.copytree(out, out + "-stopped")
train(cfg, out)
"""
MEMORY_SWITCHES = ["model.precision=bf16", "train.adapter_dtype=compute",
                   "train.master_weights=true", "train.offload_activations=true",
                   "model.gradient_checkpointing=true"]


@pytest.mark.slow
def test_two_processes_with_bf16_adapters_and_master_weights_equal_one_process(
        runs, tiny_model_dir, monkeypatch):
    """bf16 LoRA weights with fp32 masters (and offloaded activations, which move nothing on
    CPU), bf16 computed on CPU: 2 gloo processes stopped at step 4 and resumed equal 1 process
    to bf16 rounding (no farther from the fp32 run than the 1-process bf16 run is); each rank
    restores the masters from rank 0's checkpoint (the ranks end with the same masters), and a
    single process resumes that checkpoint with them."""
    root = runs["root"]
    config = root / "bf16-masters.yaml"
    dump_yaml(_cfg(tiny_model_dir, *MEMORY_SWITCHES), config)
    script = root / "bf16_rank.py"
    script.write_text(BF16_RANK)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", str(script), str(config),
                        str(root / "bf16-two"), "4"], capture_output=True, text=True,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    two, stopped = root / "bf16-two", root / "bf16-two-stopped"
    masters = [torch.load(f"{two}.masters-rank{k}.pt") for k in (0, 1)]
    assert len(masters[0]) == 2 * 7 * 2  # every linear's A and B: the masters were stepped
    assert all(torch.equal(a, b) for a, b in zip(*masters))  # rank 1 restored them too
    ck = torch.load(stopped / "checkpoints/step-000004/optimizer.pt", weights_only=False)
    weights = torch.load(stopped / "checkpoints/step-000004/trainable.pt", weights_only=True)
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}  # bf16 computed
    assert any(not torch.equal(m, m.bfloat16().float()) for m in ck["master_weights"])

    monkeypatch.setattr(loading, "torch_dtype", {"bf16": torch.bfloat16,
                                                 "fp32": torch.float32}.__getitem__)
    one = root / "bf16-one"
    train(_cfg(tiny_model_dir, *MEMORY_SWITCHES), one)
    train(_cfg(tiny_model_dir, *MEMORY_SWITCHES), stopped)  # one process resumes 2's checkpoint
    fp32 = _adapter(runs["one"])  # the same run in fp32 without the switches
    for run in (two, stopped):
        assert [r["step"] for r in _log(run)] == list(range(1, 9))
        assert max(abs(x["loss"] - y["loss"]) for x, y in zip(_log(one), _log(run))) <= 2e-3
        adapter = _adapter(run)
        assert {t.dtype for t in adapter.values()} == {torch.float32}  # from the masters
        # bf16 rounding, not a different run: as close to fp32 as the 1-process bf16 run
        assert _max_diff(adapter, _adapter(one)) <= 0.01
        assert _max_diff(adapter, fp32) <= 1.5 * _max_diff(_adapter(one), fp32)


def test_shards_split_every_step_into_disjoint_parts_deterministically():
    lengths = [(i * 37) % 101 + 5 for i in range(40)]
    for budget, accum in ((0, 4), (300, 1)):  # micro-batches of 3 / token-packed whole steps
        steps = batching.schedule(lengths, 3 if not budget else 12, accum, seed=1, epochs=2,
                                  max_steps=None, mode="length_grouped")
        if budget:
            steps = [batching.pack_step(st[0], lengths, budget) for st in steps]
        shards = [batching.shard(steps, lengths, r, 3, budget) for r in range(3)]
        assert shards == [batching.shard(steps, lengths, r, 3, budget) for r in range(3)]
        for k, step in enumerate(steps):
            parts = [sorted(i for mb in shards[r][k] for i in mb) for r in range(3)]
            assert sorted(sum(parts, [])) == sorted(i for mb in step for i in mb)
            if budget:  # dealt longest first: similar work, each part within the budget
                assert max(map(len, parts)) - min(map(len, parts)) <= 1
                assert all(len(mb) * max(lengths[i] for i in mb) <= budget
                           for r in range(3) for mb in shards[r][k])
            else:  # whole micro-batches, rank r takes r, r + 3, ...
                assert shards[1][k] == step[1::3]
    assert batching.shard(steps, lengths, 0, 1, 300) is steps


def test_checkpoint_keeps_every_ranks_rng_and_a_single_process_reads_it(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append({"torch": torch.get_rng_state()})
    torch.manual_seed(0)
    own = torch.get_rng_state()
    checkpoints.save(tmp_path, 3, model, opt, sched, 1, rank_rng=states)
    ck = checkpoints.latest(tmp_path)

    def draw(rank, world):
        torch.manual_seed(99)
        assert checkpoints.load(ck, model, opt, sched, rank, world) == 3
        return torch.rand(3)

    torch.set_rng_state(states[1]["torch"])
    rank1 = torch.rand(3)
    torch.set_rng_state(own)
    saver = torch.rand(3)
    assert torch.equal(draw(1, 2), rank1)  # rank 1 of 2 continues its own stream
    assert torch.equal(draw(0, 1), saver)  # a single process: the saving process's stream
    assert torch.equal(draw(1, 3), saver)  # another world size: the saving process's too
    assert not torch.equal(rank1, saver)


def test_launch_commands(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    argv = ["train", "c.yaml", "train.lr=1e-4"]
    cmd, env = distributed.launch_command("accelerate", 2, argv, cpu=True)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--multi_gpu" in cmd
    assert cmd[-5:] == ["-m", "emergent", *argv] and env["CUDA_VISIBLE_DEVICES"] == ""
    cmd, env = distributed.launch_command("torchrun", 4, argv)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    assert cmd[5] == "4" and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    with pytest.raises(UserError, match="known launchers"):
        distributed.launch_command("mpirun", 2, argv)
    with pytest.raises(UserError, match=">= 1"):
        distributed.launch_command("torchrun", 0, argv)


def test_cli_refuses_a_launch_inside_a_launched_process(tiny_model_dir, tmp_path, monkeypatch,
                                                        capsys):
    config = tmp_path / "train.yaml"
    dump_yaml(_cfg(tiny_model_dir), config)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", str(config), "--num-processes", "2"]) == 2
    assert "already one of 2 launched processes" in capsys.readouterr().err
    monkeypatch.delenv("RANK")
    assert main(["train", str(config), "--output", str(tmp_path / "o")]) == 2
    assert "RANK/LOCAL_RANK are missing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # bad data: one FILE:LINE line from the launching command, no process started
    monkeypatch.delenv("WORLD_SIZE")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["train", str(config), "--data", str(bad), "--output", str(tmp_path / "o"),
                 "--num-processes", "2", "--cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emergent: error: {bad}:1: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
