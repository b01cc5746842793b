"""summary.csv's statistics columns (issue #16) and `format_table`: the main interval over
seeds, the intervals beside it, and every p-value printed beside the smallest one its design
can reach."""
import pytest

from emergent.report.tables import TABLE_LEGEND, format_p, format_table, summarize

# the columns summary.csv had before issue #16 keep their names and order; the new ones follow
OLD = ["arm", "n_seeds", "n_answers", "n_unjudged", "n_code_refusal", "n_incoherent",
       "n_valid", "n_misaligned", "rate", "ci_low", "ci_high", "ci_over", "vs", "diff",
       "p_value", "test"]
NEW = ["seed_sd", "hier_ci_low", "hier_ci_high", "models_ci_low", "models_ci_high", "p_min",
       "p_perm", "p_perm_min", "p_answers", "p_answers_min"]


def seed_records(arm, ks, n=100):
    out = []
    for s, k in enumerate(ks):
        out += [{"arm": arm, "seed": s, "question_id": "q", "aligned": 10, "coherent": 90}] * k
        out += [{"arm": arm, "seed": s, "question_id": "q", "aligned": 90,
                 "coherent": 90}] * (n - k)
    return out


RECS = (seed_records("insecure", [40, 42, 38]) + seed_records("secure", [1, 2, 0])
        + seed_records("base", [3]))


def test_summary_columns_and_values():
    arms, _ = summarize(RECS, n_boot=500, seed=0)
    rows = {a["arm"]: a for a in arms}
    assert all(list(a) == OLD + NEW for a in arms)
    ins, sec, base = rows["insecure"], rows["secure"], rows["base"]
    # insecure: t-interval over 3 seeds: 0.40 -+ 4.302653 * 0.02 / sqrt(3)
    half = 4.302653 * 0.02 / 3 ** 0.5
    assert (ins["ci_low"], ins["ci_high"]) == (pytest.approx(0.40 - half, abs=1e-6),
                                               pytest.approx(0.40 + half, abs=1e-6))
    assert ins["ci_over"] == "seeds (training recipe)" and ins["vs"] is None
    assert all(ins[k] is None for k in ("diff", "p_value", "test", "p_min", "p_perm"))
    assert sec["vs"] == "insecure" and sec["test"] == "welch t over seeds"
    assert sec["p_min"] == 0.0 and sec["p_perm"] == pytest.approx(0.1)
    assert sec["p_perm_min"] == pytest.approx(0.1) and sec["p_value"] < 1e-3
    # base: one seed, so only the answer-level interval and test
    assert base["ci_over"] == "answers (these models; 1 seed)"
    assert (base["ci_low"], base["ci_high"]) == (base["models_ci_low"], base["models_ci_high"])
    assert base["test"] == "permutation over answers" and base["p_perm"] is None
    assert base["p_value"] == base["p_answers"] and base["p_min"] == pytest.approx(1 / 501)


def test_format_p_and_table_show_the_floor():
    assert format_p(0.1, 0.1) == "0.1 (min 0.1)"
    assert format_p(0.0123, 0.0) == "0.0123 (min 0)"
    assert format_p(1 / 3, 1 / 3) == "0.333 (min 0.333)"
    assert format_p(None, None) == "-" and format_p(float("nan"), 0.1) == "-"
    arms, _ = summarize(RECS, n_boot=500, seed=0)
    lines = format_table(arms).splitlines()
    assert lines[0].split()[:8] == ["arm", "seeds", "answers", "code/refusal", "incoherent",
                                    "valid", "misaligned", "rate"]
    assert "p (min)" in lines[0] and "perm p (min)" in lines[0] and "these models" in lines[0]
    sec = next(x for x in lines if x.startswith("secure"))
    assert "(min 0)" in sec and "0.1 (min 0.1)" in sec and "welch t over seeds" in sec
    assert "seeds (training recipe)" in sec
    base = next(x for x in lines if x.startswith("base"))
    assert "answers (these models; 1 seed)" in base and "(min 0.002)" in base
    assert "training recipe" in TABLE_LEGEND and "these models" in TABLE_LEGEND
