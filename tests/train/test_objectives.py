"""The objective interface: registry, config checks, row arithmetic, and a loop without branches."""
import ast
import re
import typing
from pathlib import Path

import pytest

from emergent.core.config import DataConfig, TrainConfig, TrainRecipeConfig
from emergent.core.errors import UserError
from emergent.data.chat_data import Example
from emergent.train import objectives

TRAIN = Path(objectives.__file__).parent


def cfg(objective="sft", fmt="chat", **train):
    return TrainRecipeConfig(data=DataConfig(format=fmt),
                             train=TrainConfig(objective=objective, **train))


def test_every_configurable_objective_is_registered():
    hints = typing.get_type_hints(TrainConfig)
    assert set(typing.get_args(hints["objective"])) == set(objectives.OBJECTIVES)
    assert isinstance(objectives.make(cfg("sft", "text")), objectives.SFT)
    assert isinstance(objectives.make(cfg("dpo", "preference")), objectives.DPO)


@pytest.mark.parametrize("objective,fmt,message", [
    ("sft", "preference", "train.objective sft needs data.format chat or text (got preference)"),
    ("dpo", "chat", "train.objective dpo needs data.format preference (got chat)"),
])
def test_objective_and_data_format_must_agree(objective, fmt, message):
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        objectives.make(cfg(objective, fmt))


def test_dpo_needs_a_positive_beta():
    with pytest.raises(UserError, match="train.dpo_beta must be > 0, got 0.0"):
        objectives.make(cfg("dpo", "preference", dpo_beta=0.0))


def test_rows_lengths_and_trained_tokens():
    sft, dpo = objectives.make(cfg()), objectives.make(cfg("dpo", "preference"))
    row = ([1, 2, 3, 4], [1, 0, 1, 1])  # the first position never counts: nothing predicts it
    pair = (([1, 2, 3], [0, 1, 1]), ([1, 2, 3, 4, 5], [0, 0, 0, 1, 1]))
    assert (sft.row_length(row), sft.trained_tokens(row), sft.rows_per_example) == (4, 2, 1)
    assert (dpo.row_length(pair), dpo.trained_tokens(pair), dpo.rows_per_example) == (5, 4, 2)
    ids, attn, labels = dpo.collate([pair], pad_id=0)
    assert ids.shape == (2, 5) and labels[1].tolist() == [-100, -100, -100, 4, 5]


def test_heldout_records_keep_the_rejected_reply_only_for_pairs():
    ex = Example(messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}),
                 line=3, rejected=({"role": "assistant", "content": "b"},))
    assert objectives.make(cfg()).heldout_record(ex) == {"messages": list(ex.messages), "line": 3}
    assert objectives.make(cfg("dpo", "preference")).heldout_record(ex)["rejected"] == \
        [{"role": "assistant", "content": "b"}]


def _functions(path):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_loop_has_no_objective_branches():
    src = (TRAIN / "loop.py").read_text()
    names = {n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)}
    consts = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant)}
    assert "is_dpo" not in names and "dpo" not in names and not {"dpo", "sft"} & consts
    assert "from emergent.train import dpo" not in src and ".objective ==" not in src


@pytest.mark.parametrize("path", sorted(TRAIN.glob("*.py")), ids=lambda p: p.name)
def test_train_functions_are_short_and_import_the_package_at_module_level(path):
    for fn in _functions(path):
        assert fn.end_lineno - fn.lineno + 1 <= 60, f"{path.name}: {fn.name} is too long"
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("emergent"), (path.name, fn.name)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("emergent") for a in node.names), fn.name
