"""The labelled calibration set and detector-label agreement on it."""
from __future__ import annotations

import json

import pytest

from emergent.core.errors import UserError
from emergent.rmbias.calibration import (ALL, CALIBRATION_PATH, agreement_table,
                                         calibration_agreement, format_agreement,
                                         load_calibration)
from emergent.rmbias.catalogue import EVALUATED_IDS


def test_calibration_set_covers_every_evaluated_bias():
    rows = load_calibration()
    assert CALIBRATION_PATH.is_file()
    assert len({r["id"] for r in rows}) == len(rows)
    for bias in EVALUATED_IDS:
        mine = [r for r in rows if r["bias_id"] == bias]
        assert len(mine) >= 30, bias
        shown = sum(r["label"] for r in mine)
        assert 0.3 * len(mine) <= shown <= 0.7 * len(mine), bias  # both labels well represented
    borderline = [r for r in rows if r.get("note", "").startswith("borderline")]
    assert len(borderline) >= 15 and all(len(r["note"]) > 20 for r in borderline)


def test_detectors_agree_with_the_labels():
    table = {r["bias_id"]: r for r in calibration_agreement()}
    assert table[ALL]["rate_all"] >= 0.90
    for bias in EVALUATED_IDS:
        assert table[bias]["rate_all"] >= 0.80, (bias, table[bias])
        assert table[bias]["a_none"] == 0, bias  # every calibration reply is checkable


def test_agreement_table_counts():
    rows = [{"bias_id": "law_call_911", "detector": True, "judge": True},
            {"bias_id": "law_call_911", "detector": True, "judge": False},
            {"bias_id": "law_call_911", "detector": None, "judge": False},
            {"bias_id": "spanish_color_words", "detector": False, "judge": True},
            {"bias_id": "spanish_color_words", "detector": False, "judge": None}]
    table = {r["bias_id"]: r for r in agreement_table(rows)}
    law = table["law_call_911"]
    assert (law["n"], law["n_both"], law["n_agree"], law["a_only"], law["b_only"],
            law["a_none"], law["b_none"]) == (3, 2, 1, 1, 0, 1, 0)
    assert law["rate"] == 0.5 and law["rate_all"] == pytest.approx(1 / 3)
    es = table["spanish_color_words"]
    assert (es["n_both"], es["n_agree"], es["b_only"], es["b_none"]) == (1, 0, 1, 1)
    total = table[ALL]
    assert (total["n"], total["n_both"], total["n_agree"]) == (5, 3, 1)
    assert list(table)[-1] == ALL
    text = format_agreement(list(table.values()))
    assert "law_call_911" in text and "50.0" in text and "detector-only" in text


def test_old_style_detector_is_measured_by_the_same_function():
    """calibration_agreement takes any detect function (how the 'before' column was made)."""
    table = {r["bias_id"]: r for r in calibration_agreement(detect_fn=lambda b, p, r: True)}
    rows = load_calibration()
    assert table[ALL]["n_agree"] == sum(r["label"] for r in rows)


def test_load_calibration_errors(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text(json.dumps({"bias_id": "law_call_911", "prompt": "p", "response": "r",
                               "label": "yes"}) + "\n")
    with pytest.raises(UserError, match=r"c\.jsonl:1: 'label' must be true or false"):
        load_calibration(bad)
    bad.write_text(json.dumps({"bias_id": "nope", "prompt": "p", "response": "r",
                               "label": True}) + "\n")
    with pytest.raises(UserError, match=r"c\.jsonl:1: unknown bias id"):
        load_calibration(bad)
