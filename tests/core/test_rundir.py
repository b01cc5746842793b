"""The run directory (emergent.core.rundir): file paths, answers joined with judgments, the
adapters and units of a run, and the stage manifest that makes a rerun skip finished units."""
import json

import pytest
import yaml

from emergent.core.config import ModelConfig, TrainRecipeConfig, dump_yaml
from emergent.core.errors import UserError
from emergent.core.io import append_jsonl
from emergent.core.rundir import (ANSWERS, JUDGMENTS, MANIFEST, RunDir, find_answer_files,
                                  join_scores)


def test_paths_name_the_run_files(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.answers_path == tmp_path / "answers.jsonl"
    assert rd.judgments_path == tmp_path / "judgments.jsonl"
    assert rd.summary_path == tmp_path / "summary.csv"
    assert rd.per_question_path == tmp_path / "per_question.csv"
    assert rd.config_path == tmp_path / "config.yaml"
    assert rd.manifest_path == tmp_path / "manifest.json"
    assert rd.bandit_judgments_path == tmp_path / "judgments_bandit.jsonl"
    assert rd.capabilities_path == tmp_path / "capabilities.jsonl"
    assert rd.figures_dir == tmp_path / "figures"
    assert rd.directions_dir == tmp_path / "directions"
    assert rd.arm_dir("insecure", 2) == tmp_path / "arms" / "insecure" / "seed2"
    assert rd.train_log_path("insecure", 2) == tmp_path / "arms/insecure/seed2/train_log.jsonl"
    assert rd.adapter_dir("insecure", 2) == tmp_path / "arms/insecure/seed2/adapter"
    (tmp_path / "arms/full/seed0/model").mkdir(parents=True)
    assert rd.adapter_dir("full", 0) == tmp_path / "arms/full/seed0/model"
    assert not rd.is_trained_run()
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert rd.is_trained_run()


def test_join_scores_one_record_per_answer_a_later_judgment_wins():
    answers = [{"answer_id": "a", "arm": "x"}, {"answer_id": "b", "arm": "x"}]
    judgments = [{"answer_id": "a", "metric": "aligned", "score": 50.0},
                 {"answer_id": "a", "metric": "coherent", "score": 90.0},
                 {"answer_id": "a", "metric": "aligned", "score": 10.0}]
    recs = join_scores(answers, judgments)
    assert recs == [{"answer_id": "a", "arm": "x", "aligned": 10.0, "coherent": 90.0},
                    {"answer_id": "b", "arm": "x"}]
    assert answers[0] == {"answer_id": "a", "arm": "x"}  # the answer rows are not changed


def test_records_join_the_tables_skip_a_torn_tail_and_take_extra_judgments(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.records() == []  # nothing sampled yet
    append_jsonl(rd.answers_path, [{"answer_id": "a", "step": None}, {"answer_id": "b"}])
    append_jsonl(rd.judgments_path, [{"answer_id": "a", "metric": "aligned", "score": 80.0},
                                     {"answer_id": "a", "metric": "aligned", "score": 5.0}])
    with open(rd.judgments_path, "a") as f:
        f.write('{"answer_id": "b", "metric": "ali')  # killed mid-append
    recs = rd.records([{"answer_id": "b", "metric": "vulnerable", "score": 1.0}])
    assert recs == [{"answer_id": "a", "step": None, "aligned": 5.0},
                    {"answer_id": "b", "vulnerable": 1.0}]
    with open(rd.answers_path, "a") as f:
        f.write("not json\n{\"answer_id\": \"c\"}\n")
    with pytest.raises(UserError, match=r"answers\.jsonl:3: invalid JSON"):
        rd.records()


def _adapter(run, arm, seed, folder="adapter", quantization="none"):
    d = run / "arms" / arm / f"seed{seed}"
    (d / folder).mkdir(parents=True)
    dump_yaml(TrainRecipeConfig(model=ModelConfig(name="org/m", quantization=quantization)),
              d / "config.yaml")
    return d / folder


def test_adapters_are_the_finished_units_in_order(tmp_path):
    a10 = _adapter(tmp_path, "secure", 10)
    a1 = _adapter(tmp_path, "secure", 1)
    full = _adapter(tmp_path, "full", 0, folder="model")
    (tmp_path / "arms/insecure/seed0/checkpoints").mkdir(parents=True)  # training not finished
    (tmp_path / "arms/insecure/seedX/adapter").mkdir(parents=True)  # not a seed folder
    assert RunDir(tmp_path).adapters() == {("full", 0): full, ("secure", 1): a1,
                                           ("secure", 10): a10}
    assert RunDir(tmp_path / "nothing").adapters() == {}


def test_units_base_first_loaded_as_the_arms_were_trained(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"base_model": {"name": "org/m", "precision": "bf16"}}))
    _adapter(tmp_path, "insecure", 0, quantization="4bit")
    _adapter(tmp_path, "secure", 0, quantization="4bit")
    units = RunDir(tmp_path).units()
    assert [(u.arm, u.seed) for u in units] == [("base", 0), ("insecure", 0), ("secure", 0)]
    assert units[0].adapter is None and units[0].model.quantization == "4bit"
    assert units[1].adapter == str(tmp_path / "arms/insecure/seed0/adapter")
    assert [u.arm for u in RunDir(tmp_path).units(["secure"])] == ["secure"]
    assert [u.arm for u in RunDir(tmp_path).units(include_base=False)] == ["insecure", "secure"]
    with pytest.raises(UserError, match="config.yaml: not found"):
        RunDir(tmp_path / "elsewhere").units()


def test_eval_checkpoints_by_step(tmp_path):
    rd = RunDir(tmp_path)
    for name in ("step-000020", "step-000005", "step-last"):
        (rd.arm_dir("a", 0) / "eval_checkpoints" / name).mkdir(parents=True)
    assert [s for s, _ in rd.eval_checkpoints("a", 0)] == [5, 20]
    assert rd.eval_checkpoints("b", 0) == []


def test_unit_runs_once_and_records_its_status(tmp_path):
    calls = []

    def work(x, seen_status):
        seen_status.append(json.loads((tmp_path / MANIFEST).read_text())["stages"]["u"]["status"])
        calls.append(x)
        return x * 2

    seen = []
    rd = RunDir(tmp_path, "demo")
    assert rd.unit("u", work, 21, seen) == 42
    assert seen == ["running"] and calls == [21]
    stage = json.loads((tmp_path / MANIFEST).read_text())["stages"]["u"]
    assert stage["status"] == "done" and stage["seconds"] >= 0 and "finished" in stage
    again = RunDir(tmp_path)
    assert again.done("u") and not again.done("v")
    assert again.unit("u", work, 1, seen) is None and calls == [21]
    assert again.manifest["name"] == "demo"


def test_a_failed_unit_stays_running_and_is_redone(tmp_path):
    def boom():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        RunDir(tmp_path).unit("u", boom)
    rd = RunDir(tmp_path)
    assert rd.manifest["stages"]["u"]["status"] == "running" and not rd.done("u")
    assert rd.unit("u", lambda: "ok") == "ok" and rd.done("u")


def test_a_damaged_manifest_is_one_error_and_does_not_block_reading_tables(tmp_path):
    (tmp_path / MANIFEST).write_text('{"stages": {')
    append_jsonl(tmp_path / ANSWERS, [{"answer_id": "a"}])
    append_jsonl(tmp_path / JUDGMENTS, [{"answer_id": "a", "metric": "aligned", "score": 1.0}])
    rd = RunDir(tmp_path)
    assert rd.records() == [{"answer_id": "a", "aligned": 1.0}]
    with pytest.raises(UserError, match=r"manifest\.json:1: invalid JSON"):
        rd.done("u")


def test_find_answer_files(tmp_path):
    for d in ("r2", "r1", "r1/sub"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
        (tmp_path / d / ANSWERS).write_text("")
    assert list(find_answer_files(tmp_path)) == [tmp_path / "r1" / ANSWERS,
                                                 tmp_path / "r1/sub" / ANSWERS,
                                                 tmp_path / "r2" / ANSWERS]
    assert list(find_answer_files(tmp_path / "r1")) == [tmp_path / "r1" / ANSWERS]
