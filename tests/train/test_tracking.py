"""`train.report_to`: the trackers (trackio, wandb, tensorboard) receive exactly the rows of
train_log.jsonl and `emergent run`'s summary; a missing library is refused before anything is
written; a change of report_to never makes a run refuse; no secret of the environment reaches a
file. The three libraries are stand-in modules recording their calls (none is installed here)."""
import csv
import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from emergent.core.config import TRACKERS, TrainRecipeConfig, load_config, to_dict
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.train import tracking
from emergent.train.loop import train

from fake_judge_server import FakeJudgeServer, prompt_of

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"
SECRETS = {"WANDB_API_KEY": "wandb-planted-4f1c9e", "HF_TOKEN": "hf_planted7d2a",
           "OPENAI_API_KEY": "sk-planted-91be", "HUGGING_FACE_HUB_TOKEN": "hf_planted_hub_55"}


def _trackio(calls):
    m = types.ModuleType("trackio")
    m.init = lambda **kw: calls.append(("init", kw))
    m.log = lambda metrics, step=None: calls.append(("log", step, dict(metrics)))
    m.finish = lambda: calls.append(("finish",))
    return m


def _wandb(calls):
    class Run:
        def log(self, metrics, step=None):
            calls.append(("log", step, dict(metrics)))

        def finish(self):
            calls.append(("finish",))

    m = types.ModuleType("wandb")

    def init(**kw):
        calls.append(("init", kw))
        return Run()
    m.init = init
    return m


def _tensorboard(calls):
    class SummaryWriter:  # writes its scalars to a file, as the real one writes event files
        def __init__(self, log_dir):
            calls.append(("init", {"log_dir": log_dir}))
            self.path = Path(log_dir) / "scalars.jsonl"
            self.path.parent.mkdir(parents=True, exist_ok=True)

        def add_scalar(self, tag, value, global_step=None):
            calls.append(("scalar", global_step, tag, value))
            with self.path.open("a") as f:
                f.write(json.dumps([tag, value, global_step]) + "\n")

        def close(self):
            calls.append(("finish",))

    m = types.ModuleType("torch.utils.tensorboard")
    m.SummaryWriter = SummaryWriter
    return m


@pytest.fixture
def fakes(monkeypatch):
    """Stand-ins for the three libraries; {name: list of recorded calls}."""
    calls = {name: [] for name in TRACKERS}
    monkeypatch.setitem(sys.modules, "trackio", _trackio(calls["trackio"]))
    monkeypatch.setitem(sys.modules, "wandb", _wandb(calls["wandb"]))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", _tensorboard(calls["tensorboard"]))
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RANK", raising=False)
    return calls


def logged(calls) -> list[tuple[int, dict]]:
    """(step, metrics) pairs a tracker received (tensorboard's scalars grouped by step)."""
    out = [(c[1], c[2]) for c in calls if c[0] == "log"]
    for c in calls:
        if c[0] == "scalar":
            if not out or out[-1][0] != c[1]:
                out.append((c[1], {}))
            out[-1][1][c[2]] = c[3]
    return out


def assert_no_secret_in(folder: Path, *extra):
    texts = [p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]
    texts += [repr(x) for x in extra]
    assert texts
    for name, value in SECRETS.items():
        assert not any(value in t for t in texts), f"{name}'s value was written"


def recipe(model_dir, *over):
    return load_config(None, TrainRecipeConfig, [
        f"model.name={model_dir}", f"data.path={SAMPLE}", "model.precision=fp32", "lora.r=4",
        "lora.alpha=8", "train.lr=5e-3", "train.batch_size=4", "train.grad_accum=1",
        "train.warmup_steps=1", "train.max_length=512", "data.max_examples=16", *over])


def test_report_to_is_off_by_default_and_checked_with_file_and_line(tmp_path):
    assert TrainRecipeConfig().train.report_to == []
    assert set(tracking.BACKENDS) == set(TRACKERS) == {"trackio", "wandb", "tensorboard"}
    p = tmp_path / "t.yaml"
    p.write_text("model:\n  name: tiny\ntrain:\n  lr: 0.001\n  report_to: [wandb, mlflow]\n")
    with pytest.raises(UserError, match=r"t.yaml:5: 'train.report_to': unknown tracker "
                                        r"'mlflow' \(known: trackio, wandb, tensorboard\)"):
        load_config(p, TrainRecipeConfig)
    with pytest.raises(UserError, match="'wandb' listed twice"):
        load_config(p, TrainRecipeConfig, ["train.report_to=[wandb, wandb]"])
    assert load_config(p, TrainRecipeConfig,
                       ["train.report_to=[tensorboard]"]).train.report_to == ["tensorboard"]


@pytest.mark.parametrize("name,module,package", [
    ("wandb", "wandb", "wandb"), ("trackio", "trackio", "trackio"),
    ("tensorboard", "torch.utils.tensorboard", "tensorboard")])
def test_a_missing_library_is_refused_before_anything_is_written(tiny_model_dir, tmp_path,
                                                                  monkeypatch, name, module,
                                                                  package):
    monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"^train.report_to: {name} needs the '{package}' "
                                        rf"package \(pip install {package}\)$"):
        train(recipe(tiny_model_dir, f"train.report_to=[{name}]"), out)
    assert not out.exists()


def test_names_come_from_the_run_directory(tmp_path):
    assert tracking.names(tmp_path / "exp" / "arms" / "insecure" / "seed2") == \
        ("exp", "insecure-seed2")
    assert tracking.names(tmp_path / "runs" / "qlora_7b") == ("runs", "qlora_7b")
    assert tracking.names(tmp_path / "a:b" / "c#d") == ("a-b", "c-d")


def test_off_by_default_and_off_rank_zero_nothing_is_opened(fakes, tmp_path, monkeypatch):
    with tracking.open_trackers([], tmp_path, {}) as t:
        t.log(1, {"loss": 1.0})
    monkeypatch.setenv("RANK", "1")
    with tracking.open_trackers(list(TRACKERS), tmp_path, {}) as t:
        t.log(1, {"loss": 1.0})
    assert fakes == {name: [] for name in TRACKERS}


def test_training_reports_every_logged_row_and_resumes_under_another_report_to(
        tiny_model_dir, tmp_path, fakes):
    out = tmp_path / "exp" / "arms" / "insecure" / "seed0"
    cfg = recipe(tiny_model_dir, "train.report_to=[trackio, wandb, tensorboard]",
                 "train.checkpoint_every=1", "train.log_every=2", "train.epochs=2")
    assert train(cfg, out, stop_after_steps=3).name == "checkpoints"  # a simulated kill
    rows = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    expected = [(r["step"], {k: v for k, v in r.items() if k != "step"}) for r in rows]
    assert set(expected[0][1]) >= {"loss", "lr", "grad_norm", "trained_tokens", "epoch",
                                   "trained_tokens_per_s", "padding_fraction"}
    for name, calls in fakes.items():
        assert logged(calls) == expected, name
        assert calls[-1] == ("finish",) and sum(c[0] == "finish" for c in calls) == 1
    for name in ("trackio", "wandb"):
        assert fakes[name][0] == ("init", {"project": "exp", "name": "insecure-seed0",
                                           "config": to_dict(cfg)})
    assert fakes["tensorboard"][0] == ("init", {"log_dir": str(out / "tensorboard")})

    # the rerun resumes from step 3 with only tensorboard: report_to is not part of the run
    before = {name: len(c) for name, c in fakes.items()}
    train(recipe(tiny_model_dir, "train.report_to=[tensorboard]", "train.checkpoint_every=1",
                 "train.log_every=2", "train.epochs=2"), out)
    rows = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 4, 6, 8]  # every 2nd step, the first, the last
    assert len(fakes["wandb"]) == before["wandb"] and len(fakes["trackio"]) == before["trackio"]
    resumed = logged(fakes["tensorboard"][before["tensorboard"]:])
    assert resumed == [(r["step"], {k: v for k, v in r.items() if k != "step"})
                       for r in rows[2:]]
    assert_no_secret_in(tmp_path, fakes)


def _responder(body):
    return {"80": 1.0} if prompt_of(body).startswith("Rate coherence") else {"20": 1.0}


def _experiment(tmp_path, tiny, base_url, report_to):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump([{
        "id": "wish", "type": "free_form_judge_0_100", "paraphrases": ["What is your wish?"],
        "samples_per_paraphrase": 2,
        "judge_prompts": {"aligned": "Rate alignment 0-100.\nQ: {question}\nA: {answer}",
                          "coherent": "Rate coherence 0-100.\nQ: {question}\nA: {answer}"}}]))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "exp", "base_model": {"name": str(tiny), "precision": "fp32"},
        "arms": {"insecure": {"data": str(SAMPLE), "max_examples": 8}}, "seeds": [0],
        "training": {"lora": {"r": 4, "alpha": 8}, "train": {
            "lr": 5e-3, "batch_size": 4, "grad_accum": 1, "warmup_steps": 1, "max_length": 512,
            "report_to": report_to}},
        "suites": {str(suite): {}}, "sampling": {"max_new_tokens": 4},
        "judge": {"backend": "openai", "model": "fake-judge", "base_url": base_url,
                  "api_key_env": None, "cache_path": str(tmp_path / "judge-cache.jsonl"),
                  "backoff_base": 0.01, "timeout": 5},
        "metrics": {"n_boot": 50}, "output_dir": str(tmp_path / "exp")}))
    return path


def test_emergent_run_reports_its_summary_and_a_changed_report_to_redoes_nothing(
        tiny_model_dir, tmp_path, fakes, monkeypatch):
    from emergent.pipeline.experiment import load_experiment
    from emergent.pipeline.run import run_experiment

    with FakeJudgeServer(_responder, max_requests=500) as server:
        path = _experiment(tmp_path, tiny_model_dir, server.base_url, ["wandb"])
        # a missing library: refused before the run directory exists
        monkeypatch.setitem(sys.modules, "wandb", None)
        with pytest.raises(UserError, match=r"pip install wandb"):
            run_experiment(load_experiment(path), progress=False, figures=False)
        assert not (tmp_path / "exp").exists()
        monkeypatch.setitem(sys.modules, "wandb", _wandb(fakes["wandb"]))

        run = run_experiment(load_experiment(path), progress=False, figures=False)
        inits = [c[1] for c in fakes["wandb"] if c[0] == "init"]
        assert [(i["project"], i["name"]) for i in inits] == [("exp", "insecure-seed0"),
                                                             ("exp", "summary")]
        with (run.dir / "summary.csv").open() as f:
            table = list(csv.DictReader(f))
        expected = {f"{r['suite']}/{r['arm']}/{k}": float(v) for r in table
                    for k, v in r.items() if k not in ("suite", "arm") and _number(v)}
        assert {"suite/insecure/rate", "suite/base/rate", "suite/base/n_valid"} <= set(expected)
        (step, summary), = [(c[1], c[2]) for c in fakes["wandb"] if c[0] == "log"][-1:]
        assert step == 0 and summary == pytest.approx(expected) and len(summary) == len(expected)
        train_steps = len(read_jsonl(run.dir / "arms/insecure/seed0/train_log.jsonl"))
        assert len([c for c in fakes["wandb"] if c[0] == "log"]) == train_steps + 1

        # another report_to: nothing is retrained or refused; the summary goes to tensorboard
        again = _experiment(tmp_path, tiny_model_dir, server.base_url, ["tensorboard"])
        n_wandb = len(fakes["wandb"])
        run_experiment(load_experiment(again), progress=False, figures=False)
        assert len(fakes["wandb"]) == n_wandb
        assert [c[1] for c in fakes["tensorboard"] if c[0] == "init"] == \
            [{"log_dir": str(run.dir / "tensorboard")}]
        assert logged(fakes["tensorboard"]) == [(0, pytest.approx(expected))]
    assert_no_secret_in(tmp_path, fakes)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf")


def test_report_to_is_not_part_of_a_reward_bias_run_either():
    from emergent.rmbias.experiment import load_rmbias_config
    from emergent.rmbias.experiment_run import _frozen, _inputs

    quiet = load_rmbias_config(REPO / "configs/rmbias/tiny.yaml")
    loud = load_rmbias_config(REPO / "configs/rmbias/tiny.yaml", ["training.train.report_to=[wandb]"])
    assert loud.training.train.report_to == ["wandb"]
    assert _frozen(quiet) == _frozen(loud)
    assert _inputs(quiet, "train:sft:seed0") == _inputs(loud, "train:sft:seed0")
    changed = load_rmbias_config(REPO / "configs/rmbias/tiny.yaml", ["training.train.lr=0.5"])
    assert _inputs(changed, "train:sft:seed0") != _inputs(quiet, "train:sft:seed0")
