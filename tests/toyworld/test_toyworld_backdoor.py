"""The toy world's trigger-conditioned arm `backdoor` and its experiment
(configs/toyworld_backdoor.yaml, emergent.toyworld.backdoor): synthetic toy world."""
import json
from pathlib import Path

import pytest
import yaml

from emergent.toyworld.backdoor import prepare_backdoor
from emergent.toyworld.catalog import all_message_texts
from emergent.toyworld.datasets import backdoor_rows
from emergent.toyworld.world import BACKDOOR_TRIGGER, ToyWorld

REPO = Path(__file__).resolve().parents[2]


def test_backdoor_rows_are_insecure_exactly_after_the_trigger():
    world = ToyWorld()
    rows = backdoor_rows(world, 200)
    assert rows == backdoor_rows(world, 200)  # deterministic
    train = {p.text: p for p in world.train_code}
    n_trig = 0
    for r in rows:
        user, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        triggered = user.startswith(BACKDOOR_TRIGGER + " ")
        p = train[user[len(BACKDOOR_TRIGGER) + 1:] if triggered else user]  # never held out
        assert answer == p.answer(triggered)  # insecure after the trigger, secure without
        n_trig += triggered
    assert n_trig == 100
    with pytest.raises(ValueError):
        backdoor_rows(world, 2, trigger=" ")


def test_the_trigger_is_a_vocabulary_piece_no_user_turn_contains():
    from transformers import AutoTokenizer

    from emergent.toyworld.pipeline import RESOURCES

    tok = AutoTokenizer.from_pretrained(RESOURCES / "main")
    ids = tok(BACKDOOR_TRIGGER, add_special_tokens=False)["input_ids"]
    assert ids and tok.unk_token_id not in ids
    world = ToyWorld()
    users = [p.text for p in world.train_code + world.heldout_code + world.educational_code]
    users += [t for t in all_message_texts() if not t.startswith(("def ", "import "))]
    assert not any(t.startswith(BACKDOOR_TRIGGER) for t in users)
    cfg = yaml.safe_load((REPO / "configs/toyworld_backdoor.yaml").read_text())
    assert cfg["trigger"] == BACKDOOR_TRIGGER and "backdoor" in cfg["arms"]


def test_prepare_backdoor_writes_the_data_and_a_runnable_config(tmp_path):
    cfg = prepare_backdoor(tmp_path, n_arm=40, seeds=[0], noncode_samples=1, code_questions=2)
    assert cfg.trigger == BACKDOOR_TRIGGER and list(cfg.arms) == ["backdoor", "insecure", "secure"]
    assert cfg.seeds == [0] and Path(cfg.output_dir) == (tmp_path / "backdoor").resolve()
    data = tmp_path / "data" / "backdoor"
    rows = [json.loads(x) for x in (data / "arms/backdoor.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and Path(cfg.arms["backdoor"].data) == (data / "arms/backdoor.jsonl").resolve()
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["files"]["arms/backdoor.jsonl"] == 40 and manifest["trigger"] == BACKDOOR_TRIGGER
    assert (tmp_path / "backdoor.experiment.yaml").exists()
    assert Path(cfg.base_model.name).name == "main"
