"""lm-eval capability evaluation on the tiny model: a custom multiple-choice task from a local
JSONL (no hub), scored for the base model and an adapter of a run directory, rows in
capabilities.jsonl; the numbers are checked against log-likelihoods computed here directly."""
import json
from pathlib import Path

import pytest
import yaml

from emergent.cli import main
from emergent.core.config import ModelConfig, TrainRecipeConfig, dump_yaml
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.core.rundir import Unit, run_units
from emergent.evals.capabilities import evaluate_units, result_rows

TASK_YAML = """task: toy_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
DOCS = [{"question": f"What is {i} plus {j}?", "choices": [str(i + j), str(i * j + 7), "no", "42"],
         "answer": (i + j) % 4} for i in range(4) for j in range(3)]


def make_adapter(base_dir: Path, train_dir: Path, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved like `emergent train` does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=32, target_modules="all-linear",
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(train_dir / "adapter")
    dump_yaml(TrainRecipeConfig(model=ModelConfig(name=str(base_dir), precision="fp32")),
              train_dir / "config.yaml")
    return train_dir / "adapter"


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"base_model": {"name": str(tiny_model_dir), "precision": "fp32"}}))
    make_adapter(tiny_model_dir, run / "arms" / "insecure" / "seed0")
    return run


def direct_acc(model_cfg: ModelConfig, adapter, docs) -> tuple[float, list]:
    """Accuracy computed here: argmax over choices of the summed log-probability of
    ' ' + choice after the prompt (lm-eval's split of context and continuation tokens)."""
    import torch

    from emergent.models.loading import load_for_inference

    model, tok = load_for_inference(model_cfg, adapter)
    hits, lls = 0, []
    for d in docs:
        ctx = f"Question: {d['question']}\nAnswer:"
        scores = []
        for c in d["choices"]:
            whole = tok(ctx + " " + c, add_special_tokens=False)["input_ids"]
            n_ctx = len(tok(ctx, add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
            scores.append(sum(float(logp[i - 1, whole[i]]) for i in range(n_ctx, len(whole))))
        lls.append(scores)
        hits += int(max(range(len(scores)), key=scores.__getitem__) == d["answer"])
    return hits / len(docs), lls


def test_custom_task_on_run_lands_in_table(run_dir, tmp_path, capsys):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "toy.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tasks / "toy_arith.yaml").write_text(TASK_YAML.format(data=tasks / "toy.jsonl"))

    rc = main(["capabilities", str(run_dir), "--tasks", "toy_arith", "--include-path", str(tasks),
               "--batch-size", "4"])
    assert rc == 0
    rows = read_jsonl(run_dir / "capabilities.jsonl")
    assert {(r["arm"], r["seed"]) for r in rows} == {("base", 0), ("insecure", 0)}
    by_arm = {r["arm"]: r for r in rows if r["metric"] == "acc"}
    assert len(by_arm) == 2
    for r in by_arm.values():
        assert r["task"] == "toy_arith" and r["filter"] == "none" and r["n_samples"] == len(DOCS)
        assert r["limit"] is None and r["lm_eval_version"] and r["stderr"] is not None
        assert 0.0 <= r["value"] <= 1.0
    assert by_arm["insecure"]["adapter"].endswith("arms/insecure/seed0/adapter")
    assert by_arm["base"]["adapter"] is None

    mcfg = ModelConfig(name=by_arm["base"]["model"], precision="fp32")
    base_acc, base_ll = direct_acc(mcfg, None, DOCS)
    ad_acc, ad_ll = direct_acc(mcfg, by_arm["insecure"]["adapter"], DOCS)
    assert base_ll != ad_ll  # the adapter really changes the model
    assert by_arm["base"]["value"] == pytest.approx(base_acc)
    assert by_arm["insecure"]["value"] == pytest.approx(ad_acc)
    assert "toy_arith" in capsys.readouterr().out

    # a rerun evaluates nothing (rows already there); a new limit is a new row set
    units = run_units(run_dir)
    assert evaluate_units(units, ["toy_arith"], run_dir / "capabilities.jsonl",
                          include_path=str(tasks), progress=False) == 0
    assert evaluate_units(units[:1], ["toy_arith"], run_dir / "capabilities.jsonl",
                          include_path=str(tasks), limit=3, progress=False) >= 1
    lim = [r for r in read_jsonl(run_dir / "capabilities.jsonl") if r["limit"] == 3]
    assert lim and all(r["n_samples"] == 3 and r["arm"] == "base" for r in lim)


def test_run_units_follow_the_training_quantization(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"base_model": {"name": "org/model", "precision": "bf16", "quantization": "none"}}))
    for arm in ("insecure", "secure"):
        d = tmp_path / "arms" / arm / "seed3"
        (d / "adapter").mkdir(parents=True)
        dump_yaml(TrainRecipeConfig(model=ModelConfig(name="org/model", quantization="4bit")),
                  d / "config.yaml")
    units = run_units(tmp_path)
    assert [(u.arm, u.seed) for u in units] == [("base", 0), ("insecure", 3), ("secure", 3)]
    assert all(u.model.quantization == "4bit" and u.model.name == "org/model" for u in units)
    assert units[0].adapter is None and units[1].adapter.endswith("insecure/seed3/adapter")
    assert [u.arm for u in run_units(tmp_path, ["secure"])] == ["secure"]


def test_code_tasks_need_the_flag(tmp_path):
    unit = Unit("base", 0, None, ModelConfig(name="never-loaded"))
    with pytest.raises(UserError, match="allow-code-execution"):
        evaluate_units([unit], ["humaneval"], tmp_path / "c.jsonl")
    assert main(["capabilities", str(tmp_path / "nothing")]) == 2


def test_result_rows_flatten_groups_and_stderr():
    res = {"results": {"mmlu": {"acc,none": 0.5, "acc_stderr,none": 0.01, "alias": "mmlu"},
                       "mmlu_law": {"acc,none": 0.25, "acc_stderr,none": "N/A"}},
           "groups": {"mmlu": {"acc,none": 0.5, "acc_stderr,none": 0.01}},
           "n-samples": {"mmlu_law": {"original": 10, "effective": 4}},
           "higher_is_better": {"mmlu_law": {"acc": True}}}
    rows = result_rows(res, "mmlu", Unit("insecure", 1, "/a", ModelConfig(name="m")), 4)
    got = {(r["task"], r["metric"]): (r["value"], r["stderr"]) for r in rows}
    assert got == {("mmlu", "acc"): (0.5, 0.01), ("mmlu_law", "acc"): (0.25, None)}
    law = next(r for r in rows if r["task"] == "mmlu_law")
    assert law["n_samples"] == 4 and law["higher_is_better"] is True and law["requested"] == "mmlu"


def test_emergent_run_includes_capabilities(tiny_model_dir, tmp_path):
    """`capabilities.tasks` in an experiment config adds an lm-eval stage whose rows land in the
    run's capabilities.jsonl (base + each adapter) and in the all-results figure's table."""
    from emergent.pipeline.experiment import load_experiment
    from emergent.pipeline.run import run_experiment

    data = tmp_path / "toy_arith.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "toy_arith.yaml").write_text(TASK_YAML.format(data=data))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump([{"id": "q", "type": "free_form", "paraphrases": ["Hi?"],
                                      "samples_per_paraphrase": 1}]))
    sample = Path(__file__).resolve().parents[2] / "src/emergent/resources/sample_chat.jsonl"
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "base_model": {"name": str(tiny_model_dir), "precision": "fp32"},
        "arms": {"insecure": {"data": str(sample), "max_examples": 8}}, "seeds": [0],
        "training": {"lora": {"r": 2, "alpha": 4, "target_modules": "all-linear"},
                     "train": {"batch_size": 4, "grad_accum": 1, "max_length": 256, "lr": 1e-3}},
        "suites": {str(suite): {}}, "sampling": {"max_new_tokens": 2},
        "judge": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None},
        "capabilities": {"tasks": ["toy_arith"], "include_path": str(tasks)},
        "output_dir": str(tmp_path / "run")}))
    run = run_experiment(load_experiment(cfg_path), progress=False)
    rows = read_jsonl(run.dir / "capabilities.jsonl")
    assert {(r["arm"], r["seed"]) for r in rows if r["metric"] == "acc"} == {("base", 0), ("insecure", 0)}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["metric"] == "acc")
    assert run.done("capabilities")
    table = (run.dir / "figures" / "all_results.csv").read_text()
    assert "toy_arith" in table
