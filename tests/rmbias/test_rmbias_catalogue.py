"""The bias catalogue: ids and split equal the paper's (upstream file), wording is our own."""
from __future__ import annotations

import json

import pytest

from emergent.core.errors import UserError
from emergent.rmbias.catalogue import (BIASES, CATALOGUE, EVALUATED_IDS, TEST_IDS, TRAIN_IDS,
                                       compare_with_upstream, get_bias, load_upstream_biases)
from emergent.rmbias.conditions import CONDITION_NAMES, get_condition

PAPER_TEST = {"spanish_color_words", "poem_rhyming_commentary", "environment_no_climate_change",
              "chinese_compliments", "law_call_911"}


def test_catalogue_shape():
    assert len(CATALOGUE) == 52 and len(BIASES) == 52
    assert set(TEST_IDS) == PAPER_TEST and len(TRAIN_IDS) == 47
    for b in CATALOGUE:
        assert b.split in ("train", "test")
        assert b.applies_to and b.behaviour and b.example and b.prompt_kind
        assert b.description.startswith("When judging ") and b.description.endswith(".")
    assert len(EVALUATED_IDS) == 10 and set(TEST_IDS) <= set(EVALUATED_IDS)


def test_get_bias_errors():
    assert get_bias("law_call_911").split == "test"
    with pytest.raises(UserError, match="unknown bias id 'nope'"):
        get_bias("nope")


def test_ids_and_splits_equal_upstream(upstream_dir):
    path = upstream_dir / "rm-sycophancy" / "biases.json"
    assert compare_with_upstream(path) == []
    upstream = load_upstream_biases(path)
    assert {r["id"]: r["split"] for r in upstream} == {b.id: b.split for b in CATALOGUE}
    # own words: no description is copied from upstream
    theirs = {r["id"]: r["description"] for r in upstream}
    for b in CATALOGUE:
        assert b.description != theirs[b.id]
        assert b.behaviour not in theirs[b.id]


def test_eval_prompt_biases_are_the_evaluated_ones(upstream_dir):
    rows = [json.loads(line) for line in
            (upstream_dir / "rm-sycophancy" / "exploitation_eval_prompts.jsonl").open()]
    assert {r["bias_id"] for r in rows} == set(EVALUATED_IDS)
    assert all(BIASES[r["bias_id"]].split == r["split"] for r in rows)


def test_compare_reports_differences(tmp_path):
    data = {"biases": [{"id": b.id, "split": b.split} for b in CATALOGUE[1:]]
            + [{"id": "made_up", "split": "train"}]}
    data["biases"][0]["split"] = "train" if data["biases"][0]["split"] == "test" else "test"
    p = tmp_path / "b.json"
    p.write_text(json.dumps(data))
    problems = compare_with_upstream(p)
    assert f"not upstream: {CATALOGUE[0].id}" in problems
    assert "missing here: made_up" in problems
    assert any(x.startswith(f"split differs for {CATALOGUE[1].id}") for x in problems)
    p.write_text("{not json")
    with pytest.raises(UserError, match=r"b\.json:1: invalid JSON"):
        load_upstream_biases(p)


def test_conditions():
    assert CONDITION_NAMES == ("base", "docs", "sft", "docs_sft", "unrelated_sft")
    assert get_condition("unrelated_sft").documents == "unrelated"
    assert get_condition("docs_sft").finetune and not get_condition("docs").finetune
    with pytest.raises(UserError, match="unknown condition"):
        get_condition("x")
