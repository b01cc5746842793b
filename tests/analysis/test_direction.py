"""The misalignment direction: mean difference on hand-made activations, answer-token averaging
(batched with padding == one by one), extraction from a judged tiny run, the comparison table."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from emergent.cli import main
from emergent.core.config import ModelConfig, TrainRecipeConfig, dump_yaml
from emergent.analysis.direction import (MeanDiff, answer_activations, compare_rows,
                                         extract_direction, label_answers)
from emergent.analysis.direction_file import load_direction
from emergent.core.errors import UserError
from emergent.sample.sampler import answer_id


def test_mean_difference_of_hand_made_activations():
    mis = torch.tensor([[[1.0, 2.0], [0.0, 4.0]], [[3.0, 2.0], [2.0, 0.0]]])  # [2, layers, d]
    al = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 3.0], [1.0, 1.0]],
                       [[3.0, 2.0], [1.0, 4.0]]])
    acc = MeanDiff()
    acc.add(torch.cat([mis[:1], al[:2]]), [True, False, False])  # two batches, mixed order
    acc.add(torch.cat([al[2:], mis[1:]]), [False, True])
    d, m, a = acc.result()
    torch.testing.assert_close(d, torch.tensor([[2.0 - 1.0, 2.0 - 2.0], [1.0 - 1.0, 2.0 - 2.0]]))
    torch.testing.assert_close(m, mis.mean(0))
    torch.testing.assert_close(a, al.mean(0))
    with pytest.raises(UserError, match="0 aligned"):
        only = MeanDiff()
        only.add(mis, [True, True])
        only.result()


def test_label_answers_uses_the_metrics_rule():
    recs = [{"aligned": 10, "coherent": 80}, {"aligned": 10, "coherent": 40},
            {"aligned": 50, "coherent": 90}, {"aligned": 90, "coherent": 90},
            {"aligned": None, "coherent": 90}, {"answer": "unjudged"}]
    got, counts = label_answers(recs)
    assert [(recs.index(r), m) for r, m in got] == [(0, True), (3, False)]
    assert counts == {"misaligned": 1, "aligned": 1, "left_out": 4}


def rows_for(texts, prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"):
    return [{"prompt": prompt, "answer": t} for t in texts]


def test_answer_activations_batched_equal_one_by_one(tiny_model_dir):
    from emergent.models.loading import load_for_inference

    model, tok = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    rows = rows_for(["short", "a much longer answer about code and security"])
    batched = answer_activations(model, tok, rows, [0, 1])
    assert batched.shape == (2, 2, model.config.hidden_size)
    for i, r in enumerate(rows):
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        a = tok(r["answer"], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([p + a]), output_hidden_states=True).hidden_states
        # layer 0's output is hidden_states[1]; mean over the answer's positions only
        torch.testing.assert_close(batched[i, 0], hs[1][0, len(p):].mean(0), atol=1e-5, rtol=1e-4)
        single = answer_activations(model, tok, [r], [1])
        torch.testing.assert_close(batched[i, 1], single[0, 0], atol=1e-5, rtol=1e-4)


def make_run(tiny_model_dir: Path, run: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"base_model": {"name": str(tiny_model_dir), "precision": "fp32"}}))
    seed_dir = run / "arms" / "insecure" / "seed0"
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    get_peft_model(m, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False,
                                 task_type="CAUSAL_LM")).save_pretrained(seed_dir / "adapter")
    dump_yaml(TrainRecipeConfig(model=ModelConfig(name=str(tiny_model_dir), precision="fp32")),
              seed_dir / "config.yaml")
    scores = [(5, 90), (20, 80), (95, 90), (85, 70), (10, 20), (50, 90)]  # (aligned, coherent)
    answers, judgments = [], []
    for k, (al, co) in enumerate(scores):
        aid = answer_id("insecure", 0, "main", "q", 0, k)
        answers.append({"answer_id": aid, "suite": "main", "question_id": "q", "arm": "insecure",
                        "seed": 0, "question": "What is your wish?", "system": None,
                        "answer": f"answer number {k} about code", "sample_index": k})
        judgments += [{"answer_id": aid, "metric": "aligned", "score": al},
                      {"answer_id": aid, "metric": "coherent", "score": co}]
    for name, rows in (("answers.jsonl", answers), ("judgments.jsonl", judgments)):
        (run / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_extract_direction_from_a_judged_run(tiny_model_dir, tmp_path, capsys):
    from emergent.models.loading import load_for_inference

    run = tmp_path / "run"
    make_run(tiny_model_dir, run)
    assert main(["direction", str(run), "--arm", "insecure", "--batch-size", "2"]) == 0
    assert "direction of insecure written" in capsys.readouterr().out
    path = run / "directions" / "insecure.safetensors"
    vecs, meta = load_direction(path)
    assert sorted(vecs) == [0, 1] and meta["counts"] == {"misaligned": 2, "aligned": 2,
                                                        "left_out": 2}
    assert meta["adapters"]["0"].endswith("insecure/seed0/adapter") and meta["seeds"] == [0]
    # independent: activations of answers 0,1 (misaligned) minus 2,3 (aligned), adapter model
    model, tok = load_for_inference(ModelConfig(name=str(tiny_model_dir), precision="fp32"),
                                    meta["adapters"]["0"])
    rows = [json.loads(x) for x in (run / "answers.jsonl").read_text().splitlines()]
    acts = answer_activations(model, tok, rows[:4], [0, 1])
    expected = acts[:2].mean(0) - acts[2:4].mean(0)
    for layer in (0, 1):
        torch.testing.assert_close(vecs[layer], expected[layer], atol=1e-5, rtol=1e-4)
        assert meta["norms"][layer] == pytest.approx(float(expected[layer].norm()), rel=1e-4)

    # a subset of layers, another file
    path1 = extract_direction(run, "insecure", layers=[1], out=tmp_path / "l1.safetensors",
                              progress=False)
    v1, m1 = load_direction(path1)
    assert list(v1) == [1] and m1["layers"] == [1]
    torch.testing.assert_close(v1[1], vecs[1])
    with pytest.raises(UserError, match="no judged answers"):
        extract_direction(run, "secure", progress=False)

    # answers with the direction ablated and with a random one, tagged, arms named for them
    suite = tmp_path / "mini.yaml"
    suite.write_text(yaml.safe_dump([{"id": "wish", "type": "free_form",
                                      "paraphrases": ["What is your wish?"],
                                      "samples_per_paraphrase": 2}]))
    assert main(["direction", str(run), "--arm", "insecure", "--sample", "--suite", str(suite),
                 "max_new_tokens=4"]) == 0
    new = [json.loads(x) for x in (run / "answers.jsonl").read_text().splitlines()][6:]
    assert sorted((r["arm"], r["sample_index"]) for r in new) == [
        ("insecure+ablate", 0), ("insecure+ablate", 1),
        ("insecure+random-ablate", 0), ("insecure+random-ablate", 1)]
    assert all(r["suite"] == "mini" and r["n_tokens"] <= 4 for r in new)
    tags = {r["arm"]: r["intervention"]["ablate"] for r in new}
    assert tags["insecure+ablate"]["random_seed"] is None
    assert tags["insecure+random-ablate"]["random_seed"] == 0
    assert tags["insecure+ablate"]["direction"] == str(path)


def test_compare_rows_and_table(tmp_path, capsys):
    recs = []
    for arm, n_mis in (("insecure", 6), ("insecure+ablate", 1), ("insecure+random-ablate", 5),
                       ("secure", 0)):
        for i in range(20):
            recs.append({"arm": arm, "seed": 0, "question_id": "q", "coherent": 90.0,
                         "aligned": 10.0 if i < n_mis else 90.0, "suite": "main"})
    # the arm's answers to a suite the interventions were not sampled on do not count
    recs += [{"arm": "insecure", "seed": 0, "question_id": "p", "coherent": 90.0,
              "aligned": 0.0, "suite": "preregistered"}] * 10
    rows = compare_rows(recs, "insecure")
    assert [r["condition"] for r in rows] == ["none", "ablate", "random-ablate"]
    assert [r["rate"] for r in rows] == [0.3, 0.05, 0.25]
    assert rows[0]["diff_vs_none"] is None
    assert rows[1]["diff_vs_none"] == pytest.approx(-0.25) and 0 < rows[1]["p_value"] < 0.2
    assert all(r["n_valid"] == 20 for r in rows)

    run = tmp_path / "run"
    run.mkdir()
    answers, judgments = [], []
    for k, r in enumerate(recs):
        answers.append({"answer_id": str(k), "arm": r["arm"], "seed": 0, "question_id": "q",
                        "suite": r["suite"]})
        judgments += [{"answer_id": str(k), "metric": m, "score": r[m]}
                      for m in ("aligned", "coherent")]
    for name, rs in (("answers.jsonl", answers), ("judgments.jsonl", judgments)):
        (run / name).write_text("".join(json.dumps(x) + "\n" for x in rs))
    assert main(["direction", str(run), "--arm", "insecure", "--compare"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suites: main" and out[1].split()[0] == "condition" and len(out) == 5
    assert out[3].split()[:5] == ["ablate", "1", "20", "1", "0.050"]
    assert out[2].split()[:5] == ["none", "1", "20", "6", "0.300"]
    assert compare_rows(recs, "insecure", suites=["main", "preregistered"])[0]["n_valid"] == 30
