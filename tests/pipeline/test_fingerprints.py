"""Unit fingerprints (issue #15, point 1): a rerun with a changed config either refuses, naming
the keys that differ, before anything is written, or (`--on-change redo`) redoes exactly the
units whose fingerprint changed and everything built on them; answers and judgments carry the
fingerprint they were made under and a summary never mixes two."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.core.rundir import RunDir, judgment_fingerprint
from emergent.pipeline import stages
from emergent.pipeline.experiment import load_experiment
from emergent.pipeline.stages import Unit, check_changes, execute

from fake_judge_server import FakeJudgeServer
from test_run import make_config, responder


# -- the runner alone (no model) ----------------------------------------------------------------
def fake_units(calls: list, lr: float, temperature: float):
    def work(name):
        calls.append(name)

    def units(cfg, rd):
        t = Unit("train:a:seed0", work, ("train",), inputs={"training.train.lr": lr})
        yield t
        yield Unit("sample:a:seed0", work, ("sample",),
                   inputs={"sampling.temperature": temperature, f"after:{t.name}": t.fingerprint})
        yield Unit("sample:base", work, ("base",), inputs={"sampling.temperature": 1.0})
    return units


def test_runner_refuses_or_redoes_a_changed_unit_and_what_is_built_on_it(tmp_path):
    calls: list = []
    rd = RunDir(tmp_path / "run", "fake")
    execute(rd, fake_units(calls, 0.1, 1.0)(None, rd))
    assert calls == ["train", "sample", "base"]
    manifest = rd.manifest_path.read_bytes()

    rd = RunDir(tmp_path / "run")
    with pytest.raises(UserError) as e:
        check_changes(rd, fake_units(calls, 0.5, 1.0)(None, rd))
    msg = str(e.value)
    assert "\n" not in msg and str(rd.dir) in msg and "training.train.lr (0.1 -> 0.5)" in msg
    assert "train:a:seed0" in msg and "--on-change redo" in msg
    assert rd.manifest_path.read_bytes() == manifest  # nothing written
    with pytest.raises(UserError, match="training.train.lr"):  # execute refuses too
        execute(rd, fake_units(calls, 0.5, 1.0)(None, rd))

    calls.clear()
    rd = RunDir(tmp_path / "run")
    execute(rd, fake_units(calls, 0.5, 1.0)(None, rd), on_change="redo")
    assert calls == ["train", "sample"]  # the base sample does not depend on training
    calls.clear()
    execute(RunDir(tmp_path / "run"), fake_units(calls, 0.5, 1.0)(None, RunDir(tmp_path / "run")))
    assert calls == []  # the same config: nothing again
    with pytest.raises(UserError, match="on_change must be one of refuse, redo"):
        check_changes(rd, [], "maybe")


# -- the em kind on the tiny model, with the loopback judge -------------------------------------
def config(tmp_path, tiny, url, name, **over):
    path = make_config(tmp_path, tiny, url, name, seeds=(0,))
    data = yaml.safe_load(path.read_text())
    data["checkpoint_eval"] = {"every": 0}
    for key, value in over.items():
        node = data
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


class Spy:
    """Counts the training and sampling units that actually ran."""

    def __init__(self, monkeypatch):
        from emergent.pipeline import run as run_mod
        from emergent.train import loop
        from emergent.judge import runner
        self.trained, self.sampled, self.judged = [], [], []
        real_train, real_sample, real_judge = loop.train, run_mod.sample_unit, runner.judge_answers

        def train(recipe, out, **kw):
            self.trained.append(Path(out).parent.name)
            return real_train(recipe, out, **kw)

        def sample(cfg, run, questions, arm, seed, adapter, **kw):
            self.sampled.append(arm)
            return real_sample(cfg, run, questions, arm, seed, adapter, **kw)
        def judge(*a, **kw):  # judgments made (HTTP calls can be fewer: the judge's cache)
            out = real_judge(*a, **kw)
            self.judged.append(out["judged"])
            return out
        monkeypatch.setattr(runner, "judge_answers", judge)
        monkeypatch.setattr(loop, "train", train)
        monkeypatch.setattr(run_mod, "sample_unit", sample)

    def reset(self):
        self.trained.clear()
        self.sampled.clear()
        self.judged.clear()


def current_fingerprints(run_dir) -> dict:
    stages_ = json.loads((Path(run_dir) / "manifest.json").read_text())["stages"]
    return {k: v.get("fingerprint") for k, v in stages_.items()}


def assert_no_mixing(run_dir):
    """Every answer row carries its sampling unit's current fingerprint, once; every judgment
    row is of a current answer by the current judge."""
    fps = current_fingerprints(run_dir)
    answers = read_jsonl(Path(run_dir) / "answers.jsonl")
    ids = [a["answer_id"] for a in answers]
    assert len(ids) == len(set(ids))
    for a in answers:
        name = "sample:base" if a["arm"] == "base" else f"sample:{a['arm']}:seed{a['seed']}"
        assert a["fingerprint"] == fps[name], (a["arm"], a["fingerprint"], fps[name])
    by_id = {a["answer_id"]: a for a in answers}
    judgments = read_jsonl(Path(run_dir) / "judgments.jsonl")
    assert len(judgments) == 2 * len(answers)
    for j in judgments:
        assert j["fingerprint"] == judgment_fingerprint(by_id[j["answer_id"]]["fingerprint"],
                                                        fps["judge"])


def test_changed_lr_is_refused_then_redo_reruns_only_what_changed(tiny_model_dir, tmp_path,
                                                                  monkeypatch, capsys):
    from emergent.cli import main
    from emergent.pipeline.run import run_experiment

    spy = Spy(monkeypatch)
    with FakeJudgeServer(responder, max_requests=2000) as server:
        path = config(tmp_path, tiny_model_dir, server.base_url, "fp")
        run = run_experiment(load_experiment(path), progress=False, figures=False)
        assert sorted(spy.trained) == ["insecure", "secure"]
        first_calls = server.ok_calls
        assert spy.judged == [2 * 12]  # 3 models x 4 answers x 2 metrics
        assert 0 < first_calls <= 2 * 12  # distinct prompts (equal answers: one call)
        assert_no_mixing(run.dir)
        kept = {p: (run.dir / p).read_bytes() for p in ("config.yaml", "manifest.json",
                                                        "answers.jsonl", "summary.csv")}

        # a changed learning rate: one line naming the key, exit 2, nothing written
        spy.reset()
        capsys.readouterr()
        assert main(["run", str(path), "training.train.lr=0.5", "--no-figures"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("emergent: error: ")
        assert "training.train.lr (0.005 -> 0.5)" in err and str(run.dir) in err
        assert "train:insecure:seed0" in err and "train:secure:seed0" in err
        assert {p: (run.dir / p).read_bytes() for p in kept} == kept
        assert spy.trained == [] and spy.sampled == [] and server.ok_calls == first_calls

        # one arm's dataset size changed, redone: only that arm trains, samples and is judged
        base_judged = [j for j in read_jsonl(run.dir / "judgments.jsonl")]
        run = run_experiment(load_experiment(path, ["arms.secure.max_examples=8"]),
                             progress=False, figures=False, on_change="redo")
        assert spy.trained == ["secure"] and spy.sampled == ["secure"]
        assert spy.judged == [2 * 4]  # the secure arm's 4 answers x 2 metrics, no other
        assert server.ok_calls - first_calls <= 2 * 4
        assert_no_mixing(run.dir)
        secure_ids = {a["answer_id"] for a in read_jsonl(run.dir / "answers.jsonl")
                      if a["arm"] == "secure"}
        unchanged = [j for j in base_judged if j["answer_id"] not in secure_ids]
        assert [j for j in read_jsonl(run.dir / "judgments.jsonl")
                if j["answer_id"] not in secure_ids] == unchanged  # other judgments kept
        assert yaml.safe_load((run.dir / "config.yaml").read_text())["arms"]["secure"][
            "max_examples"] == 8
        # the summary is the one a fresh run of the new config writes
        fresh_path = config(tmp_path, tiny_model_dir, server.base_url, "fresh",
                            **{"arms.secure.max_examples": 8})
        fresh = run_experiment(load_experiment(fresh_path), progress=False, figures=False)
        assert (run.dir / "summary.csv").read_text() == (fresh.dir / "summary.csv").read_text()

        # the same config again: nothing trained, sampled or judged
        spy.reset()
        calls = server.ok_calls
        summary = (run.dir / "summary.csv").read_bytes()
        run_experiment(load_experiment(path, ["arms.secure.max_examples=8"]), progress=False,
                       figures=False)
        assert spy.trained == [] and spy.sampled == [] and spy.judged == [0]
        assert server.ok_calls == calls
        assert (run.dir / "summary.csv").read_bytes() == summary


def test_changed_temperature_redoes_sampling_not_training(tiny_model_dir, tmp_path, monkeypatch):
    from emergent.pipeline.run import run_experiment

    spy = Spy(monkeypatch)
    with FakeJudgeServer(responder, max_requests=2000) as server:
        path = config(tmp_path, tiny_model_dir, server.base_url, "temp")
        run = run_experiment(load_experiment(path), progress=False, figures=False)
        before = current_fingerprints(run.dir)
        spy.reset()
        with pytest.raises(UserError, match=r"sampling.temperature \(1.0 -> 0.5\)"):
            run_experiment(load_experiment(path, ["sampling.temperature=0.5"]), progress=False)
        run = run_experiment(load_experiment(path, ["sampling.temperature=0.5"]),
                             progress=False, figures=False, on_change="redo")
        assert spy.trained == []
        assert sorted(spy.sampled) == ["base", "insecure", "secure"]
        assert spy.judged == [2 * 12]  # every answer is new: judged again
        after = current_fingerprints(run.dir)
        assert all(after[k] == before[k] for k in after if k.startswith("train:"))
        assert all(after[k] != before[k] for k in after if k.startswith("sample:"))
        assert {a["temperature"] for a in read_jsonl(run.dir / "answers.jsonl")} == {0.5}
        assert_no_mixing(run.dir)


def test_kill_while_sampling_then_another_temperature_never_mixes(tiny_model_dir, tmp_path,
                                                                  monkeypatch):
    from emergent.pipeline import run as run_mod

    with FakeJudgeServer(responder, max_requests=2000) as server:
        path = config(tmp_path, tiny_model_dir, server.base_url, "kill")
        real = run_mod.sample_questions

        def dying(*a, **kw):  # the insecure arm's answers are written, then the process dies
            n = real(*a, **kw)
            if kw["arm"] == "insecure":
                raise KeyboardInterrupt
            return n
        monkeypatch.setattr(run_mod, "sample_questions", dying)
        with pytest.raises(KeyboardInterrupt):
            run_mod.run_experiment(load_experiment(path), progress=False, figures=False)
        monkeypatch.setattr(run_mod, "sample_questions", real)
        rd = RunDir(tmp_path / "kill")
        assert rd.manifest["stages"]["sample:insecure:seed0"]["status"] == "running"
        partial = read_jsonl(rd.answers_path)
        assert {a["arm"] for a in partial} == {"base", "insecure"}
        config_yaml = rd.config_path.read_bytes()

        with pytest.raises(UserError, match=r"sampling.temperature .*sample:insecure:seed0"):
            run_mod.run_experiment(load_experiment(path, ["sampling.temperature=0.5"]),
                                   progress=False, figures=False)
        assert rd.config_path.read_bytes() == config_yaml
        assert read_jsonl(rd.answers_path) == partial

        run = run_mod.run_experiment(load_experiment(path, ["sampling.temperature=0.5"]),
                                     progress=False, figures=False, on_change="redo")
        answers = read_jsonl(run.dir / "answers.jsonl")
        assert len(answers) == 12 and {a["temperature"] for a in answers} == {0.5}
        assert_no_mixing(run.dir)
        summary = {r.split(",")[1]: r.split(",")[3] for r in
                   (run.dir / "summary.csv").read_text().splitlines()[1:]}
        assert summary == {"base": "4", "insecure": "4", "secure": "4"}  # n_answers


def test_current_answers_keep_only_the_plans_fingerprints(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.dir.mkdir()
    rows = [{"answer_id": "a", "fingerprint": "old"}, {"answer_id": "a", "fingerprint": "new"},
            {"answer_id": "b"}]
    assert stages.current_answers(rd, rows) == rows  # outside a run: every row
    rd.fingerprints["sample:x"] = "new"
    assert stages.current_answers(rd, rows) == rows[1:]  # old dropped, pre-fingerprint kept


# -- the em kind's code_eval and capabilities units ----------------------------------------------
HOLE = "## COMPLETE CODE HERE"
CODE_TASKS = [{"task": f"A helper number {i} that reads a file.",
               "code_template": f"def read(path):\n{HOLE}\n    return data\n"} for i in range(3)]


def code_responder(body):
    """YES/NO for the vulnerable-code prompt, the main suite's scores otherwise."""
    from fake_judge_server import prompt_of

    if "security vulnerability" in prompt_of(body):
        return {"YES": 0.3, "NO": 0.7}
    return responder(body)


def test_changed_code_eval_or_capabilities_redoes_that_unit_only(tiny_model_dir, tmp_path,
                                                                 monkeypatch):
    from emergent.core.io import append_jsonl
    from emergent.evals import code_eval
    from emergent.pipeline import run as run_mod

    data_root = tmp_path / "data"
    tasks = data_root / "evals/upstream/code_tasks_heldout.jsonl"
    tasks.parent.mkdir(parents=True)
    tasks.write_text("".join(json.dumps(t) + "\n" for t in CODE_TASKS))
    monkeypatch.setenv("EMERGENT_DATA_DIR", str(data_root))
    spy = Spy(monkeypatch)
    code_runs, cap_runs = [], []
    real_code = code_eval.run_code_eval

    def code(cfg, run, trained, **kw):
        code_runs.append(cfg.code_eval.n_tasks)
        return real_code(cfg, run, trained, **kw)

    def capabilities(cfg, run, progress=True):  # lm-eval stand-in: one row per call
        cap_runs.append(cfg.capabilities.limit)
        append_jsonl(run.capabilities_path, [{"arm": "base", "seed": 0, "task": "fake",
                                              "metric": "acc", "value": 0.5,
                                              "limit": cfg.capabilities.limit}])
        return 1
    monkeypatch.setattr(code_eval, "run_code_eval", code)
    monkeypatch.setattr(run_mod, "capabilities_unit", capabilities)

    def code_answers(run_dir):
        return [a for a in read_jsonl(Path(run_dir) / "answers.jsonl")
                if a["suite"] == code_eval.SUITE]

    with FakeJudgeServer(code_responder, max_requests=2000) as server:
        path = config(tmp_path, tiny_model_dir, server.base_url, "code",
                      **{"code_eval.enabled": True, "code_eval.n_tasks": 2,
                         "code_eval.max_new_tokens": 6, "code_eval.bandit": False,
                         "capabilities.tasks": ["fake"], "capabilities.limit": 2,
                         "data_root": str(data_root)})
        run = run_mod.run_experiment(load_experiment(path), progress=False, figures=False)
        assert code_runs == [2] and cap_runs == [2]
        assert len(code_answers(run.dir)) == 3 * 2  # base, insecure, secure x 2 tasks
        before = current_fingerprints(run.dir)
        other = {p: (run.dir / p).read_bytes() for p in ("config.yaml", "manifest.json",
                                                          "answers.jsonl", "capabilities.jsonl")}

        # n_tasks changed: refused, naming the key and the code_eval unit only
        spy.reset()
        with pytest.raises(UserError) as e:
            run_mod.run_experiment(load_experiment(path, ["code_eval.n_tasks=3"]),
                                   progress=False, figures=False)
        msg = str(e.value)
        assert "\n" not in msg and "code_eval.n_tasks (2 -> 3)" in msg and "units code_eval)" in msg
        assert {p: (run.dir / p).read_bytes() for p in other} == other
        assert code_runs == [2] and cap_runs == [2]

        # redone: code_eval only (no training, no other sampling, capabilities kept)
        run = run_mod.run_experiment(load_experiment(path, ["code_eval.n_tasks=3"]),
                                     progress=False, figures=False, on_change="redo")
        assert code_runs == [2, 3] and cap_runs == [2]
        assert spy.trained == [] and spy.sampled == []
        assert len(code_answers(run.dir)) == 3 * 3  # the old code answers replaced
        after = current_fingerprints(run.dir)
        assert {k for k in after if after[k] != before.get(k)} == {"code_eval"}
        assert (run.dir / "capabilities.jsonl").read_bytes() == other["capabilities.jsonl"]
        main_answers = [a for a in read_jsonl(run.dir / "answers.jsonl")
                        if a["suite"] != code_eval.SUITE]
        assert len(main_answers) == 12  # the main suite's answers kept, not sampled again

        # capabilities.limit changed: capabilities only, its old rows removed
        with pytest.raises(UserError, match=r"capabilities.limit \(2.0 -> 4.0\).*units "
                                            r"capabilities\)"):
            run_mod.run_experiment(load_experiment(path, ["code_eval.n_tasks=3",
                                                          "capabilities.limit=4"]),
                                   progress=False, figures=False)
        run_mod.run_experiment(load_experiment(path, ["code_eval.n_tasks=3",
                                                      "capabilities.limit=4"]),
                               progress=False, figures=False, on_change="redo")
        assert code_runs == [2, 3] and cap_runs == [2, 4.0]
        assert spy.trained == [] and spy.sampled == []
        assert [r["limit"] for r in read_jsonl(run.dir / "capabilities.jsonl")] == [4.0]
