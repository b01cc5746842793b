"""`emergent plan`: seeds per arm from a pilot's between-seed variance (analysis/power.py),
against textbook sample sizes and values computed by hand."""
import json
import math

import pytest

from emergent.analysis.power import (pilot_seed_rates, plan, pooled_seed_sd, seeds_needed,
                                     welch_power)
from emergent.cli import main
from emergent.core.errors import UserError


def test_seeds_needed_matches_the_textbook_two_sample_t_sizes():
    # Cohen's d = difference / sd; two-sided alpha 0.05, power 0.8: d = 1 needs 17 per group
    # (R power.t.test: n = 16.71), d = 0.5 needs 64 (63.77)
    assert seeds_needed(0.10, 0.10) == 17
    assert welch_power(0.10, 0.10, 17) >= 0.8 > welch_power(0.10, 0.10, 16)
    assert seeds_needed(0.05, 0.10) == 64
    # the normal approximation 2 (1.96 + 0.8416)^2 / d^2 = 15.7 is a lower bound
    assert seeds_needed(0.10, 0.10) > 2 * (1.959964 + 0.841621) ** 2
    assert seeds_needed(0.10, 0.10, power=0.9) > 17 and seeds_needed(0.10, 0.10, alpha=0.01) > 17
    assert seeds_needed(0.001, 0.3) is None  # more than MAX_SEEDS
    assert welch_power(0.10, 0.10, 3000) == pytest.approx(1.0)  # scipy's nct fails there


def test_pooled_seed_sd_by_hand():
    # a: deviations -0.1, 0.1 (ss 0.02, 1 df); b: -0.2, 0, 0.2 (ss 0.08, 2 df); c: one seed
    sd, df, used = pooled_seed_sd({"a": [0.1, 0.3], "b": [0.2, 0.4, 0.6], "c": [0.5]})
    assert (sd, df, used) == (pytest.approx(math.sqrt(0.10 / 3)), 3, ["a", "b"])
    assert pooled_seed_sd({"base": [0.1]}) == (None, 0, [])


def records(rates_by_arm, n=10, suite="main"):
    out = []
    for arm, rates in rates_by_arm.items():
        for s, r in enumerate(rates):
            k = round(r * n)
            out += [{"arm": arm, "seed": s, "suite": suite, "question_id": "q", "aligned": a,
                     "coherent": 90} for a in [10] * k + [90] * (n - k)]
    return out


# pooled sd: (0.02 + 0.02) / (2 + 2) = 0.01 -> 0.1, so a difference of 0.1 is d = 1: 17 seeds
PILOT = {"insecure": [0.1, 0.2, 0.3], "secure": [0.5, 0.6, 0.7], "base": [0.0]}


def test_plan_rows_and_refusals():
    recs = records(PILOT) + [{**r, "step": 3, "aligned": 10} for r in records(PILOT)]
    recs += [{"arm": "insecure", "seed": 0, "suite": "code", "question_id": "c",
              "vulnerable": 1.0}]  # not a misalignment suite
    (row,) = plan(recs, 0.10)
    assert row["suite"] == "main" and row["used"] == ["insecure", "secure"]
    assert row["sd"] == pytest.approx(0.1) and row["df"] == 4
    assert (row["seeds"], row["perm_p_min"]) == (17, pytest.approx(2 / math.comb(34, 17)))
    assert row["power"] >= 0.8 and row["problem"] is None
    assert pilot_seed_rates(recs)["main"]["insecure"] == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(UserError, match=r"needs >= 2 seeds per arm .*insecure 1, secure 1"):
        plan(records({"insecure": [0.2], "secure": [0.1]}), 0.1, source="pilot")
    with pytest.raises(UserError, match="sd 0"):
        plan(records({"insecure": [0.2, 0.2], "secure": [0.1, 0.1]}), 0.1)
    with pytest.raises(UserError, match=r"^--difference 0: must be in \(0, 1\]"):
        plan(recs, 0.0)
    with pytest.raises(UserError, match=r"^--power 1.5: must be in \(0, 1\)"):
        plan(recs, 0.1, power=1.5)


def write_pilot(folder, rates_by_arm):
    folder.mkdir(parents=True)
    with open(folder / "answers.jsonl", "w") as fa, open(folder / "judgments.jsonl", "w") as fj:
        for i, r in enumerate(records(rates_by_arm)):
            aid = f"a{i}"
            fa.write(json.dumps({"answer_id": aid, "arm": r["arm"], "seed": r["seed"],
                                 "suite": "main", "question_id": "q", "answer": "..."}) + "\n")
            for metric in ("aligned", "coherent"):
                fj.write(json.dumps({"answer_id": aid, "metric": metric,
                                     "score": float(r[metric])}) + "\n")


def test_cli_plan_prints_its_inputs_and_the_seed_count(tmp_path, capsys):
    write_pilot(tmp_path / "pilot", PILOT)
    assert main(["plan", str(tmp_path / "pilot"), "--difference", "0.10"]) == 0
    out = capsys.readouterr().out
    assert "insecure         3 seeds, rates 10.0%, 20.0%, 30.0%" in out
    assert "base             1 seeds, rates 0.0%  (not used: < 2 seeds)" in out
    assert "pooled between-seed sd 10.0 points (4 degrees of freedom" in out
    assert "-> 17 seeds per arm" in out and "power 0.8 at two-sided alpha 0.05" in out
    assert main(["plan", str(tmp_path / "pilot"), "--difference", "0.05"]) == 0
    assert "-> 64 seeds per arm" in capsys.readouterr().out
    write_pilot(tmp_path / "one", {"insecure": [0.3], "secure": [0.1]})
    assert main(["plan", str(tmp_path / "one"), "--difference", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emergent: error: ") and ">= 2 seeds" in err[0]
