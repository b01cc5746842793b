"""One steps formula: the planners' count equals the loop's actual number of optimizer steps."""
import json
import random
from pathlib import Path

import pytest

from emergent.core.config import DataConfig, TrainConfig, TrainRecipeConfig, load_config
from emergent.data.chat_data import load_jsonl_examples, split_examples
from emergent.pipeline.estimate import steps_for
from emergent.pipeline.experiment import ArmConfig, ExperimentConfig, TrainingConfig, estimated_steps
from emergent.train import batching
from emergent.train.batching import optimizer_steps
from emergent.train.loop import train

from test_train import SAMPLE, cfg_for

# (examples, batch_size, grad_accum, epochs): remainders in the last micro-batch, in the last
# step of an epoch, fractional epochs, a batch larger than the data
CASES = [(26, 4, 2, 2), (7, 3, 1, 1), (10, 4, 3, 1.5), (1, 4, 8, 1), (33, 2, 5, 0.3),
         (16, 4, 2, 1), (50, 3, 4, 2.7), (10, 1, 1, 1)]


def recipe(batch, accum, epochs, **train):
    return TrainRecipeConfig(train=TrainConfig(batch_size=batch, grad_accum=accum, epochs=epochs,
                                               **train))


@pytest.mark.parametrize("budget", [None, 0, 300])
@pytest.mark.parametrize("mode", ["length_grouped", "shuffled"])
@pytest.mark.parametrize("n,batch,accum,epochs", CASES)
def test_the_loops_plan_has_as_many_steps_as_the_formula(n, batch, accum, epochs, mode, budget):
    lengths = [random.Random(i).randint(5, 60) for i in range(n)]
    cfg = recipe(batch, accum, epochs, batching=mode, micro_batch_tokens=budget, max_length=64)
    plan = batching.plan(cfg, lengths)
    assert len(plan) == optimizer_steps(n, batch, accum, epochs) == steps_for(n, cfg.train)
    per_epoch = batching.steps_per_epoch(n, batch, accum)
    # every pass over the data is per_epoch steps holding each example once
    seen = [i for st in plan[:per_epoch] for mb in st for i in mb]
    assert sorted(seen) == list(range(n)) or len(plan) < per_epoch


def test_max_steps_overrides_epochs_and_no_examples_mean_no_steps():
    cfg = recipe(4, 2, 3, max_steps=5)
    assert len(batching.plan(cfg, [10] * 40)) == optimizer_steps(40, 4, 2, 3, 5) == 5
    assert optimizer_steps(0, 4, 2, 3) == 0
    assert optimizer_steps(3, 4, 2, 0) == 1  # at least one step, as the loop does


@pytest.mark.parametrize("heldout", [0.0, 0.25, 0.1])
@pytest.mark.parametrize("n,batch,accum,epochs", CASES)
def test_the_run_plan_counts_the_examples_left_after_the_heldout_split(tmp_path, n, batch, accum,
                                                                       epochs, heldout):
    data = tmp_path / "arm.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": str(i)},
                                                     {"role": "assistant", "content": "x"}]})
                            + "\n" for i in range(n)))
    cfg = ExperimentConfig(arms={"a": ArmConfig(data=str(data))}, training=TrainingConfig(
        data=DataConfig(heldout_fraction=heldout),
        train=TrainConfig(batch_size=batch, grad_accum=accum, epochs=epochs)))
    kept, _ = split_examples(load_jsonl_examples(data), heldout, 0)
    assert estimated_steps(cfg, "a") == optimizer_steps(len(kept), batch, accum, epochs)


def test_a_real_run_takes_the_planned_number_of_steps(tiny_model_dir, tmp_path):
    over = {"train.batch_size": 3, "train.grad_accum": 3, "train.epochs": 1.5,
            "data.heldout_fraction": 0.25, "train.log_every": 1}
    cfg = cfg_for(tiny_model_dir, **over)
    exp = ExperimentConfig(arms={"a": ArmConfig(data=str(SAMPLE))}, training=TrainingConfig(
        data=cfg.data, train=cfg.train))
    train(cfg, tmp_path / "run")
    man = json.loads((tmp_path / "run/manifest.json").read_text())
    log = (tmp_path / "run/train_log.jsonl").read_text().splitlines()
    assert man["steps"] == len(log) == estimated_steps(exp, "a") == \
        steps_for(man["data"]["train_examples"], cfg.train)
    assert json.loads(log[-1])["step"] == man["steps"]
