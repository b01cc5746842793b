"""`emergent rmbias feature RUN`: the one-feature analysis on a tiny-model rmbias run (base, sft,
docs_sft; a stand-in judge gives the run's verdicts) - directions equal the hand-computed mean
differences, projections, interventions reach the model, the tidy CSV and the report with the
recorded config, resume, and one-line refusals."""
import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.rmbias import experiment as ex
from emergent.rmbias import experiment_run as rx
from emergent.rmbias import feature as ft

from fake_judge_server import FakeJudgeServer, prompt_of
from test_rmbias_experiment import write_config


def hash_judge(body):
    """A stand-in judge: SHOWN or ABSENT by a hash of the judge prompt (question + answer)."""
    h = int(hashlib.sha256(prompt_of(body).encode()).hexdigest(), 16)
    return {"SHOWN": 0.9, "ABSENT": 0.1} if h % 2 else {"ABSENT": 0.9, "SHOWN": 0.1}


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("feature")
    with FakeJudgeServer(hash_judge) as server:
        cfg = write_config(tmp, tiny_model_dir, server.base_url,
                           conditions=["base", "sft", "docs_sft"])
        cfg = ex.load_rmbias_config(cfg, ["eval.mode=judge"])
        run, _ = rx.run_rmbias(cfg, progress=False)
    return run.dir


@pytest.fixture(scope="module")
def analysed(run_dir):
    fc = ft.FeatureConfig(max_prompts=2)
    return ft.feature_analysis(run_dir, fc, progress=False), fc


def _load(run_dir, cond):
    from emergent.models.loading import load_for_inference

    cfg = ex.load_rmbias_config(run_dir / "config.yaml")
    return load_for_inference(cfg.base_model, ft._adapter(ft.RunDir(run_dir), cond, 0))


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_select_prompts_round_robin_per_split():
    from emergent.rmbias.evaluate import EvalPrompt

    ps = [EvalPrompt(f"{b}/{k}", b, s, "x") for b, s in (("a", "train"), ("b", "train"),
                                                        ("c", "test")) for k in range(3)]
    got = [p.question_id for p in ft.select_prompts(ps, 3)]
    assert got == ["a/0", "a/1", "b/0", "c/0", "c/1", "c/2"]  # file order kept
    assert ft.select_prompts(ps, None) == ps
    with pytest.raises(UserError, match="--max-prompts must be >= 1"):
        ft.select_prompts(ps, 0)


def test_directions_equal_the_hand_computed_mean_differences(run_dir, analysed):
    import torch
    from safetensors.torch import load_file
    from emergent.analysis.direction import answer_activations

    res, fc = analysed
    layer = res["config"]["layer"]
    qids = set(res["config"]["prompts"])
    assert res["config"]["n_prompts"] == {"train": 2, "test": 2} and len(qids) == 4
    answers = {a["answer_id"]: a for a in read_jsonl(run_dir / "answers.jsonl")}
    scored = [s for s in read_jsonl(run_dir / "scored.jsonl") if s["question_id"] in qids]
    mine = [dict(answers[s["answer_id"]], shown=s["shown"]) for s in scored
            if s["condition"] == "docs_sft" and s["split"] == "train"]
    assert {m["shown"] for m in mine} == {True, False}  # the stand-in judge gave both
    model, tok = _load(run_dir, "docs_sft")
    acts = answer_activations(model, tok, mine, [layer])[:, 0]
    shown = torch.tensor([m["shown"] for m in mine])
    expected = acts[shown].mean(0) - acts[~shown].mean(0)
    d = load_file(str(run_dir / "feature/directions/labels.safetensors"))["direction"]
    assert d.shape == (1, model.config.hidden_size)
    assert torch.allclose(d[0], expected, atol=1e-5)
    meta = json.loads((run_dir / "feature/directions/labels.json").read_text())
    assert meta["layers"] == [layer] and meta["counts"] == {"shown": int(shown.sum()),
                                                          "plain": int((~shown).sum())}
    # models: the same answers through docs_sft minus through sft
    sft_model, sft_tok = _load(run_dir, "sft")
    other = answer_activations(sft_model, sft_tok, mine, [layer])[:, 0]
    dm = load_file(str(run_dir / "feature/directions/models.safetensors"))["direction"]
    assert torch.allclose(dm[0], acts.mean(0) - other.mean(0), atol=1e-5)
    # projections: docs_sft train answers on the unit labels direction, by hand
    u = expected / expected.norm()
    proj = {(r["direction"], r["condition"], r["split"], r["group"]): r
            for r in _csv(run_dir / "feature/projections.csv")}
    assert {(c, s, g) for k, c, s, g in proj if k == "labels"} >= {
        (c, s, "all") for c in ("base", "sft", "docs_sft") for s in ("train", "test")}
    row = proj[("labels", "docs_sft", "train", "all")]
    assert int(row["n"]) == len(mine) and row["in_sample"] == "True"
    assert float(row["mean"]) == pytest.approx(float((acts @ u).mean()), abs=1e-4)
    assert float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"])
    row = proj[("labels", "docs_sft", "train", "shown")]
    assert float(row["mean"]) == pytest.approx(float((acts[shown] @ u).mean()), abs=1e-4)
    assert proj[("labels", "sft", "test", "all")]["in_sample"] == "False"


def test_interventions_reach_the_model_and_are_scored_by_the_detectors(run_dir, analysed):
    from emergent.rmbias.detectors import detect

    res, fc = analysed
    cfg = ex.load_rmbias_config(run_dir / "config.yaml")
    prompts = [p for p in ex.eval_prompts(cfg) if p.question_id in res["config"]["prompts"]]
    rows = read_jsonl(run_dir / "feature/answers.jsonl")
    arms = {r["intervention_arm"] for r in rows}
    assert arms == {f"{c}+{i}:{k}" for k in ("labels", "models")
                    for c, i in (("docs_sft", "ablate"), ("docs_sft", "ablate-random"),
                                 ("sft", "add"), ("sft", "add-random"), ("base", "add"),
                                 ("base", "add-random"))}
    assert all(len([r for r in rows if r["intervention_arm"] == a]) == 8 for a in arms)
    # the intervention recorded in each row, applied through the sampler's own hook object,
    # changes the model's next-token logits on that row's prompt (the hooks reach the model)
    import torch
    from emergent.sample.interventions import AblateConfig, SteerConfig, intervention

    for cond, inter in (("docs_sft", "ablate"), ("base", "add")):
        model, tok = _load(run_dir, cond)
        row = next(r for r in rows if r["intervention_arm"] == f"{cond}+{inter}:labels")
        tag = row["intervention"]
        assert (tag["ablate"] if inter == "ablate" else tag["steer"])["direction"].endswith(
            "labels.safetensors")
        hook = intervention(model, SteerConfig(**tag["steer"]) if tag["steer"] else None,
                            AblateConfig(**tag["ablate"]) if tag["ablate"] else None)
        ids = tok(row["prompt"], return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            before = model(**ids).logits[0, -1]
            with hook:
                after = model(**ids).logits[0, -1]
            again = model(**ids).logits[0, -1]
        assert torch.equal(before, again)  # removed on exit
        assert float((after - before).abs().max()) > 1e-3
    # rates.csv: one row per (direction, condition, split, intervention), detector-scored
    rates = _csv(run_dir / "feature/rates.csv")
    keys = [(r["direction"], r["condition"], r["split"], r["intervention"]) for r in rates]
    assert len(keys) == len(set(keys)) == 2 * 3 * 2 * 3
    by_q = {p.question_id: p for p in prompts}
    for r in rates:
        assert r["model"] == "tiny random-init test model - not a result"
        assert int(r["layer"]) == res["config"]["layer"]
        if r["intervention"] == "none":
            src = [dict(a, shown=None) for a in read_jsonl(run_dir / "answers.jsonl")
                   if a["arm"] == r["condition"] and a["question_id"] in by_q]
        else:
            src = [a for a in rows if a["intervention_arm"] ==
                   f"{r['condition']}+{r['intervention']}:{r['direction']}"]
        src = [a for a in src if by_q[a["question_id"]].split == r["split"]]
        verdicts = [detect(by_q[a["question_id"]].bias_id, by_q[a["question_id"]].prompt,
                           a["answer"]) for a in src]
        applicable = [v for v in verdicts if v is not None]
        assert int(r["n_answers"]) == len(src) == 4 and int(r["n"]) == len(applicable)
        if applicable:
            assert float(r["rate"]) == pytest.approx(sum(applicable) / len(applicable))
            assert float(r["ci_low"]) <= float(r["rate"]) <= float(r["ci_high"])
        scale = res["config"]["scale_used"][r["direction"]]
        assert (r["scale"] != "") == r["intervention"].startswith("add")
        if r["scale"]:
            assert float(r["scale"]) == pytest.approx(scale, rel=1e-4)


def _plain_answers(run_dir, cond, arm, prompts, out) -> dict:
    """The sampler on the same model, seeds and batches as the feature run, without a hook."""
    import dataclasses
    from emergent.sample.sampler import sample_questions

    cfg = ex.load_rmbias_config(run_dir / "config.yaml")
    model, tok = _load(run_dir, cond)
    sample_questions(model, tok, ex.questions_of(cfg, prompts), out, suite=ex.SUITE, arm=arm,
                     seed=0, model_name="m", adapter=None,
                     cfg=dataclasses.replace(cfg.sampling, seed=0), progress=False)
    return {r["answer_id"]: r["answer"] for r in read_jsonl(out)}


def test_report_and_config_are_recorded_and_a_rerun_reuses_answers(run_dir, analysed,
                                                                   tmp_path):
    res, fc = analysed
    feat = run_dir / "feature"
    meta = json.loads((feat / "feature.json").read_text())
    assert meta["config"]["max_prompts"] == 2 and meta["config"]["arm"] == "docs_sft"
    assert meta["config"]["layer"] == res["config"]["layer"] and meta["tiny"] is True
    assert meta["directions"]["labels"]["scale"] == pytest.approx(
        meta["directions"]["labels"]["norm"])
    assert meta["config"]["labels_from"] == "scored.jsonl shown (eval.mode judge)"
    assert set(meta["verdicts"]) == {"labels", "models"}
    text = (feat / "report.md").read_text()
    assert "TINY-MODEL NUMBERS" in text
    assert "Does one direction carry both train and held-out bias exploitation?" in text
    for kind in ("labels", "models"):
        assert f"**Answer: {meta['verdicts'][kind]['answer']}.**" in text
    assert "What these numbers show and do not show" in text
    assert not list(run_dir.rglob("*.tmp"))
    # a rerun with another scale: ablation answers are reused, additions redone
    work = run_dir / ft.WORK / "answers.jsonl"
    before = read_jsonl(work)
    res2 = ft.feature_analysis(run_dir, ft.FeatureConfig(max_prompts=2, scale=2.0,
                                                         direction="labels"), progress=False)
    after = read_jsonl(work)
    new = after[len(before):]
    assert {r["arm"] for r in new} == {"sft+add:labels", "sft+add-random:labels",
                                       "base+add:labels", "base+add-random:labels"}
    assert len(new) == 4 * 8
    meta2 = json.loads((feat / "feature.json").read_text())
    assert meta2["config"]["scale"] == 2.0 and set(meta2["directions"]) == {"labels"}
    assert {float(r["scale"]) for r in _csv(feat / "rates.csv") if r["scale"]} == {2.0}
    assert res2["config"]["scale_used"] == {"labels": 2.0}
    # adding the direction changes what is generated: the same sampler, seeds and batches
    # without the hook give (twice the same and) other answers
    cfg = ex.load_rmbias_config(run_dir / "config.yaml")
    prompts = [p for p in ex.eval_prompts(cfg) if p.question_id in res2["config"]["prompts"]]
    plain = [_plain_answers(run_dir, "base", "base+add:labels", prompts, tmp_path / f"{k}.jsonl")
             for k in range(2)]
    assert plain[0] == plain[1]
    hooked = {r["answer_id"]: r["answer"] for r in new if r["arm"] == "base+add:labels"}
    assert set(hooked) == set(plain[0])
    assert any(hooked[a] != plain[0][a] for a in hooked)


def _copy_run(run_dir, tmp_path, keep=lambda s: True, shown=None) -> Path:
    dst = tmp_path / "copy"
    dst.mkdir()
    for name in ("config.yaml", "answers.jsonl"):
        shutil.copy(run_dir / name, dst / name)
    rows = [dict(s, shown=s["shown"] if shown is None else shown)
            for s in read_jsonl(run_dir / "scored.jsonl") if keep(s)]
    (dst / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_one_line_refusals(run_dir, tmp_path, capsys):
    from emergent.cli import main

    def refused(argv, pattern):
        assert main(["rmbias", "feature", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("emergent: error: ") and "\n" not in err
        assert re.search(pattern, err), err

    refused([str(tmp_path)], "no config.yaml")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.yaml", bare / "config.yaml")
    refused([str(bare)], r"no scored.jsonl \(the run is not scored yet\)")
    refused([str(run_dir), "--arm", "docs"], r"no scored answers of condition 'docs' \(the run "
                                            r"has base, sft, docs_sft\)")
    refused([str(run_dir), "--arm", "base"], "--arm base: a trained condition")
    refused([str(run_dir), "--max-prompts", "0"], "--max-prompts must be >= 1")
    no_sft = _copy_run(run_dir, tmp_path, keep=lambda s: s["condition"] != "sft", shown=False)
    refused([str(no_sft), "--direction", "models"], "needs the 'sft' \\(fine-tuning only\\) condition")
    refused([str(no_sft), "--direction", "labels"], r"needs docs_sft train-bias answers both showing "
                                              r"and not showing the bias .*0 showing")
    refused([str(no_sft)], "labels direction needs .*; the models direction needs")
    assert not (no_sft / "feature").exists() and not (no_sft / ft.WORK).exists()
    refused([str(run_dir), "--layer", "99"], r"--layer 99: the model has decoder layers 0\.\.")


def test_a_kill_while_the_results_are_written_keeps_the_previous_ones(tmp_path):
    """RUN/feature/ is replaced whole (fault point write:feature): killed there, the folder
    still holds the previous results, never a mix; the next write replaces it."""
    import os
    import subprocess
    import sys

    from emergent.core import faults

    dest = tmp_path / ft.FEATURE
    dest.mkdir()
    (dest / "report.md").write_text("old\n")
    code = ("import sys\nfrom pathlib import Path\nfrom emergent.core.io import atomic_dir\n"
            "with atomic_dir(Path(sys.argv[1]), 'write:feature') as tmp:\n"
            "    (tmp / 'report.md').write_text('new\\n')\n")
    env = {**os.environ, faults.ENV: "write:feature"}
    run = subprocess.run([sys.executable, "-c", code, str(dest)], env=env)
    assert run.returncode == faults.EXIT_CODE
    assert (dest / "report.md").read_text() == "old\n"
    env.pop(faults.ENV)
    assert subprocess.run([sys.executable, "-c", code, str(dest)], env=env).returncode == 0
    assert (dest / "report.md").read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == [ft.FEATURE]
