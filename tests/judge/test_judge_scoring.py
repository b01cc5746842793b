"""Aggregation of a judge's first-token distribution (hand-made top-20 dicts)."""
import math

import pytest

from emergent.judge.scoring import (
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


# ------------------------------------------------------------------ label order, edges, kinds

@pytest.mark.parametrize("labels", [["FALSE", "TRUE"], ["TRUE", "FALSE"],
                                    ["UNKNOWN", "FALSE", "TRUE"], ["FALSE", "UNKNOWN", "TRUE"]])
def test_true_false_score_is_p_true_whatever_the_label_order(labels):
    top = {"FALSE": 0.3, " false": 0.1, "TRUE": 0.2, "T": 0.1, "UNKNOWN": 0.1, "?": 0.2}
    s = score_labels(top, labels)
    mass = 0.4 + 0.3 + (0.1 if "UNKNOWN" in labels else 0.0)
    assert s.numeric_mass == pytest.approx(mass)
    assert s.score == pytest.approx(0.3 / mass)  # P(TRUE), never P(first label)
    assert s.probs["FALSE"] == pytest.approx(0.4 / mass)
    assert list(s.probs) == labels
    assert positive_label(labels) == "TRUE"
    assert score_top_tokens(top, "binary", labels).score == pytest.approx(0.3 / mass)


def test_positive_label_is_case_insensitive_and_defaults_to_the_first():
    assert positive_label(["false", "true"]) == "true"
    assert positive_label(["no", "yes"]) == "yes"
    assert positive_label(["B", "A"]) == "B"
    s = score_labels({"B": 0.25, "A": 0.75}, ["B", "A"])
    assert s.score == pytest.approx(0.25)


def test_token_to_label_exact_match_wins_over_a_longer_label_and_blank_is_none():
    assert token_to_label("NO", ["NO", "NONE"]) == "NO"  # a prefix of NONE too
    assert token_to_label(" none ", ["NO", "NONE"]) == "NONE"
    assert token_to_label("N", ["NO", "NONE"]) is None
    assert token_to_label(" ", ["YES"]) is None and token_to_label("", ["YES"]) is None
    assert token_to_label("Y", ["YES"]) == "YES"


def test_label_mass_exactly_at_the_threshold_counts_and_zero_mass_is_none():
    from emergent.judge.scoring import score_label_mass

    s = score_label_mass({"YES": 0.125, "NO": 0.125}, ["YES", "NO"])  # exactly 0.25
    assert s.score == pytest.approx(0.5) and s.numeric_mass == 0.25
    assert score_label_mass({"YES": 0.125, "NO": 0.124}, ["YES", "NO"]).score is None
    low = score_label_mass({"YES": 0.1}, ["YES", "NO"])
    assert (low.score, low.numeric_mass, low.probs, low.top_tokens) == (None, 0.1, None, {})
    # no mass at all: None even when no minimum is asked for (no division by zero)
    zero = score_label_mass({}, ["YES", "NO"], min_mass=0.0)
    assert zero.score is None and zero.numeric_mass == 0.0
    ok = score_label_mass({"YES": 0.5}, ["YES", "NO"], top_tokens={"YES": 0.5})
    assert ok.top_tokens == {"YES": 0.5} and ok.probs == {"YES": 1.0, "NO": 0.0}


def test_score_numbers_keeps_only_0_to_100_and_zero_mass_is_none():
    s = score_numbers({-1: 0.5, 101: 0.5, 50: 0.25, 0: 0.25})
    assert s.numeric_mass == pytest.approx(0.5)
    assert s.score == pytest.approx(25.0)
    assert score_numbers({100: 0.5}).score == pytest.approx(100.0)
    zero = score_numbers({}, min_mass=0.0)
    assert zero.score is None and zero.numeric_mass == 0.0
    assert score_numbers({7: 0.3}, top_tokens={"7": 0.3}).top_tokens == {"7": 0.3}
    assert score_numbers({7: 0.1}).top_tokens == {}


def test_score_top_tokens_dispatches_on_kind():
    top = {"40": 0.5, "60": 0.5}
    s = score_top_tokens(top, "0_100")
    assert s.score == pytest.approx(50.0) and s.probs is None and s.top_tokens == top
    assert score_top_tokens(top, "0_100", min_mass=0.9).score == pytest.approx(50.0)
    assert score_top_tokens({"40": 0.5}, "0_100", min_mass=0.6).score is None
    c = score_top_tokens({"YES": 0.3, "NO": 0.1}, "binary", ["YES", "NO"], min_mass=0.5)
    assert c.score is None and c.numeric_mass == pytest.approx(0.4)
    with pytest.raises(ValueError, match="stars"):
        score_top_tokens(top, "stars")


# ---------------------------------------------------------------------------- exact, from prefixes


def test_continues_looks_at_the_first_character_only():
    from emergent.judge.scoring import continues

    # a digit continues a number, whatever follows it; a letter does not
    for tok in ("7", "42", "5a", "0 ", "9\n"):
        assert continues(tok, "numbers"), tok
    for tok in ("", " 7", "\n", "a", "x5", ".", "-1"):
        assert not continues(tok, "numbers"), tok
    # a letter or digit continues a label; a leading space or line break ends it
    for tok in ("YES", "a b", "Y\n", "7", "e."):
        assert continues(tok, "labels"), tok
    for tok in ("", " YES", "\nNO", ".", "-"):
        assert not continues(tok, "labels"), tok


def test_prefix_summary_sums_listed_mass_and_keeps_the_top_sorted():
    from emergent.judge.scoring import prefix_summary

    probs = {"x": 0.1, "12": 0.3, " 7": 0.25, "5": 0.05, "\n": 0.2}
    s = prefix_summary(probs, "numbers", {"12": ["12"], "7": [" 7", "7"], "9": ["9"]})
    assert s["cont"] == pytest.approx(0.35) and s["noncont"] == pytest.approx(0.55)
    assert (s["n_cont"], s["n"], s["min"]) == (2, 5, 0.05)
    assert s["next"] == {"12": 0.3, "7": 0.25}  # first listed candidate text; "9" absent
    assert "top" not in s  # only asked for (the empty prefix)
    top = prefix_summary(probs, "numbers", {}, keep_top=3)["top"]
    assert list(top.items()) == [("12", 0.3), (" 7", 0.25), ("\n", 0.2)]  # most likely first
    assert list(prefix_summary(probs, "numbers", {}, keep_top=1)["top"]) == ["12"]
    assert len(prefix_summary(probs, "numbers", {}, keep_top=9)["top"]) == 5
    empty = prefix_summary({}, "labels", {"1": ["YES"]}, keep_top=2)
    assert empty == {"next": {}, "cont": 0.0, "noncont": 0.0, "n_cont": 0, "n": 0, "min": 1.0,
                     "top": {}}


def _summaries():
    """Root: "1" 0.5, "2" 0.1 continue, "x" 0.2 ends, 0.2 unlisted (smallest listed 0.1); "0"
    is not listed. After "1": "3" 0.15 continues, "x" 0.6 and "y" 0.1 end, 0.15 unlisted."""
    from emergent.judge.scoring import prefix_summary

    return {
        (): prefix_summary({"1": 0.5, "x": 0.2, "2": 0.1}, "numbers",
                           {"1": ["1"], "0": ["0"], "2": ["2"]}),
        (1,): prefix_summary({"x": 0.6, "3": 0.15, "y": 0.1}, "numbers", {"3": ["3"]}),
    }


def test_exact_probs_count_unlisted_mass_as_ending_and_bound_it():
    from emergent.judge.scoring import exact_sequence_probs

    summ = _summaries()
    # P("1") = P(1) * P(end | 1) = 0.5 * (0.6 + 0.1 listed ending + 0.15 unlisted)
    probs, missing, bound = exact_sequence_probs([(1,)], summ.get)
    assert probs == pytest.approx([0.5 * 0.85]) and not missing
    # without a token count, all the unlisted mass after "1" may be continuing
    assert bound == pytest.approx(0.5 * 0.15)
    # with one, at most (total - listed continuing) unlisted tokens, each <= the smallest 0.1
    for n_total, hidden in [(2, 0.1), (1, 0.0), (0, 0.0), (3, 0.15), (9, 0.15)]:
        probs, _, bound = exact_sequence_probs([(1,)], summ.get, n_cont_total=n_total)
        assert probs == pytest.approx([0.425])
        assert bound == pytest.approx(0.5 * hidden), n_total
    # at the root: 0.2 ending + 0.2 unlisted; bound min(0.2, (3 - 2) * 0.1)
    probs, _, bound = exact_sequence_probs([()], summ.get, n_cont_total=3)
    assert probs == pytest.approx([0.4]) and bound == pytest.approx(0.1)
    # two sequences ending at different places: the bounds add up
    _, _, bound = exact_sequence_probs([(), (1,)], summ.get)
    assert bound == pytest.approx(0.2 + 0.5 * 0.15)


def test_exact_probs_prune_unlisted_tokens_once_and_never_query_below_them():
    from emergent.judge.scoring import exact_sequence_probs

    summ = _summaries()
    asked = []

    def get(prefix):
        asked.append(prefix)
        return summ.get(prefix)

    seqs = [(0, 5), (0,), (0, 6), (1,), (1, 7), (1, 7, 8)]
    probs, missing, bound = exact_sequence_probs(seqs, get)
    assert probs == pytest.approx([0.0, 0.0, 0.0, 0.425, 0.0, 0.0]) and not missing
    assert set(asked) == {(), (1,)}  # nothing under the unlisted "0" nor "1, 7" is asked for
    # pruned "0" once: min(0.2 unlisted, 0.1 smallest) at the root; pruned "1, 7" once:
    # 0.5 * min(0.15, 0.1); plus the end of "1": 0.5 * 0.15
    assert bound == pytest.approx(0.1 + 0.5 * 0.1 + 0.5 * 0.15)
    _, _, capped = exact_sequence_probs(seqs, get, n_cont_total=2)
    assert capped == pytest.approx(0.1 + 0.5 * 0.1 + 0.5 * 0.1)
    # the other order prunes each subtree once as well
    _, _, again = exact_sequence_probs(list(reversed(seqs)), get)
    assert again == pytest.approx(bound)
    # a missing prefix: its sequence is None, and it is asked for (its ancestors are fetched)
    probs, missing, _ = exact_sequence_probs([(1, 3), (0,)], summ.get)
    assert probs == [None, 0.0] and missing == {(1, 3)}
