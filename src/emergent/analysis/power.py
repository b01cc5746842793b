"""How many training seeds per arm a design needs (`emergent plan PILOT_RUN --difference D`).

The unit of replication is the training seed: an arm's rate is the mean of its seeds' rates,
and two arms are compared with Welch's t-test over seed rates (analysis.metrics.compare). From a
pilot run, the between-seed standard deviation of seed rates is pooled over the arms that have
>= 2 seeds (sum of squared deviations from each arm's mean over the sum of n_arm - 1). With n
seeds per arm and that sd in both arms, the Welch statistic has 2(n - 1) degrees of freedom and
noncentrality D / (sd * sqrt(2 / n)); its power at two-sided level alpha is

    P(T > t_crit) + P(T < -t_crit),  T ~ noncentral t(2(n - 1), ncp),  t_crit = t(1 - alpha/2)

and the plan is the smallest n >= 2 with power >= the target. docs/statistics.md.
"""
from __future__ import annotations

import math
from typing import Optional

from emergent.analysis.metrics import Thresholds, counts, group_by, permutation_p_min
from emergent.core.errors import UserError

MAX_SEEDS = 10_000


def pilot_seed_rates(records: list[dict], th: Thresholds = Thresholds()
                     ) -> dict[str, dict[str, list[float]]]:
    """{suite: {arm: [seed rates]}} of a pilot's final answers (no checkpoint steps) on the
    suites whose answers carry an aligned score; seeds without valid answers are left out."""
    out: dict[str, dict[str, list[float]]] = {}
    final = [r for r in records if r.get("step") is None]
    for (suite,), recs in group_by(final, ("suite",)).items():
        if not any("aligned" in r for r in recs):
            continue  # not a misalignment suite (code, deception)
        arms = out.setdefault(suite or "", {})
        for (arm, _seed), rs in group_by(recs, ("arm", "seed")).items():
            rate = counts(rs, th)["rate"]
            if rate is not None:
                arms.setdefault(arm, []).append(rate)
    return out


def pooled_seed_sd(rates_by_arm: dict[str, list[float]]) -> tuple[Optional[float], int, list]:
    """(pooled sd of seed rates, its degrees of freedom, the arms used): the arms with >= 2
    seeds; (None, 0, []) when there are none."""
    used = [a for a, rs in rates_by_arm.items() if len(rs) >= 2]
    ss = sum(sum((r - sum(rs) / len(rs)) ** 2 for r in rs)
             for rs in (rates_by_arm[a] for a in used))
    df = sum(len(rates_by_arm[a]) - 1 for a in used)
    return (math.sqrt(ss / df) if df else None), df, used


def welch_power(difference: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided Welch t-test with n seeds per arm, seed-rate sd `sd` in both arms,
    to detect a true difference `difference` (noncentral t, 2(n - 1) degrees of freedom)."""
    from scipy import stats

    df = 2 * (n - 1)
    ncp = difference / (sd * math.sqrt(2 / n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    p = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    if not math.isfinite(p):  # scipy's nct fails for a large ncp; the normal limit is exact
        p = float(stats.norm.sf(crit - ncp) + stats.norm.cdf(-crit - ncp))  # there (~1.0)
    return p


def seeds_needed(difference: float, sd: float, power: float = 0.8, alpha: float = 0.05,
                 max_seeds: int = MAX_SEEDS) -> Optional[int]:
    """The smallest n >= 2 seeds per arm with `welch_power` >= `power` (None above max_seeds)."""
    if sd == 0:
        return 2
    if welch_power(difference, sd, max_seeds, alpha) < power:
        return None
    lo, hi = 2, max_seeds  # power grows with n: bisect for the first n that reaches it
    while lo < hi:
        mid = (lo + hi) // 2
        if welch_power(difference, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def plan(records: list[dict], difference: float, power: float = 0.8, alpha: float = 0.05,
         th: Thresholds = Thresholds(), source: str = "the pilot") -> list[dict]:
    """One row per misalignment suite of the pilot: its inputs (`arms`: arm -> seed rates,
    `sd`, `df`, `used`) and `seeds` per arm with the `power` reached, or a `problem`. A
    UserError when no suite has an arm with >= 2 seeds or every pooled sd is 0."""
    for name, value, ok in (("--difference", difference, 0 < difference <= 1),
                            ("--power", power, 0 < power < 1), ("--alpha", alpha, 0 < alpha < 1)):
        if not ok:
            raise UserError(f"{name} {value:g}: must be in " +
                            ("(0, 1] (a difference of rates)" if name == "--difference"
                             else "(0, 1)"))
    rows = []
    for suite, arms in pilot_seed_rates(records, th).items():
        sd, df, used = pooled_seed_sd(arms)
        row = {"suite": suite, "arms": arms, "sd": sd, "df": df, "used": used,
               "difference": difference, "target_power": power, "alpha": alpha,
               "seeds": None, "power": None, "perm_p_min": None, "problem": None}
        if sd is None:
            row["problem"] = "no arm has >= 2 seeds with valid answers"
        elif sd == 0:
            row["problem"] = ("the seeds of every arm have the same rate (sd 0): the "
                              "between-seed variance cannot be estimated")
        else:
            n = seeds_needed(difference, sd, power, alpha)
            if n is None:
                row["problem"] = f"more than {MAX_SEEDS} seeds per arm would be needed"
            else:
                row.update(seeds=n, power=welch_power(difference, sd, n, alpha),
                           perm_p_min=permutation_p_min(n, n, math.comb(2 * n, n)))
        rows.append(row)
    if not rows:
        raise UserError(f"{source}: no judged answers of a misalignment suite")
    if all(r["sd"] is None for r in rows):
        seeds = ", ".join(f"{a} {len(rs)}" for r in rows for a, rs in r["arms"].items())
        raise UserError(f"{source}: the pilot needs >= 2 seeds per arm to estimate the "
                        f"between-seed variance (seeds with valid answers: {seeds})")
    if all(r["seeds"] is None for r in rows):
        raise UserError(f"{source}: {rows[0]['problem']}")
    return rows
