"""`emergent run --executor slurm|ray` (emergent.pipeline.executors) on the tiny model: training
and sampling units as jobs of 2 local workers (submitit's local cluster, a local Ray), judged
by the coordinator. Same summary.csv as the sequential run; a killed worker's unit completes on
rerun without redoing finished units; no judge prompt is sent twice."""
import json
import time
from pathlib import Path

import pytest

from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.pipeline import executors
from emergent.pipeline.executors import ExecutorOptions, WorkerRunDir
from emergent.pipeline.experiment import load_experiment
from emergent.pipeline.run import run_experiment

import test_run as sequential  # the tiny config and the stand-in judge's scores
from fake_judge_server import FakeJudgeServer, prompt_of

# 2 arms x 1 seed; insecure trains 7 steps (checkpoints at 2, 4, 6), secure 3 (checkpoint at 2);
# insecure's adapter at step 4 is sampled too (a unit listed only once training has run)
OVERRIDES = ["training.train.checkpoint_every=2", "checkpoint_eval.every=4"]
KILL_INSECURE = "save:checkpoint@2"  # dies saving its second checkpoint: only insecure has one


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """The judge server and the sequential reference run (summary, distinct judge prompts)."""
    tmp = tmp_path_factory.mktemp("executors")
    with FakeJudgeServer(sequential.responder, max_requests=2000) as server:
        cfg = config(tmp, tiny_model_dir, server, "ref")
        before = server.ok_calls
        ref = run_experiment(cfg, progress=False)
        yield {"tmp": tmp, "tiny": tiny_model_dir, "server": server,
               "summary": ref.summary_path.read_bytes(), "calls": server.ok_calls - before}


def config(tmp, tiny, server, name):
    """The shared tiny config (its own run directory and judge cache)."""
    path = sequential.make_config(tmp, tiny, server.base_url, name, seeds=(0,))
    return load_experiment(path, OVERRIDES)


def judged(server, run):
    """(calls made, distinct prompts among them) while `run()` runs."""
    n = len(server.bodies)
    run()
    bodies = list(server.bodies)[n:]
    return len(bodies), len({prompt_of(b) for b in bodies})


@pytest.fixture
def one_thread(monkeypatch):
    """Workers compute as the in-process reference does (tests: one torch thread), and Ray
    writes no token into the home folder."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


def test_submitit_workers_killed_unit_completes_on_rerun(world, one_thread, monkeypatch):
    server = world["server"]
    cfg = config(world["tmp"], world["tiny"], server, "submitit")
    opts = ExecutorOptions(workers=2, slurm_cluster="local")
    run_dir = Path(cfg.output_dir)

    monkeypatch.setenv("EMERGENT_FAULT", KILL_INSECURE)  # in the workers' environment
    calls_before = server.ok_calls
    with pytest.raises(UserError, match=r"train:insecure:seed0 .*not started, built on them: "
                                        r"sample:insecure:seed0.*rerun the same command"):
        run_experiment(cfg, progress=False, executor="slurm", executor_options=opts)
    assert server.ok_calls == calls_before  # nothing is judged before all sampling is done
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert stages["train:insecure:seed0"]["status"] == "running"  # its worker died
    done = {n: s for n, s in stages.items() if s["status"] == "done"}
    assert set(done) == {"train:secure:seed0", "sample:base", "sample:secure:seed0"}
    assert all(s["executor"] == "slurm" and s["job"] for s in done.values())
    assert "judge" not in stages and not (run_dir / "summary.csv").exists()
    arm = run_dir / "arms/insecure/seed0"
    assert [p.name for p in (arm / "checkpoints").glob("step-*")] == ["step-000002"]
    before_kill = [r for r in read_jsonl(arm / "train_log.jsonl") if r["step"] <= 2]
    assert [r["step"] for r in before_kill] == [1, 2]

    monkeypatch.delenv("EMERGENT_FAULT")
    calls, distinct = judged(server, lambda: run_experiment(
        cfg, progress=False, executor="slurm", executor_options=opts))
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in after.values())
    for name, entry in done.items():  # finished units were not redone
        assert after[name]["finished"] == entry["finished"], name
    # the killed unit resumed from its checkpoint: the log rows up to step 2 are the first try's
    assert [r for r in read_jsonl(arm / "train_log.jsonl") if r["step"] <= 2] == before_kill
    assert {"sample:insecure:seed0", "sample:insecure:seed0:step4"} <= set(after)
    assert not list((run_dir / "parts").glob("*.jsonl"))  # every part merged
    assert (run_dir / "summary.csv").read_bytes() == world["summary"]
    assert calls == distinct == world["calls"]  # each prompt judged once, as sequentially


def test_ray_workers_same_summary(world, one_thread):
    server = world["server"]
    cfg = config(world["tmp"], world["tiny"], server, "ray")
    t0 = time.time()
    calls, distinct = judged(server, lambda: run_experiment(
        cfg, progress=False, executor="ray", executor_options=ExecutorOptions(workers=2)))
    run_dir = Path(cfg.output_dir)
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert stages["train:insecure:seed0"]["executor"] == "ray"
    assert stages["sample:insecure:seed0:step4"]["status"] == "done"
    assert (run_dir / "summary.csv").read_bytes() == world["summary"]
    assert calls == distinct == world["calls"]
    print(f"ray run: {time.time() - t0:.0f} s")


def test_flags_of_another_executor_and_missing_library_are_one_line(tmp_path, monkeypatch,
                                                                     capsys):
    from emergent.cli import main
    assert main(["run", "missing.yaml", "--slurm-partition", "gpu"]) == 2
    assert "--slurm-partition needs --executor slurm" in capsys.readouterr().err
    assert main(["run", "missing.yaml", "--executor", "slurm", "--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert main(["run", "missing.yaml", "--executor", "ray", "--slurm-option", "account"]) == 2
    assert "--slurm-option needs --executor slurm" in capsys.readouterr().err
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"--executor ray needs ray: pip install "
                                        r"'emergent-misalignment\[cluster\]'"):
        executors.check("ray")


def test_a_worker_never_writes_the_manifest_nor_takes_the_lock(tmp_path):
    rd = WorkerRunDir(tmp_path, "sample:base")
    assert rd.answers_path == tmp_path / "parts" / "sample:base.jsonl"
    with pytest.raises(RuntimeError, match="manifest"):
        rd.save()
    with pytest.raises(RuntimeError, match="lock"):
        rd.lock()
