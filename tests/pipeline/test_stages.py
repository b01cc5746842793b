"""The one stage runner (emergent.pipeline.stages): order, resume, `always` units, dry-run totals,
and the experiment kinds that go through it."""
from __future__ import annotations

import json

import pytest

from emergent.core.rundir import RunDir
from emergent.pipeline import stages
from emergent.pipeline.stages import Unit, execute, make_plan


def fake_kind(calls: list, fail_at: str | None = None):
    """A scripted kind: data -> train x2 -> sample x2 (+ one found only while running) ->
    judge -> summary; each unit appends its name to `calls`."""
    def work(name):
        if name == fail_at:
            raise KeyboardInterrupt(name)
        calls.append(name)
        return name.upper()

    def units(cfg, rd):
        yield Unit("data", work, ("data",))
        for seed in cfg["seeds"]:
            yield Unit(f"train:a:seed{seed}", work, (f"train:a:seed{seed}",), detail="5 steps",
                       steps=5)
        yield Unit("check", work, ("check",), recorded=False, listed=False)
        for seed in cfg["seeds"]:
            yield Unit(f"sample:a:seed{seed}", work, (f"sample:a:seed{seed}",), answers=4)
        yield Unit("sample:a:seed0:step3", work, ("sample:a:seed0:step3",), listed=False)
        yield Unit("judge", work, ("judge",), judge_calls=16, always=True)
        yield Unit("summary", work, ("summary",), always=True)
    return units


CFG = {"seeds": [0, 1]}
ORDER = ["data", "train:a:seed0", "train:a:seed1", "check", "sample:a:seed0", "sample:a:seed1",
         "sample:a:seed0:step3", "judge", "summary"]


def test_runs_units_in_order_and_records_them(tmp_path):
    calls: list = []
    rd = RunDir(tmp_path / "run", "fake")
    results = execute(rd, fake_kind(calls)(CFG, rd))
    assert calls == ORDER
    assert results["summary"] == "SUMMARY" and results["check"] == "CHECK"
    manifest = json.loads(rd.manifest_path.read_text())
    assert list(manifest["stages"]) == [n for n in ORDER if n != "check"]  # a check leaves none
    assert all(s["status"] == "done" and s["seconds"] >= 0 for s in manifest["stages"].values())


def test_rerun_skips_done_units_and_reruns_always_and_checks(tmp_path):
    first: list = []
    rd = RunDir(tmp_path / "run", "fake")
    execute(rd, fake_kind(first)(CFG, rd))
    again: list = []
    rd = RunDir(tmp_path / "run")  # a new process: the manifest is read back
    execute(rd, fake_kind(again)(CFG, rd))
    assert again == ["check", "judge", "summary"]


def test_a_killed_unit_recorded_as_running_runs_again(tmp_path):
    calls: list = []
    rd = RunDir(tmp_path / "run", "fake")
    with pytest.raises(KeyboardInterrupt):
        execute(rd, fake_kind(calls, fail_at="sample:a:seed1")(CFG, rd))
    stages_ = json.loads(rd.manifest_path.read_text())["stages"]
    assert stages_["sample:a:seed1"]["status"] == "running"
    assert stages_["sample:a:seed0"]["status"] == "done"
    resumed: list = []
    rd = RunDir(tmp_path / "run")
    execute(rd, fake_kind(resumed)(CFG, rd))
    assert resumed == ["check", "sample:a:seed1", "sample:a:seed0:step3", "judge", "summary"]


def test_dry_run_plan_lists_units_and_totals_without_running(tmp_path):
    calls: list = []
    rd = RunDir(tmp_path / "run", "fake")
    plan = make_plan(rd, fake_kind(calls)(CFG, rd))
    assert calls == [] and not rd.manifest_path.exists()
    assert plan.labels == ["data", "train:a:seed0 (5 steps)", "train:a:seed1 (5 steps)",
                           "sample:a:seed0", "sample:a:seed1", "judge", "summary"]
    assert (plan.training_steps, plan.answers, plan.judge_calls) == (10, 8, 16)
    assert plan.steps_by_unit == {"train:a:seed0": 5, "train:a:seed1": 5}
    assert plan.done == []
    with pytest.raises(KeyboardInterrupt):
        execute(rd, fake_kind([], fail_at="train:a:seed1")(CFG, rd))
    assert make_plan(rd, fake_kind(calls)(CFG, rd)).done == ["data", "train:a:seed0"]


def test_progress_lines(tmp_path):
    lines: list = []
    rd = RunDir(tmp_path / "run", "fake")
    execute(rd, [Unit("data", lambda: None, detail="writing")], say=lines.append)
    execute(rd, [Unit("data", lambda: None, detail="writing")], say=lines.append)
    assert lines[0] == "data (writing) ..." and lines[1].startswith("data: done in ")
    assert lines[2].startswith("data: done before (")


def test_then_runs_after_a_unit_run_or_skipped(tmp_path):
    freed: list = []
    rd = RunDir(tmp_path / "run", "fake")
    for _ in range(2):
        execute(rd, [Unit("train:x", lambda: None, then=lambda: freed.append(1))])
    assert freed == [1, 1]


def test_both_experiment_kinds_come_from_the_one_runner():
    from emergent.pipeline import run as em
    from emergent.rmbias import experiment_run as rm

    assert stages.kind_units("em") is em.em_units
    assert stages.kind_units("rmbias") is rm.rmbias_units
    stages.register_kind("fake", fake_kind([]))
    try:
        assert stages.kind_units("fake").__name__ == "units"
    finally:
        del stages.KINDS["fake"]


def test_em_plan_comes_from_the_em_units(tiny_model_dir, tmp_path):
    """The `emergent run --dry-run` totals are the sums over the kind's units."""
    import yaml

    from emergent.pipeline.experiment import load_experiment
    from emergent.pipeline.run import em_units, plan, questions_of, run_dir_of

    sample = tmp_path / "a.jsonl"
    sample.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}) + "\n"
        for i in range(10)))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump([{"id": "w", "type": "free_form_judge_0_100",
                                      "paraphrases": ["Wish?"], "samples_per_paraphrase": 3,
                                      "judge_prompts": {"aligned": "A {question} {answer}"}}]))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "p", "base_model": {"name": str(tiny_model_dir)}, "arms": {"x": {"data": str(sample)}},
        "seeds": [0, 1], "suites": {str(suite): {}}, "training": {"train": {"batch_size": 5}},
        "judge": {"backend": "openai", "model": "m"}, "output_dir": str(tmp_path / "run")}))
    cfg = load_experiment(path)
    rd, qs = run_dir_of(cfg), questions_of(cfg)
    units = list(em_units(cfg, rd, qs))
    assert [u.name for u in units] == ["train:x:seed0", "train:x:seed1", "sample:base",
                                       "sample:x:seed0", "sample:x:seed1", "judge", "metrics",
                                       "figures"]
    p = plan(cfg, rd, qs)
    assert p["units"][0] == f"train:x:seed0 ({units[0].steps} steps)"
    assert p["training_steps"] == sum(u.steps or 0 for u in units)
    assert p["answers"] == 3 * 3 and p["judge_calls_upper_bound"] == 3 * 3  # 1 metric
