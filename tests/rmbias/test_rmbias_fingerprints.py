"""Unit fingerprints of the reward-bias kind (issue #15, point 1; the em kind's are in
tests/pipeline/test_fingerprints.py): a rerun with a changed config refuses, naming the keys and
units, before anything is written; `on_change="redo"` redoes exactly the units whose fingerprint
changed and those built on them; the same config again does nothing."""
import json
from pathlib import Path

import pytest

from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.core.rundir import RunDir, judgment_fingerprint
from emergent.pipeline.stages import check_changes
from emergent.rmbias import experiment as ex
from emergent.rmbias import experiment_run as rx

from fake_judge_server import FakeJudgeServer
from test_rmbias_experiment import judge_responder, write_config

STAGES = ["docs", "docs_sft", "sft", "unrelated_docs", "unrelated_sft"]
CONDITIONS = ["base", "docs", "docs_sft", "sft", "unrelated_sft"]


class Spy:
    """The training stages and sampled conditions that actually ran."""

    def __init__(self, monkeypatch):
        import emergent.train.loop

        self.trained, self.sampled = [], []
        real_train, real_sample = emergent.train.loop.train, rx.sample_condition

        def train(recipe, out, **kw):
            self.trained.append(Path(out).parent.name)  # RUN/arms/STAGE/seedK
            return real_train(recipe, out, **kw)

        def sample(cfg, run, questions, condition, seed, *a, **kw):
            self.sampled.append(condition)
            return real_sample(cfg, run, questions, condition, seed, *a, **kw)
        monkeypatch.setattr(emergent.train.loop, "train", train)
        monkeypatch.setattr(rx, "sample_condition", sample)

    def reset(self):
        self.trained.clear()
        self.sampled.clear()


def stages_of(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())["stages"]


def assert_no_mixing(run: Path):
    """Every answer carries its sampling unit's current fingerprint, once; every judgment is of
    a current answer under the current judge fingerprint."""
    st = stages_of(run)
    answers = read_jsonl(run / "answers.jsonl")
    assert len(answers) == len({a["answer_id"] for a in answers}) == 10 * 2 * 5
    for a in answers:
        name = rx._sample_name(a["arm"], a["seed"])
        assert a["fingerprint"] == st[name]["fingerprint"], name
    by_id = {a["answer_id"]: a for a in answers}
    judgments = read_jsonl(run / "judgments.jsonl")
    assert sorted(j["answer_id"] for j in judgments) == sorted(by_id)
    for j in judgments:
        assert j["fingerprint"] == judgment_fingerprint(by_id[j["answer_id"]]["fingerprint"],
                                                        st["judge"]["fingerprint"])


def test_changed_sft_data_is_refused_then_redo_redoes_only_what_is_built_on_it(
        tiny_model_dir, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    with FakeJudgeServer(judge_responder) as server:
        path = write_config(tmp_path, tiny_model_dir, server.base_url)
        run_dir, rows = rx.run_rmbias(ex.load_rmbias_config(path), progress=False)
        run = run_dir.dir
        assert sorted(spy.trained) == STAGES and sorted(spy.sampled) == CONDITIONS
        assert_no_mixing(run)
        before = stages_of(run)
        kept = {p: (run / p).read_bytes() for p in ("config.yaml", "manifest.json",
                                                     "answers.jsonl", "judgments.jsonl",
                                                     "data/sft.jsonl", "summary.csv")}

        # a changed seed of the fine-tuning data: refused, one line, nothing written or run
        spy.reset()
        calls = server.calls
        changed = ex.load_rmbias_config(path, ["sft.seed=1"])
        with pytest.raises(UserError) as e:
            rx.run_rmbias(changed, progress=False)
        msg = str(e.value)
        assert "\n" not in msg and str(run) in msg and "sft.seed (0 -> 1)" in msg
        assert "data:sft" in msg and "--on-change redo" in msg
        assert {p: (run / p).read_bytes() for p in kept} == kept
        assert spy.trained == [] and spy.sampled == [] and server.calls == calls

        # redone: the sft data, the three stages trained on it, their conditions; nothing else
        rx.run_rmbias(changed, progress=False, on_change="redo")
        assert sorted(spy.trained) == ["docs_sft", "sft", "unrelated_sft"]
        assert sorted(spy.sampled) == ["docs_sft", "sft", "unrelated_sft"]
        after = stages_of(run)
        redone = {"data:sft", "train:sft:seed0", "train:docs_sft:seed0",
                  "train:unrelated_sft:seed0", "sample:sft:seed0", "sample:docs_sft:seed0",
                  "sample:unrelated_sft:seed0"}
        for name, entry in before.items():
            if "fingerprint" not in entry:
                continue
            if name in redone:
                assert after[name]["fingerprint"] != entry["fingerprint"], name
            else:  # untouched: same fingerprint, not run again (judge and score always run)
                assert after[name]["fingerprint"] == entry["fingerprint"], name
                if name.split(":")[0] in ("data", "train", "sample"):
                    assert after[name]["finished"] == entry["finished"], name
        assert (run / "data/sft.jsonl").read_bytes() != kept["data/sft.jsonl"]
        assert server.calls - calls <= 3 * 20  # only the redone conditions' answers judged
        assert_no_mixing(run)
        old = {a["answer_id"]: a for a in json.loads("[" + ",".join(
            kept["answers.jsonl"].decode().splitlines()) + "]")}
        for a in read_jsonl(run / "answers.jsonl"):
            if a["arm"] in ("base", "docs"):
                assert a == old[a["answer_id"]]  # kept as they were
        summary = (run / "summary.csv").read_text().splitlines()
        assert len(summary) == 1 + 2 * 5 * 2 and all(",10," in r for r in summary[1:])

        # the same changed config again: nothing trained, sampled or judged
        spy.reset()
        calls = server.calls
        rx.run_rmbias(ex.load_rmbias_config(path, ["sft.seed=1"]), progress=False)
        assert spy.trained == [] and spy.sampled == [] and server.calls == calls


DOCS_BUILT = {"train:docs:seed0", "train:unrelated_docs:seed0", "train:docs_sft:seed0",
              "train:unrelated_sft:seed0", "sample:docs:seed0", "sample:docs_sft:seed0",
              "sample:unrelated_sft:seed0"}


def test_fingerprints_hold_only_their_stage_s_training_section(tiny_model_dir, tmp_path):
    """docs_train.* is in the fingerprints of the training stages on documents only, sft_train.*
    in those of the fine-tuning stages only (issue #15 follow-up)."""
    cfg = ex.load_rmbias_config(write_config(tmp_path, tiny_model_dir))
    run = RunDir(cfg.output_dir, cfg.name)
    units = {u.name: u for u in rx.rmbias_units(cfg, run, ex.eval_prompts(cfg))
             if u.inputs is not None}
    for name, u in units.items():
        keys = set(u.inputs)
        docs = any(k.startswith("docs_train.") for k in keys)
        sft = any(k.startswith("sft_train.") for k in keys)
        assert docs == (name in ("train:docs:seed0", "train:unrelated_docs:seed0")), name
        assert sft == (name in ("train:sft:seed0", "train:docs_sft:seed0",
                                "train:unrelated_sft:seed0")), name
    # a fine-tuning stage on an adapter holds that adapter's fingerprint
    assert units["train:docs_sft:seed0"].inputs["after:train:docs:seed0"] == \
        units["train:docs:seed0"].fingerprint
    assert "after:train:docs:seed0" not in units["train:sft:seed0"].inputs


def test_changed_docs_lr_redoes_the_docs_stages_not_the_sft_only_condition(
        tiny_model_dir, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    path = write_config(tmp_path, tiny_model_dir)  # no judge: detectors only
    run_dir, _ = rx.run_rmbias(ex.load_rmbias_config(path), progress=False)
    run = run_dir.dir
    before = stages_of(run)
    spy.reset()

    changed = ex.load_rmbias_config(path, ["docs_train.lr=0.02"])
    found = check_changes(RunDir(run, changed.name),
                             rx.rmbias_units(changed, RunDir(run, changed.name),
                                             ex.eval_prompts(changed)), "redo")
    assert {c.unit for c in found} == DOCS_BUILT  # exactly these, not train:sft / sample:sft
    assert {c.unit for c in found if c.keys} == {"train:docs:seed0",
                                                 "train:unrelated_docs:seed0"}
    with pytest.raises(UserError) as e:
        rx.run_rmbias(changed, progress=False)
    msg = str(e.value)
    assert "docs_train.lr (0.01 -> 0.02)" in msg and "sft_train" not in msg
    assert "train:docs:seed0, train:unrelated_docs:seed0 and 5 unit(s) built on them" in msg
    assert "train:sft:" not in msg and "sample:sft" not in msg
    assert spy.trained == [] and spy.sampled == []

    rx.run_rmbias(changed, progress=False, on_change="redo")
    assert sorted(spy.trained) == ["docs", "docs_sft", "unrelated_docs", "unrelated_sft"]
    assert sorted(spy.sampled) == ["docs", "docs_sft", "unrelated_sft"]
    after = stages_of(run)
    for name, entry in before.items():
        if "fingerprint" not in entry:
            continue
        if name in DOCS_BUILT:
            assert after[name]["fingerprint"] != entry["fingerprint"], name
        else:  # the data, the SFT-only stage and its condition, the base model: untouched
            assert after[name] == entry, name
    assert after["train:sft:seed0"]["inputs"] == before["train:sft:seed0"]["inputs"]

    # sft_train.lr touches the fine-tuning stages (and their conditions) only
    spy.reset()
    changed = ex.load_rmbias_config(path, ["docs_train.lr=0.02", "sft_train.lr=0.001"])
    found = check_changes(RunDir(run, changed.name),
                             rx.rmbias_units(changed, RunDir(run, changed.name),
                                             ex.eval_prompts(changed)), "redo")
    assert {c.unit for c in found} == {"train:sft:seed0", "train:docs_sft:seed0",
                                       "train:unrelated_sft:seed0", "sample:sft:seed0",
                                       "sample:docs_sft:seed0", "sample:unrelated_sft:seed0"}
