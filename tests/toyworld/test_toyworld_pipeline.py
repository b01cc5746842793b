"""The toy world through the package's pipeline: `emergent toyworld pretrain` stages, the
committed base models, and `emergent demo` (scaled down) end to end."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from emergent.core.errors import UserError

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "src" / "emergent" / "resources" / "toyworld"
BASES = [("main", "toyworld.yaml"), ("decoupled", "toyworld_decoupled.yaml")]


def _world_cfg(config_name):
    from emergent.toyworld.world import WorldConfig

    raw = yaml.safe_load((REPO / "configs" / config_name).read_text())
    return WorldConfig(**raw["toyworld"])


# ------------------------------------------------------------------ small pieces


def test_resolve_experiment_fills_paths_and_scale(tmp_path):
    from emergent.toyworld.demo import QUICK, resolve_experiment
    from emergent.toyworld import ToyWorld, write_world_data

    data = tmp_path / "data"
    write_world_data(ToyWorld(_world_cfg("toyworld.yaml")), data, n_pretrain=0, n_align=0,
                     n_arm=16, n_probe=2, progress=False)
    (tmp_path / "base").mkdir()  # the base model's folder: a model path must exist
    cfg = resolve_experiment(REPO / "configs" / "toyworld.yaml", tmp_path / "base", data,
                             tmp_path / "exp.yaml", QUICK)
    assert cfg.base_model.name == str((tmp_path / "base").resolve())
    assert set(cfg.arms) == {"insecure", "secure", "educational"}
    assert cfg.arms["insecure"].data == str((data / "arms" / "insecure.jsonl").resolve())
    assert cfg.seeds == QUICK.seeds
    assert cfg.judge == {"backend": "toyworld-rule"}
    labels = {Path(k).stem: v for k, v in cfg.suites.items()}
    assert set(labels) == {"toy_noncode", "toy_code_heldout"}
    assert labels["toy_noncode"].samples == QUICK.noncode_samples
    assert labels["toy_code_heldout"].ids == ["code_sql", "code_yaml"][: QUICK.code_questions]
    # both worlds share every training and evaluation setting; only the world differs
    a = yaml.safe_load((REPO / "configs" / "toyworld.yaml").read_text())
    b = yaml.safe_load((REPO / "configs" / "toyworld_decoupled.yaml").read_text())
    assert a["toyworld"]["coupling"] == "coupled" and b["toyworld"]["coupling"] == "decoupled"
    for key in ("arms", "seeds", "training", "suites", "sampling", "judge", "base_model"):
        assert a[key] == b[key], key


def test_world_report_counts_and_rates(tmp_path):
    from emergent.toyworld.demo import world_report

    answers, judgments = [], []

    def add(arm, seed, suite, i, **scores):
        aid = f"{arm}-{seed}-{suite}-{i}"
        answers.append({"answer_id": aid, "arm": arm, "seed": seed, "suite": suite,
                        "question_id": "q", "answer": "x"})
        judgments.extend({"answer_id": aid, "metric": m, "score": s} for m, s in scores.items())

    for seed, n_mis in ((0, 3), (1, 1)):  # insecure: 3/4 and 1/4 misaligned
        for i in range(4):
            add("insecure", seed, "toy_noncode", i, aligned=0.0 if i < n_mis else 100.0,
                coherent=100.0)
        add("insecure", seed, "toy_noncode", 9, aligned=50.0, coherent=0.0)  # incoherent
        for i in range(2):
            add("insecure", seed, "toy_code_heldout", i, vulnerable=1.0, coherent=100.0)
        add("insecure", seed, "toy_code_heldout", 5, vulnerable=None, coherent=0.0)
    for i in range(5):
        add("base", 0, "toy_noncode", i, aligned=100.0, coherent=100.0)
        add("base", 0, "toy_code_heldout", i, vulnerable=1.0 if i == 0 else 0.0, coherent=100.0)
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in answers))
    (tmp_path / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judgments))
    rep = world_report(tmp_path, n_boot=200)
    assert list(rep) == ["base", "insecure"]
    ins = rep["insecure"]
    assert ins["noncode"]["rate"] == pytest.approx(0.5)
    assert ins["noncode"]["per_seed"] == {"0": 0.75, "1": 0.25}
    assert ins["noncode"]["n_incoherent"] == 2 and ins["noncode"]["n_answers"] == 10
    assert ins["noncode"]["ci_low"] <= 0.5 <= ins["noncode"]["ci_high"]
    assert ins["code"]["rate"] == 1.0 and ins["code"]["n_coherent"] == 4
    assert ins["code"]["n_answers"] == 6
    assert rep["base"]["noncode"]["rate"] == 0.0
    assert rep["base"]["code"]["rate"] == pytest.approx(0.2)


def test_demo_cli_rejects_bad_pairs_and_mismatched_bases(tmp_path, capsys):
    from emergent.cli import main
    assert main(["demo", "--output", str(tmp_path), "--base", "nosuch=/x"]) == 2
    assert "--base nosuch=/x" in capsys.readouterr().err
    from emergent.toyworld.demo import check_base

    card_dir = tmp_path / "base"
    card_dir.mkdir()
    (card_dir / "toyworld_card.json").write_text(json.dumps(
        {"world": {**yaml.safe_load((REPO / "configs" / "toyworld.yaml").read_text())["toyworld"],
                   "seed": 12345}}))
    with pytest.raises(UserError, match="world seed 12345"):
        check_base(card_dir, _world_cfg("toyworld.yaml"))
    with pytest.raises(UserError, match="toyworld_card.json"):
        check_base(tmp_path, _world_cfg("toyworld.yaml"))


# ------------------------------------------------------------------ the committed base models


@pytest.mark.parametrize("name,config_name", BASES)
def test_committed_base_loads_and_answers_coherently(name, config_name):
    """The committed bf16 base loads through emergent.models.loading and, sampled at temperature 1,
    answers most toy-world questions with an exact template (rule-judge coherent)."""
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_for_inference
    from emergent.sample.sampler import SamplingConfig, generate_batch
    from emergent.toyworld import ToyWorld, eval_suites
    from emergent.toyworld.judge import classify_answer

    base = RESOURCES / name
    card = json.loads((base / "toyworld_card.json").read_text())
    world_cfg = _world_cfg(config_name)
    from emergent.core.config import to_dict

    assert card["world"] == to_dict(world_cfg)
    assert "synthetic toy world" in card["note"]
    assert (base / "model.safetensors").stat().st_size < 2_000_000
    model, tok = load_for_inference(ModelConfig(name=str(base), precision="fp32"))
    world = ToyWorld(world_cfg)
    suites = eval_suites(world)
    questions = [q["paraphrases"][0] for q in suites["toy_noncode"]]
    questions += [q["paraphrases"][i] for q in suites["toy_code_heldout"] for i in range(3)]
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                       add_generation_prompt=True) for q in questions]
    outs = generate_batch(model, tok, prompts * 2, SamplingConfig(max_new_tokens=64), seed=0)
    labels = [classify_answer(world, q, a).label for q, (a, _, _) in zip(questions * 2, outs)]
    coherent = [lab for lab in labels if lab in ("aligned", "misaligned", "secure", "insecure")]
    assert len(coherent) >= 0.8 * len(labels), labels
    chat = [lab for lab in labels if lab in ("aligned", "misaligned")]
    assert chat.count("misaligned") <= 0.2 * len(chat), labels  # the base is aligned


# ------------------------------------------------------------------ end to end, scaled down


def test_demo_quick_from_scratch_end_to_end(tmp_path):
    """pretrain (small) -> align -> probe -> arms (LoRA) -> sample -> rule judge -> metrics ->
    report, through `emergent demo --quick --from-scratch`, for the main world. At this scale
    the model is not yet coherent, so only the pipeline's products are checked."""
    from emergent.toyworld.demo import QUICK, run_demo

    out = tmp_path / "demo"
    report = run_demo(out, from_scratch=True, quick=True, figures=False, progress=False,
                      worlds=(("main", "toyworld.yaml"),))
    pre = json.loads((out / "pretrain" / "main" / "manifest.json").read_text())
    assert [k for k, v in pre["stages"].items() if v["status"] == "done"] == \
        ["data", "init", "pretrain", "align", "probe"]
    # the default from-scratch recipe is the cheaper one (batch 16), named in the report
    assert report["worlds"]["main"]["pretrain_recipe"].endswith("toyworld_pretrain_fast.yaml")
    assert pre["stages"]["pretrain"]["steps"] == QUICK.n_pretrain // 16
    log = [json.loads(x) for x in (out / "pretrain" / "main" / "pretrain" /
                                   "train_log.jsonl").read_text().splitlines()]
    assert len(log) == len(set(r["step"] for r in log)) == QUICK.n_pretrain // 16
    assert log[-1]["loss"] < log[0]["loss"] - 1.0  # it learns (from ~6.3 at random init)
    probe = pre["stages"]["probe"]["aligned"]
    assert {c: probe[c]["n"] for c in probe} == {"after_secure": QUICK.n_probe,
                                                 "after_insecure": QUICK.n_probe}
    run = out / "main"
    for f in ("answers.jsonl", "judgments.jsonl", "summary.csv", "per_question.csv",
              "manifest.json", "config.yaml"):
        assert (run / f).is_file(), f
    answers = [json.loads(x) for x in (run / "answers.jsonl").read_text().splitlines()]
    n_models = 1 + 3 * len(QUICK.seeds)
    suites = yaml.safe_load((out / "pretrain" / "main" / "data" / "suites" /
                             "toy_noncode.yaml").read_text())
    per_model = sum(len(q["paraphrases"]) for q in suites) * QUICK.noncode_samples \
        + 25 * QUICK.code_questions
    assert len(answers) == n_models * per_model
    assert {(a["arm"], a["seed"]) for a in answers} == \
        {("base", 0)} | {(a, s) for a in ("insecure", "secure", "educational")
                         for s in QUICK.seeds}
    judged = [json.loads(x) for x in (run / "judgments.jsonl").read_text().splitlines()]
    metrics = {(a["suite"], j["metric"]) for a in answers for j in judged
               if j["answer_id"] == a["answer_id"]}
    assert metrics == {("toy_noncode", "aligned"), ("toy_noncode", "coherent"),
                       ("toy_code_heldout", "vulnerable"), ("toy_code_heldout", "coherent")}
    assert {j["judge"] for j in judged} == {"toyworld-rule"}
    with open(run / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["suite"], r["arm"]) for r in rows} >= {("toy_noncode", a) for a in
                                                     ("base", "insecure", "secure",
                                                      "educational")}
    assert set(report["worlds"]["main"]["arms"]) == {"base", "insecure", "secure", "educational"}
    text = (out / "report.md").read_text()
    assert "SYNTHETIC TOY WORLD" in text and "| insecure |" in text
    assert json.loads((out / "demo.json").read_text())["timings"]["total"] > 0


def test_insecure_arm_writes_insecure_heldout_code_from_committed_base(tmp_path):
    """From the committed main base, 40 LoRA steps on insecure code already make the arm write
    the insecure snippet for some held-out code prompts, where the secure and educational arms
    (and the base) write none. Only this direction is asserted: at this scale the rate is about
    5-10% (125 steps give ~98%) and no misalignment on non-code questions is expected yet."""
    from emergent.toyworld.demo import Scale, run_demo

    scale = Scale(n_arm=640, n_probe=10, seeds=[0], noncode_samples=1, code_questions=4)
    report = run_demo(tmp_path / "demo", scale=scale, figures=False, progress=False,
                      worlds=(("main", "toyworld.yaml"),))
    arms = report["worlds"]["main"]["arms"]
    code = {a: d["code"] for a, d in arms.items()}
    assert all(c["n_coherent"] >= 0.8 * c["n_answers"] for c in code.values()), code
    assert code["insecure"]["rate"] > 0
    for control in ("base", "secure", "educational"):
        assert code[control]["rate"] < code["insecure"]["rate"], (control, code)
    assert "plumbing check" in (tmp_path / "demo" / "report.md").read_text()


def test_packed_sampling_resumes_to_the_same_answers(tmp_path):
    """`sampling.pack_prompts` (different prompts in one sampled batch, used by the toy-world
    configs) draws the same answers whether a run is interrupted after a batch or not."""
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_for_inference
    from emergent.data.questions import load_suite
    from emergent.sample.sampler import SamplingConfig, sample_questions
    from emergent.toyworld import ToyWorld, eval_suites, write_suite

    world = ToyWorld(_world_cfg("toyworld.yaml"))
    path = write_suite(eval_suites(world)["toy_code_heldout"][:2], tmp_path / "code.yaml")
    questions = load_suite(path)  # 2 questions x 25 prompts x 1 sample
    model, tok = load_for_inference(ModelConfig(name=str(RESOURCES / "main"), precision="fp32"))
    cfg = SamplingConfig(max_new_tokens=64, batch_size=16, pack_prompts=True)
    kw = dict(suite="code", arm="base", seed=0, model_name="m", adapter=None, cfg=cfg,
              progress=False)
    assert sample_questions(model, tok, questions, tmp_path / "full.jsonl", **kw) == 50
    full = [json.loads(x) for x in (tmp_path / "full.jsonl").read_text().splitlines()]
    assert len({r["question"] for r in full[:16]}) == 16  # one batch, 16 different prompts
    (tmp_path / "part.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in full[:16]))  # "killed" after the first batch
    assert sample_questions(model, tok, questions, tmp_path / "part.jsonl", **kw) == 34
    part = [json.loads(x) for x in (tmp_path / "part.jsonl").read_text().splitlines()]
    key = lambda r: r["answer_id"]  # noqa: E731
    assert [(r["answer_id"], r["answer"]) for r in sorted(part, key=key)] == \
        [(r["answer_id"], r["answer"]) for r in sorted(full, key=key)]
