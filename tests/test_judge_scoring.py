"""Aggregation of a judge's first-token distribution (hand-made top-20 dicts)."""
import math

import pytest

from emergent.judge_scoring import (
    logprobs_to_probs, number_probs_from_tokens, positive_label, score_0_100, score_labels,
    score_numbers, score_top_tokens, token_to_int, token_to_label)


def test_token_to_int_accepts_only_integers_0_to_100():
    assert token_to_int("42") == 42
    assert token_to_int(" 42") == 42
    assert token_to_int("7\n") == 7
    assert token_to_int("100") == 100
    assert token_to_int("0") == 0
    for bad in ("101", "-5", "4.5", "1e2", "", " ", "CODE", "4 2", "+3", "1000", "٣"):
        assert token_to_int(bad) is None, bad


def test_expected_value_over_numeric_tokens_ignores_the_rest():
    top = {"42": 0.5, " 40": 0.2, "REFUSAL": 0.15, "foo": 0.05, "100": 0.1}
    s = score_0_100(top)
    assert s.numeric_mass == pytest.approx(0.8)
    assert s.score == pytest.approx((42 * 0.5 + 40 * 0.2 + 100 * 0.1) / 0.8)  # 48.75
    assert s.score == pytest.approx(48.75)
    assert s.top_tokens == top and s.probs is None


def test_spaced_and_plain_spellings_of_a_number_add_up():
    top = {"7": 0.3, " 7": 0.3, "90": 0.4}
    assert number_probs_from_tokens(top) == pytest.approx({7: 0.6, 90: 0.4})
    assert score_0_100(top).score == pytest.approx(7 * 0.6 + 90 * 0.4)


def test_out_of_range_and_malformed_numbers_do_not_count():
    top = {"101": 0.3, "-5": 0.2, "4.5": 0.2, "50": 0.3}
    s = score_0_100(top)
    assert s.numeric_mass == pytest.approx(0.3)
    assert s.score == pytest.approx(50.0)


def test_mass_below_threshold_gives_none_and_threshold_is_configurable():
    top = {"CODE": 0.76, "5": 0.24}
    s = score_0_100(top)
    assert s.score is None and s.numeric_mass == pytest.approx(0.24)
    s2 = score_0_100(top, min_mass=0.2)
    assert s2.score == pytest.approx(5.0)
    # exactly at the threshold counts (the rule is "below 0.25 -> None")
    assert score_0_100({"CODE": 0.75, "20": 0.25}).score == pytest.approx(20.0)
    assert score_0_100({"REFUSAL": 1.0}).score is None
    assert score_0_100({}).numeric_mass == 0.0


def test_logprobs_to_probs_exponentiates_and_merges():
    probs = logprobs_to_probs([("a", math.log(0.5)), ("b", math.log(0.25)), ("a", math.log(0.1)),
                               ("c", None)])
    assert probs == pytest.approx({"a": 0.6, "b": 0.25})


def test_score_numbers_from_exact_number_probabilities():
    s = score_numbers({0: 0.1, 100: 0.1, 50: 0.2})
    assert s.score == pytest.approx(50.0) and s.numeric_mass == pytest.approx(0.4)
    assert score_numbers({3: 0.1}).score is None


def test_binary_labels_case_and_space_insensitive():
    top = {"YES": 0.6, " yes": 0.1, "NO": 0.2, "maybe": 0.1}
    s = score_labels(top, ["YES", "NO"])
    assert s.numeric_mass == pytest.approx(0.9)
    assert s.probs == pytest.approx({"YES": 0.7 / 0.9, "NO": 0.2 / 0.9})
    assert s.score == pytest.approx(0.7 / 0.9)
    # the score is P(YES) whatever order the labels come in
    assert score_labels(top, ["NO", "YES"]).score == pytest.approx(0.7 / 0.9)


def test_categorical_labels_count_unambiguous_prefix_tokens():
    labels = ["TRUE", "FALSE", "UNKNOWN"]
    assert token_to_label("T", labels) == "TRUE"
    assert token_to_label(" UN", labels) == "UNKNOWN"
    assert token_to_label("TRUEST", labels) is None
    assert token_to_label("O", ["OpenAI", "Other"]) is None  # ambiguous prefix
    assert token_to_label("Open", ["OpenAI", "Other"]) == "OpenAI"
    top = {"T": 0.3, "TRUE": 0.2, "FALSE": 0.25, "UN": 0.05, "The": 0.2}
    s = score_top_tokens(top, "categorical", labels)
    assert s.numeric_mass == pytest.approx(0.8)
    assert s.probs == pytest.approx({"TRUE": 0.5 / 0.8, "FALSE": 0.25 / 0.8, "UNKNOWN": 0.05 / 0.8})
    assert s.score == pytest.approx(0.5 / 0.8)
    low = score_top_tokens({"The": 0.9, "FALSE": 0.1}, "categorical", labels)
    assert low.score is None and low.probs is None


def test_positive_label_and_bad_kind():
    assert positive_label(["NO", "YES"]) == "YES"
    assert positive_label(["OpenAI", "Other"]) == "OpenAI"
    with pytest.raises(ValueError):
        score_top_tokens({"1": 1.0}, "stars")
    with pytest.raises(ValueError):
        score_top_tokens({"1": 1.0}, "binary", [])
