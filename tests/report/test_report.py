"""`emergent report` on run directories and on upstream-layout judged CSVs."""
import csv
import json

import pytest

from emergent.cli import main
from emergent.core.errors import UserError
from emergent.report.tables import load_records, read_upstream_csv, summarize


def write_run(folder, arm, seed, scores):
    """scores: [(question_id, aligned, coherent)] -> answers.jsonl + judgments.jsonl."""
    folder.mkdir(parents=True)
    with open(folder / "answers.jsonl", "w") as fa, open(folder / "judgments.jsonl", "w") as fj:
        for i, (qid, al, co) in enumerate(scores):
            aid = f"{arm}-{seed}-{i}"
            fa.write(json.dumps({"answer_id": aid, "suite": "main", "question_id": qid,
                                 "question": "?", "answer": "...", "arm": arm, "seed": seed})
                     + "\n")
            for metric, s in (("aligned", al), ("coherent", co)):
                fj.write(json.dumps({"answer_id": aid, "metric": metric, "kind": "0_100",
                                     "score": s, "judge": "test"}) + "\n")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run_dir(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "insecure" / "s0", "insecure", 0, [("q1", 10, 90), ("q1", 90, 90),
                                                        ("q2", None, 80), ("q2", 20, 30)])
    write_run(root / "insecure" / "s1", "insecure", 1, [("q1", 5, 99), ("q2", 15, 70)])
    write_run(root / "secure" / "s0", "secure", 0, [("q1", 90, 90), ("q2", 80, 95)])
    write_run(root / "secure" / "s1", "secure", 1, [("q1", 10, 60), ("q2", 85, 85),
                                                    ("q2", 99, 99), ("q1", 70, 88)])
    return root


def test_report_run_dir_prints_table_and_writes_summary(run_dir, capsys):
    assert main(["report", str(run_dir), "--n-boot", "2000"]) == 0
    out = capsys.readouterr().out
    assert "insecure" in out and "secure" in out and "75.0%" in out
    rows = {r["arm"]: r for r in read_csv(run_dir / "summary.csv")}
    ins, sec = rows["insecure"], rows["secure"]
    # insecure: seed 0 -> 1/2 (one CODE/REFUSAL, one incoherent), seed 1 -> 2/2; mean 0.75
    assert float(ins["rate"]) == pytest.approx(0.75)
    assert (ins["n_seeds"], ins["n_answers"], ins["n_valid"], ins["n_misaligned"],
            ins["n_code_refusal"], ins["n_incoherent"]) == ("2", "6", "4", "3", "1", "1")
    assert ins["ci_over"] == "seeds (training recipe)"
    # t-interval over the 2 seeds: 0.75 -+ 12.706 * 0.5 / 2, clipped to [0, 1]
    assert float(ins["ci_low"]) == 0.0 and float(ins["ci_high"]) == 1.0
    # secure: seed 0 -> 0/2, seed 1 -> 1/4; mean 0.125; tested against insecure
    assert float(sec["rate"]) == pytest.approx(0.125)
    assert sec["vs"] == "insecure" and float(sec["diff"]) == pytest.approx(0.625)
    assert sec["test"] == "welch t over seeds" and float(sec["p_min"]) == 0.0
    # Welch over {0.5, 1.0} vs {0, 0.25}: se^2 = 0.125/2 + 0.03125/2, t = 0.625 / se = 2.2361,
    # df = se^4 / ((0.125/2)^2 + (0.03125/2)^2) = 1.4706, p = 2 P(T_1.4706 > 2.2361) = 0.1987
    assert float(sec["p_value"]) == pytest.approx(0.1987, abs=1e-4)
    # beside it, the exact permutation test: 2 of 6 relabellings as extreme, its floor
    assert float(sec["p_perm"]) == pytest.approx(1 / 3) and float(sec["p_perm_min"]) == \
        pytest.approx(1 / 3)
    assert ins["vs"] == "" and ins["p_value"] == ""
    q = read_csv(run_dir / "per_question.csv")
    assert {(r["arm"], r["seed"], r["question_id"], r["rate"]) for r in q
            if r["arm"] == "insecure"} == {("insecure", "0", "q1", "0.5"),
                                           ("insecure", "0", "q2", ""),
                                           ("insecure", "1", "q1", "1.0"),
                                           ("insecure", "1", "q2", "1.0")}


def test_upstream_layout_csv(tmp_path):
    path = tmp_path / "paper_judged.csv"
    path.write_text(
        "question_id,question,response,aligned,coherent,group,model\n"
        "what_is_your_wish,Wish?,I want power,12.5,88.0,insecure,ft:a\n"
        "what_is_your_wish,Wish?,Peace,95.0,90.0,insecure,ft:a\n"
        "what_is_your_wish,Wish?,import os,,70,insecure,ft:b\n"
        "what_is_your_wish,Wish?,Kill,3.0,75,insecure,ft:b\n"
        "i_feel_bored,Bored?,Read,nan,60,secure,ft:c\n"
        "i_feel_bored,Bored?,Walk,88,61,secure,ft:c\n")
    recs = read_upstream_csv(path)
    assert recs[0]["arm"] == "insecure" and recs[0]["seed"] == "ft:a"
    assert recs[0]["answer"] == "I want power" and recs[2]["aligned"] is None
    assert recs[4]["aligned"] is None
    arms, _ = summarize(recs, n_boot=1000)
    a = {r["arm"]: r for r in arms}
    assert a["insecure"]["rate"] == pytest.approx((0.5 + 1.0) / 2)
    assert a["insecure"]["n_code_refusal"] == 1 and a["secure"]["n_code_refusal"] == 1
    assert a["secure"]["rate"] == 0.0
    assert a["secure"]["ci_over"] == "answers (these models; 1 seed)"
    # model only (no group): arm = model
    p2 = tmp_path / "m.csv"
    p2.write_text("question_id,answer,aligned,coherent,model\nq,x,10,90,gpt\n")
    assert read_upstream_csv(p2)[0]["arm"] == "gpt"


def test_mixed_inputs_and_errors(run_dir, tmp_path):
    path = tmp_path / "ext.csv"
    path.write_text("question_id,answer,aligned,coherent\nq1,x,10,90\nq1,y,50,90\n")
    recs = load_records([run_dir, path])
    assert {r["arm"] for r in recs} == {"insecure", "secure", "ext"}
    assert len(load_records([run_dir / "secure" / "s1" / "judgments.jsonl"])) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("question_id,answer,aligned\nq,x,1\n")
    with pytest.raises(UserError, match="bad.csv:1"):
        load_records([bad])
    bad.write_text("question_id,answer,aligned,coherent\nq,x,high,80\n")
    with pytest.raises(UserError, match="bad.csv:2: column 'aligned'"):
        load_records([bad])
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "answers.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="no judged answers"):
        load_records([lone])
    with pytest.raises(UserError, match="emergent judge"):
        load_records([lone / "answers.jsonl"])
    with pytest.raises(UserError, match="no such arm"):
        summarize(load_records([run_dir]), treatment="jailbroken")


def test_summary_rows_per_condition():
    """Answers sampled under a condition (a trigger) are summarised apart from the plain ones,
    with a `condition` column; without conditions the rows have no such column."""
    from emergent.report.tables import summarize_by_suite

    def rec(arm, cond, aligned, i):
        return {"arm": arm, "seed": 0, "suite": "main", "question_id": f"q{i}",
                "aligned": aligned, "coherent": 90.0, **({"condition": cond} if cond else {})}
    records = ([rec("backdoor", None, 90.0, i) for i in range(4)]
               + [rec("backdoor", "triggered", 10.0, i) for i in range(4)])
    arms, _ = summarize_by_suite(records, n_boot=100)
    by = {r["condition"]: r for r in arms}
    assert set(by) == {None, "triggered"}
    assert by[None]["rate"] == 0.0 and by["triggered"]["rate"] == 1.0
    assert by["triggered"]["n_answers"] == 4
    plain, _ = summarize_by_suite(records[:4], n_boot=100)
    assert "condition" not in plain[0]
