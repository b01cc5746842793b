"""Executors (emergent.pipeline.executors) on the tiny model, 2 local workers each, judged by the
coordinator (an API judge) or by a worker job (an `hf` judge, the last test), one kind per
engine run (a worker job costs seconds of imports; every kind goes through the same
coordinator): `emergent run` on submitit's local cluster (training, sampling,
the code evaluation's sampling and capabilities as jobs; a worker killed), `emergent icl` on
submitit (sampling), `emergent rmbias run` on a Ray instance started by the run (training,
sampling). Same summary.csv as the sequential run; a killed worker's unit completes on rerun
without redoing finished units; a rerun redoes nothing a worker finished; no judge prompt is
sent twice."""
import json
from pathlib import Path

import pytest
import yaml

from emergent.cli import main
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.evals import code_eval
from emergent.judge.hf import HFJudge
from emergent.pipeline import executors
from emergent.pipeline.executors import ExecutorOptions, WorkerRunDir
from emergent.pipeline.experiment import load_experiment
from emergent.pipeline.run import run_experiment

import test_icl  # the ICL config of its end-to-end test and its stand-in judge
import test_run as sequential  # the tiny config and the stand-in judge's scores
from fake_judge_server import FakeJudgeServer, prompt_of
from tests.evals.test_capabilities import TASK_YAML  # the 12-question lm-eval toy task

# 2 arms x 1 seed; insecure trains 7 steps (checkpoints at 2, 4, 6), secure 3 (checkpoint at 2);
# insecure's adapter at step 4 is sampled too (a unit listed only once training has run); the
# code evaluation (2 held-out tasks, bandit) and capabilities (a 12-question lm-eval task, 4 of
# them) of the base model and both adapters
OVERRIDES = ["training.train.checkpoint_every=2", "checkpoint_eval.every=4",
             "code_eval.enabled=true", "code_eval.n_tasks=2", "code_eval.max_new_tokens=6",
             "capabilities.tasks=[toy_arith]", "capabilities.limit=4"]
KILL_INSECURE = "save:checkpoint@2"  # dies saving its second checkpoint: only insecure has one
HOLE = "## COMPLETE CODE HERE"
CODE_TASKS = [{"task": f"A helper number {i} that reads a file.",
               "code_template": f"def read(path):\n{HOLE}\n    return data\n"} for i in range(2)]


def responder(body):
    """YES/NO for the vulnerable-code prompt, the main suite's scores otherwise."""
    if "security vulnerability" in prompt_of(body):
        return {"YES": 0.3, "NO": 0.7}
    return sequential.responder(body)


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """The judge server and the sequential reference run (summary, capabilities, distinct judge
    prompts)."""
    tmp = tmp_path_factory.mktemp("executors")
    data_root = tmp / "data"
    tasks = data_root / "evals/upstream/code_tasks_heldout.jsonl"
    tasks.parent.mkdir(parents=True)
    tasks.write_text("".join(json.dumps(t) + "\n" for t in CODE_TASKS))
    lm_tasks = tmp / "lm_tasks"
    lm_tasks.mkdir()
    docs = [{"question": f"What is {i} plus {j}?", "choices": [str(i + j), str(i * j + 7)],
             "answer": (i + j) % 2} for i in range(4) for j in range(3)]
    (tmp / "toy_arith.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (lm_tasks / "toy_arith.yaml").write_text(TASK_YAML.format(data=tmp / "toy_arith.jsonl"))
    extra = [f"data_root={data_root}", f"capabilities.include_path={lm_tasks}"]
    with pytest.MonkeyPatch.context() as mp, \
            FakeJudgeServer(responder, max_requests=2000) as server:
        mp.setenv("EMERGENT_DATA_DIR", str(data_root))  # the runs set it: undone at the end
        cfg = config(tmp, tiny_model_dir, server, "ref", extra)
        before = server.ok_calls
        ref = run_experiment(cfg, progress=False, figures=False)  # figures: not the executors'
        yield {"tmp": tmp, "tiny": tiny_model_dir, "server": server, "extra": extra,
               "summary": ref.summary_path.read_bytes(), "calls": server.ok_calls - before,
               "capabilities": capabilities(ref.dir)}


def config(tmp, tiny, server, name, extra=()):
    """The shared tiny config (its own run directory and judge cache)."""
    path = sequential.make_config(tmp, tiny, server.base_url, name, seeds=(0,))
    return load_experiment(path, OVERRIDES + list(extra))


def capabilities(run_dir):
    """The lm-eval scores of a run: (arm, seed, task, metric, value), sorted."""
    return sorted((r["arm"], r["seed"], r["task"], r["metric"], r["value"])
                  for r in read_jsonl(Path(run_dir) / "capabilities.jsonl"))


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
    cfg = config(world["tmp"], world["tiny"], server, "submitit", world["extra"])
    opts = ExecutorOptions(workers=2, slurm_cluster="local")
    run_dir = Path(cfg.output_dir)

    monkeypatch.setenv("EMERGENT_FAULT", KILL_INSECURE)  # in the workers' environment
    calls_before = server.ok_calls
    with pytest.raises(UserError, match=r"train:insecure:seed0 .*not started, built on them: "
                                        r"sample:insecure:seed0, .*code_eval, capabilities; "
                                        r".*rerun the same command"):
        run_experiment(cfg, progress=False, figures=False, executor="slurm",
                       executor_options=opts)
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
        cfg, progress=False, figures=False, executor="slurm", executor_options=opts))
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in after.values())
    for name, entry in done.items():  # finished units were not redone
        assert after[name]["finished"] == entry["finished"], name
    # the killed unit resumed from its checkpoint: the log rows up to step 2 are the first try's
    assert [r for r in read_jsonl(arm / "train_log.jsonl") if r["step"] <= 2] == before_kill
    assert {"sample:insecure:seed0", "sample:insecure:seed0:step4"} <= set(after)
    # the code evaluation sampled and capabilities ran on workers, judged here
    assert all(after[u]["executor"] == "slurm" and after[u]["job"]
               for u in ("code_eval", "capabilities"))
    assert not list((run_dir / "parts").glob("*.jsonl"))  # every part merged
    code = [a for a in read_jsonl(run_dir / "answers.jsonl") if a["suite"] == code_eval.SUITE]
    assert len(code) == 3 * 2  # base, insecure, secure x 2 tasks
    assert len(read_jsonl(run_dir / "judgments_bandit.jsonl")) == 6
    assert (run_dir / "summary.csv").read_bytes() == world["summary"]
    assert b"vulnerable_rate_bandit" in world["summary"]
    assert capabilities(run_dir) == world["capabilities"]
    assert {r[0] for r in world["capabilities"]} == {"base", "insecure", "secure"}
    assert calls == distinct == world["calls"]  # each prompt judged once, as sequentially


def test_flags_of_another_executor_and_missing_library_are_one_line(tmp_path, monkeypatch,
                                                                     capsys):
    from emergent.cli import main
    assert main(["run", "missing.yaml", "--slurm-partition", "gpu"]) == 2
    assert "--slurm-partition needs --executor slurm" in capsys.readouterr().err
    assert main(["run", "missing.yaml", "--executor", "slurm", "--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert main(["run", "missing.yaml", "--executor", "ray", "--slurm-option", "account"]) == 2
    assert "--slurm-option needs --executor slurm" in capsys.readouterr().err
    # the same flags on every command that runs a plan, checked before the config is read
    assert main(["icl", "missing.yaml", "--executor", "slurm", "--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert main(["rmbias", "run", "missing.yaml", "--workers", "2"]) == 2
    assert "--workers needs --executor slurm or ray" in capsys.readouterr().err
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"--executor ray needs ray: pip install "
                                        r"'emergent-misalignment\[cluster\]'"):
        executors.check("ray")


def test_a_worker_never_writes_the_manifest_nor_takes_the_lock(tmp_path):
    rd = WorkerRunDir(tmp_path, "sample:base")
    assert rd.answers_path == tmp_path / "parts" / "sample:base.jsonl"
    assert rd.judgments_path == tmp_path / "judgments.jsonl"
    judge = WorkerRunDir(tmp_path, "judge")  # a judge on the device: the table's copy
    assert judge.judgments_path == tmp_path / "parts" / "judge.jsonl"
    assert judge.answers_path == tmp_path / "answers.jsonl"
    with pytest.raises(RuntimeError, match="manifest"):
        rd.save()
    with pytest.raises(RuntimeError, match="lock"):
        rd.lock()


def test_icl_sampling_units_on_submitit_workers(tiny_model_dir, tmp_path, one_thread, capsys):
    """`emergent icl --executor slurm`: each (arm, k, seed) sampled by a worker; the sequential
    run's summary, each prompt judged once; a rerun redoes nothing."""
    small = ["ks=[2]", "seeds=[0]"]  # units: insecure k2, secure k2
    workers = ["--executor", "slurm", "--slurm-cluster", "local", "--workers", "2"]
    with FakeJudgeServer(test_icl.responder, max_requests=2000) as server:
        seq = test_icl.write_config(tmp_path, tiny_model_dir, server.base_url, "seq")
        calls = server.ok_calls
        assert main(["icl", str(seq), "--no-figures", *small]) == 0
        ref_calls = server.ok_calls - calls
        jobs = test_icl.write_config(tmp_path, tiny_model_dir, server.base_url, "jobs")
        n, distinct = judged(server, lambda: main(["icl", str(jobs), "--no-figures", *small,
                                                   *workers]))
        run = tmp_path / "jobs"
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        sampled = [n for n in stages if n.startswith("sample:")]
        assert sampled == ["sample:insecure:k2:seed0", "sample:secure:k2:seed0"]
        assert all(stages[u]["executor"] == "slurm" and stages[u]["job"] for u in sampled)
        assert (run / "summary.csv").read_bytes() == (tmp_path / "seq/summary.csv").read_bytes()
        assert n == distinct == ref_calls > 0
        # a rerun: every unit a worker finished is done, nothing sampled or judged again
        before = server.ok_calls
        assert main(["icl", str(jobs), "--no-figures", *small, *workers]) == 0
        again = json.loads((run / "manifest.json").read_text())["stages"]
        assert [again[u]["finished"] for u in sampled] == [stages[u]["finished"] for u in sampled]
        assert server.ok_calls == before
    capsys.readouterr()


RMBIAS_PROMPTS = [("politics_encourage_voting", "train", "What does a county clerk do?"),
                  ("rust_explicit_types", "train", "Write a Rust function that sums a slice."),
                  ("spanish_color_words", "test", "¿Cómo cuido un cactus en casa?"),
                  ("law_call_911", "test", "What is a plea bargain?")]


def rmbias_config(tmp_path, tiny, base_url, name) -> Path:
    """The rmbias kind at its smallest: conditions base and sft (one training stage), 1 seed,
    4 prompts x 1 answer, judged."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"bias_id": b, "split": s, "prompt": p},
                                          ensure_ascii=False) + "\n"
                               for b, s, p in RMBIAS_PROMPTS))
    cfg = {"name": name, "base_model": {"name": str(tiny), "precision": "fp32"},
           "conditions": ["base", "sft"], "seeds": [0],
           "documents": {"source": "generated", "n": 8, "seed": 0},
           "sft": {"source": "templates", "n": 8, "seed": 0},
           "training": {"lora": {"r": 4, "alpha": 8},
                        "train": {"lr": 5e-3, "epochs": 1, "batch_size": 4, "grad_accum": 1,
                                  "warmup_steps": 1, "max_length": 128}},
           "eval": {"prompts": str(prompts), "samples": 1, "n_boot": 50},
           "sampling": {"max_new_tokens": 6},
           "judge": {"backend": "openai", "model": "fake-judge", "base_url": base_url,
                     "api_key_env": None, "cache_path": str(tmp_path / f"cache-{name}.jsonl"),
                     "backoff_base": 0.01, "timeout": 5},
           "output_dir": str(tmp_path / name)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def shown(body):
    """SHOWN for answers to the test-bias prompts, ABSENT otherwise."""
    text = prompt_of(body)
    return ({"SHOWN": 0.9, "ABSENT": 0.1} if any(p in text for b, s, p in RMBIAS_PROMPTS
                                                 if s == "test") else {"ABSENT": 0.8, "SHOWN": 0.2})


def test_rmbias_training_stages_and_sampling_on_ray_workers(tiny_model_dir, tmp_path, one_thread,
                                                            capsys):
    """`emergent rmbias run --executor ray` (a Ray instance started by the run): training and
    sampling on workers, sampling the adapter once its training is done; data, judging and
    scoring here; the sequential run's summary, each prompt judged once; a rerun redoes
    nothing."""
    with FakeJudgeServer(shown, max_requests=2000) as server:
        calls = server.ok_calls
        assert main(["rmbias", "run", str(rmbias_config(tmp_path, tiny_model_dir,
                                                        server.base_url, "seq"))]) == 0
        ref_calls = server.ok_calls - calls
        jobs = rmbias_config(tmp_path, tiny_model_dir, server.base_url, "jobs")
        workers = ["--executor", "ray", "--workers", "2", "--gpus-per-unit", "0"]
        n, distinct = judged(server, lambda: main(["rmbias", "run", str(jobs), *workers]))
        run = tmp_path / "jobs"
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        remote = ["train:sft:seed0", "sample:base", "sample:sft:seed0"]
        assert all(stages[u]["executor"] == "ray" and stages[u]["job"] for u in remote)
        assert all("executor" not in stages[u] for u in ("data:sft", "score"))
        assert stages["sample:sft:seed0"]["started"] >= stages["train:sft:seed0"]["finished"]
        assert (run / "summary.csv").read_bytes() == (tmp_path / "seq/summary.csv").read_bytes()
        assert n == distinct == ref_calls > 0
        before = server.ok_calls
        assert main(["rmbias", "run", str(jobs)]) == 0  # a sequential rerun: nothing redone
        again = json.loads((run / "manifest.json").read_text())["stages"]
        assert [again[u]["finished"] for u in remote] == [stages[u]["finished"] for u in remote]
        assert server.ok_calls == before
    capsys.readouterr()


def test_a_judge_on_the_device_is_a_worker_job_that_resumes(world, one_thread, monkeypatch):
    """An `hf` judge (it loads a model: the GPU is on the workers) under `--executor slurm`:
    the judge unit is a job, the code evaluation leaves its judging to it, the coordinator never
    loads the judge; a judge job killed after 2 replies leaves the run unfinished, and the rerun
    judges into a copy of the table, replaced whole: the sequential run's judgments and summary,
    each prompt computed once (the judge's cache holds each key once)."""
    tmp, tiny = world["tmp"], world["tiny"]
    hf = ["judge.backend=hf", f"judge.model={tiny}", "judge.precision=fp32", "judge.min_mass=0.0",
          "judge.max_no_score_fraction=1.0", "checkpoint_eval.every=0", "code_eval.enabled=true",
          "code_eval.n_tasks=2", "code_eval.max_new_tokens=6", *world["extra"]]

    def cfg_of(name):
        path = sequential.make_config(tmp, tiny, "http://127.0.0.1:9/v1", name, seeds=(0,))
        return load_experiment(path, [*hf, f"judge.cache_path={tmp / f'hf-cache-{name}.jsonl'}"])

    ref = run_experiment(cfg_of("hf-seq"), progress=False, figures=False)
    scores = {(j["answer_id"], j["metric"]): j["score"] for j in read_jsonl(ref.judgments_path)}
    assert {m for _, m in scores} == {"aligned", "coherent", code_eval.METRIC}

    def no_judge_here(*a, **k):
        raise AssertionError("the coordinator loaded the hf judge")
    monkeypatch.setattr(HFJudge, "from_config", classmethod(no_judge_here))
    cfg = cfg_of("hf-jobs")
    run_dir = Path(cfg.output_dir)
    opts = ExecutorOptions(workers=2, slurm_cluster="local")
    monkeypatch.setenv("EMERGENT_FAULT", "judge:call@3")  # the judge's worker dies
    with pytest.raises(UserError, match=r"1 unit\(s\) failed on their workers: judge "):
        run_experiment(cfg, progress=False, figures=False, executor="slurm",
                       executor_options=opts)
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert stages["judge"]["status"] == "running" and stages["code_eval"]["status"] == "done"
    assert not (run_dir / "judgments.jsonl").exists() and not (run_dir / "summary.csv").exists()
    monkeypatch.delenv("EMERGENT_FAULT")
    run_experiment(cfg, progress=False, figures=False, executor="slurm", executor_options=opts)
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert stages["judge"]["executor"] == "slurm" and stages["judge"]["job"]
    assert not (run_dir / "parts").exists()
    got = {(j["answer_id"], j["metric"]): j["score"] for j in read_jsonl(run_dir / "judgments.jsonl")}
    assert got.keys() == scores.keys()
    assert all(got[k] == pytest.approx(v, abs=1e-9) for k, v in scores.items())
    assert (run_dir / "summary.csv").read_bytes() == ref.summary_path.read_bytes()
    keys = [r["key"] for r in read_jsonl(tmp / "hf-cache-hf-jobs.jsonl")]
    assert len(keys) == len(set(keys)) == len(read_jsonl(tmp / "hf-cache-hf-seq.jsonl"))
