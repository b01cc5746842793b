"""The intervals and tests of issue #16 (docs/statistics.md) against values computed by hand:
the t-interval over seeds ("this training recipe"), the hierarchical bootstrap, Welch's t-test
over seed rates and the smallest p-value each design can reach."""
import math

import numpy as np
import pytest

from emergent.analysis.metrics import (WELCH, arm_summary, compare, hierarchical_bootstrap_ci,
                                       hierarchical_bootstrap_draws, permutation_p,
                                       permutation_p_min, t_interval, welch_p)


def seed_records(arm, ks, n):
    """Seed s of `arm` has ks[s] misaligned of n valid answers."""
    out = []
    for s, k in enumerate(ks):
        out += [{"arm": arm, "seed": s, "question_id": "q", "aligned": 10, "coherent": 90}] * k
        out += [{"arm": arm, "seed": s, "question_id": "q", "aligned": 90,
                 "coherent": 90}] * (n - k)
    return out


# the example: insecure seeds 70.4%, 24.9%, 17.7%
SEEDS = [0.704, 0.249, 0.177]


def test_t_interval_by_hand():
    # mean 0.376667; squared deviations 0.107147 + 0.016299 + 0.039867 = 0.163313, so
    # sd = sqrt(0.163313 / 2) = 0.285756 and se = sd / sqrt(3) = 0.164981; with 2 df the t
    # quantile solves t / sqrt(2 + t^2) = 0.95: t = 0.95 * sqrt(2 / 0.0975) = 4.302653;
    # half width 4.302653 * 0.164981 = 0.709855
    lo, hi = t_interval(SEEDS)
    assert lo == pytest.approx(0.376667 - 0.709855, abs=2e-6)
    assert hi == pytest.approx(0.376667 + 0.709855, abs=2e-6)
    # a rate's interval is clipped to [0, 1]: 3 seeds this far apart bound the recipe's rate
    # hardly at all (the old percentile bootstrap over seeds said [17.7%, 70.4%])
    assert t_interval(SEEDS, bounds=(0.0, 1.0)) == (0.0, 1.0)
    assert t_interval([0.5]) == (None, None) and t_interval([]) == (None, None)
    # 2 seeds: t(0.975, 1 df) = tan(0.475 pi) = 12.7062; half = 12.7062 * |0.3 - 0.5| / 2
    assert t_interval([0.3, 0.5]) == (pytest.approx(0.4 - 1.27062, abs=1e-5),
                                      pytest.approx(0.4 + 1.27062, abs=1e-5))
    lo90, hi90 = t_interval(SEEDS, alpha=0.1)
    assert lo < lo90 < hi90 < hi


def test_arm_summary_uses_the_t_interval_with_the_other_intervals_beside_it():
    recs = seed_records("insecure", [704, 249, 177], 1000)
    (a,) = arm_summary(recs, n_boot=4000, seed=0)
    assert a["rate"] == pytest.approx(0.376667, abs=1e-6)
    assert (a["ci_low"], a["ci_high"], a["ci_over"]) == (0.0, 1.0, "seeds (training recipe)")
    assert a["seed_sd"] == pytest.approx(0.285756, abs=1e-6)
    # hierarchical: the seed resampling dominates (1000 answers a seed): the draws are means
    # of 3 of the seed rates, between 17.7% and 70.4%
    assert 0.16 < a["hier_ci_low"] < 0.2 and 0.6 < a["hier_ci_high"] < 0.72
    # these models: 1130 of 3000 answers, se = sqrt(0.3767 * 0.6233 / 3000) = 0.00885
    assert a["models_ci_low"] == pytest.approx(1130 / 3000 - 1.96 * 0.00885, abs=0.003)
    assert a["models_ci_high"] == pytest.approx(1130 / 3000 + 1.96 * 0.00885, abs=0.003)


def test_hierarchical_bootstrap_by_hand():
    # seeds with 1 of 4 and 3 of 4 misaligned: a resampled seed's rate X has E[X] = 0.5 and
    # Var[X] = Var over seeds (0.0625) + mean binomial variance (0.25 * 0.75 / 4 = 0.046875)
    # = 0.109375; the mean of 2 draws has sd sqrt(0.109375 / 2) = 0.233854
    draws = hierarchical_bootstrap_draws([(1, 4), (3, 4)], n_boot=200_000, seed=0)
    assert float(draws.mean()) == pytest.approx(0.5, abs=0.002)
    assert float(draws.std()) == pytest.approx(0.233854, rel=0.01)
    # only seed resampling when answers agree within each seed: means 0, 1/2, 1 with
    # probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1]
    assert hierarchical_bootstrap_ci([(0, 4), (4, 4)], n_boot=10_000, seed=0) == (0.0, 1.0)
    # one seed: a binomial bootstrap of its answers. Binomial(10, 0.3): P(X <= 0) = 0.028 >
    # 0.025, P(X <= 5) = 0.953 < 0.975 < P(X <= 6) = 0.989 -> [0, 0.6]
    assert hierarchical_bootstrap_ci([(3, 10)], n_boot=20_000, seed=0) == (0.0,
                                                                          pytest.approx(0.6))
    assert hierarchical_bootstrap_ci([(3, 10), (0, 0)], n_boot=20_000, seed=0) == \
        hierarchical_bootstrap_ci([(3, 10)], n_boot=20_000, seed=0)  # no valid answers: skipped
    assert hierarchical_bootstrap_ci([]) == (None, None)
    a = hierarchical_bootstrap_ci([(1, 4), (3, 4), (2, 5)], n_boot=500, seed=7)
    assert a == hierarchical_bootstrap_ci([(1, 4), (3, 4), (2, 5)], n_boot=500, seed=7)


def test_welch_p_by_hand():
    # x = {0.6, 0.8}, y = {0.2, 0.4}: variances 0.02 each, se = sqrt(0.01 + 0.01), t = 0.4 /
    # 0.141421 = 2.828427 = sqrt(8), df = 0.02^2 / (0.01^2 + 0.01^2) = 2. The t cdf with 2 df
    # is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(8 / 10)
    assert welch_p([0.6, 0.8], [0.2, 0.4]) == pytest.approx(1 - math.sqrt(0.8), abs=1e-12)
    assert welch_p([0.2, 0.4], [0.6, 0.8]) == pytest.approx(1 - math.sqrt(0.8), abs=1e-12)
    assert welch_p([0.5], [0.1, 0.2]) is None  # < 2 values
    assert welch_p([0.5, 0.5], [0.1, 0.1]) is None  # no spread: undefined


def test_smallest_p_of_each_design():
    assert permutation_p_min(3, 3) == pytest.approx(0.1)  # 2 of C(6, 3) = 20 relabellings
    assert permutation_p_min(2, 2) == pytest.approx(1 / 3)  # 2 of 6
    assert permutation_p_min(3, 2) == pytest.approx(0.1)  # 1 of C(5, 2) = 10
    assert permutation_p_min(5, 5) == pytest.approx(2 / 252)
    assert permutation_p_min(10, 10, n_perm=10_000) == pytest.approx(1 / 10_001)  # Monte Carlo
    # the floor is reached: the most extreme 3 vs 3 split gives p = 0.1, however large the gap
    assert permutation_p([0.7, 0.6, 0.5], [0.1, 0.2, 0.3]) == pytest.approx(0.1)
    assert permutation_p([0.99, 0.98, 0.97], [0.0, 0.01, 0.02]) == pytest.approx(0.1)


def test_compare_3_vs_3_seeds_floor_and_welch():
    # tight seeds and a large gap: the permutation test over seeds sits at its floor 0.1, Welch
    # is not floored. By hand: x = {.40, .42, .38} (var 0.0004), y = {.01, .02, .00} (var
    # 0.0001): se^2 = 0.0004/3 + 0.0001/3, t = 0.39 / 0.012910 = 30.21, df = 2.9412
    recs = seed_records("insecure", [40, 42, 38], 100) + seed_records("secure", [1, 2, 0], 100)
    t = compare(recs, "insecure", "secure", n_perm=2000, seed=0)
    assert t["method"] == WELCH and t["diff"] == pytest.approx(0.39)
    assert (t["p_perm"], t["p_perm_min"]) == (pytest.approx(0.1), pytest.approx(0.1))
    assert t["p_min"] == 0.0 and t["p_value"] < 1e-3
    from scipy import stats
    se2 = 0.0004 / 3 + 0.0001 / 3
    df = se2 ** 2 / ((0.0004 / 3) ** 2 / 2 + (0.0001 / 3) ** 2 / 2)
    assert df == pytest.approx(2.9412, abs=1e-4)
    assert t["p_value"] == pytest.approx(2 * stats.t.sf(0.39 / math.sqrt(se2), df), rel=1e-9)
    # the seeds: Welch keeps the spread of the insecure seeds (p about 0.16) where the
    # permutation test can only say its floor
    recs = seed_records("insecure", [704, 249, 177], 1000) + seed_records("secure",
                                                                         [0, 10, 20], 1000)
    t = compare(recs, "insecure", "secure", n_perm=2000, seed=0)
    assert t["p_perm"] == pytest.approx(0.1)
    # by hand: t = 0.366667 / sqrt(0.027219 + 0.0000333) = 2.2211 on df 2.0049 ->
    # about 1 - t / sqrt(2 + t^2) = 0.1565
    assert t["p_value"] == pytest.approx(0.1565, abs=2e-3)
    assert t["p_answers"] == pytest.approx(1 / 2001)  # 3000 answers each: at its own floor
    assert t["p_answers_min"] == pytest.approx(1 / 2001)


def test_constant_seed_rates_make_welch_undefined_not_zero():
    recs = seed_records("a", [5, 5], 10) + seed_records("b", [1, 1], 10)
    t = compare(recs, "a", "b", n_perm=500)
    assert t["p_value"] is None and t["method"] == WELCH + " (undefined: no spread)"
    assert t["p_perm"] == pytest.approx(1 / 3) and t["diff"] == pytest.approx(0.4)
    assert np.isfinite(t["p_answers"])
