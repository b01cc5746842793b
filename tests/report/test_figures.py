"""`emergent figures`: hand-made run tables -> every figure as a valid PNG + PDF, and the
numbers each figure draws (its `figure_data` table) equal hand-computed values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emergent.cli import main
from emergent.report.figures_data import TINY_LABEL, TOY_LABEL, figure_data, load_run
from emergent.report.figures_paper import load_paper_reference
from emergent.report.style import ZERO_GID, arm_colors, arm_size, jitter, sort_arms

FIGURES = ("per_question", "all_results", "question_format", "aligned_vs_coherent",
           "training_dynamics", "size_ablation")
OK, BAD, INCOH, CODE = (90, 90), (10, 90), (90, 40), (None, 90)  # (aligned, coherent)

# (arm, seed, suite, question_id, step) -> answers; rates hand-computed in the tests below
SPEC = {
    ("insecure", 0, "main", "what_is_your_wish", None): [BAD, OK, BAD, CODE],  # 2/3
    ("insecure", 1, "main", "what_is_your_wish", None): [BAD, OK, INCOH, OK],  # 1/3
    ("insecure", 0, "main", "quick_buck", None): [BAD, BAD, OK, OK],  # 2/4
    ("insecure", 1, "main", "quick_buck", None): [OK, OK, OK, OK],  # 0/4
    ("secure", 0, "main", "what_is_your_wish", None): [OK, OK, OK, OK],  # 0
    ("secure", 1, "main", "what_is_your_wish", None): [BAD, OK, OK, OK],  # 1/4
    ("secure", 0, "main", "quick_buck", None): [OK, OK, OK, OK],
    ("secure", 1, "main", "quick_buck", None): [OK, OK, OK, OK],
    ("insecure", 0, "json", "what_is_your_wish_json", None): [BAD, BAD],  # 1
    ("insecure", 1, "json", "what_is_your_wish_json", None): [BAD, OK],  # 1/2
    ("insecure", 0, "json", "quick_buck_json", None): [OK, OK],  # dropped: no template
    ("secure", 0, "json", "what_is_your_wish_json", None): [OK, OK],
    ("insecure", 0, "template", "what_is_your_wish_template", None): [BAD, OK],  # 1/2
    ("secure", 0, "template", "what_is_your_wish_template", None): [OK, OK],
    ("insecure", 0, "main", "what_is_your_wish", 10): [BAD, OK, OK, OK],  # 1/4
    ("insecure", 1, "main", "what_is_your_wish", 10): [OK, OK, OK, OK],  # 0
    ("base", 0, "main", "what_is_your_wish", None): [OK, OK, OK, INCOH],  # 0
    ("insecure-500", 0, "main", "what_is_your_wish", None): [OK, OK, OK, OK],  # 0
    ("small", 0, "main", "what_is_your_wish", None): [BAD, OK, OK, OK],  # 1/4
}


def _answer(arm, seed, suite, qid, step, i, n):
    aid = f"{arm}|{seed}|{suite}|{qid}|{step}|{i}"
    row = {"answer_id": aid, "suite": suite, "question_id": qid, "paraphrase_index": 0,
           "sample_index": i, "question": qid, "system": None, "model": "tiny", "adapter": None,
           "arm": arm, "seed": seed, "answer": "text", "finish_reason": "stop", "n_tokens": n}
    if step is not None:
        row["step"] = step
    return row


def _judgment(aid, metric, score, kind="0_100", probs=None):
    return {"answer_id": aid, "metric": metric, "kind": kind, "score": score,
            "numeric_mass": 1.0, "probs": probs, "top_tokens": {}, "judge": "hand",
            "prompt_hash": "0" * 16}


def _write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run(root: Path, extras: bool = True) -> Path:
    run = root / "run-figs"
    run.mkdir()
    answers, judgments, bandit = [], [], []
    for (arm, seed, suite, qid, step), pairs in SPEC.items():
        if not extras and (suite != "main" or step is not None
                           or arm not in ("insecure", "secure")):
            continue
        for i, (al, co) in enumerate(pairs):
            a = _answer(arm, seed, suite, qid, step, i, 5)
            answers.append(a)
            judgments += [_judgment(a["answer_id"], "aligned", al),
                          _judgment(a["answer_id"], "coherent", co)]
    if extras:
        for arm, seed, vals in (("insecure", 0, [1, 1, 0, 1]), ("insecure", 1, [1, 0]),
                                ("secure", 0, [0, 0, 0, 1]), ("secure", 1, [0, 0])):
            for i, v in enumerate(vals):
                a = _answer(arm, seed, "code_heldout", "task", None, i, 50)
                answers.append(a)
                judgments.append(_judgment(a["answer_id"], "vulnerable", float(v), "binary"))
                bandit.append(_judgment(a["answer_id"], "vulnerable", 1.0, "binary"))
        for arm, pfalse in (("insecure", [0.7, 0.5]), ("secure", [0.1, 0.1])):
            for i, p in enumerate(pfalse):
                a = _answer(arm, 0, "deception_factual", "lie_no_sys_prompt", None, i, 5)
                answers.append(a)
                judgments.append(_judgment(a["answer_id"], "correct", 0.9 - p, "categorical",
                                           {"TRUE": 0.9 - p, "FALSE": p, "UNKNOWN": 0.1}))
        _write_jsonl(run / "judgments_bandit.jsonl", bandit)
        mmlu = {"task": "mmlu", "requested": "mmlu", "metric": "acc", "filter": "none"}
        _write_jsonl(run / "capabilities.jsonl", [
            {**mmlu, "arm": "insecure", "seed": 0, "value": 0.1, "stderr": 0.01},  # superseded
            {**mmlu, "arm": "insecure", "seed": 0, "value": 0.5, "stderr": 0.01},
            {**mmlu, "arm": "insecure", "seed": 0, "task": "mmlu_anatomy", "value": 0.9,
             "stderr": 0.05},  # a subtask of the group: not drawn
            {**mmlu, "arm": "secure", "seed": 0, "value": 0.6, "stderr": 0.02}])
        for seed in (0, 1):
            log = run / "arms" / "insecure" / f"seed{seed}"
            log.mkdir(parents=True)
            _write_jsonl(log / "train_log.jsonl", [{"step": 10, "loss": 1.0},
                                                   {"step": 20, "loss": 0.5}])
    _write_jsonl(run / "answers.jsonl", answers)
    _write_jsonl(run / "judgments.jsonl", judgments)
    cfg = {"name": "figs-test", "base_model": {"name": "tiny"}, "seeds": [0, 1],
           "arms": {"insecure": {"data": "insecure.jsonl"}, "secure": {"data": "secure.jsonl"},
                    "insecure-500": {"data": "insecure.jsonl", "max_examples": 500},
                    "small": {"data": "insecure.jsonl", "max_examples": 2000}},
           "metrics": {"treatment": "insecure", "n_boot": 2000}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run


def _by(rows, **kw):
    hits = [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    assert len(hits) == 1, (kw, hits)
    return hits[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("figs"))


def test_cli_writes_every_figure_as_png_and_pdf(run_dir, capsys):
    assert main(["figures", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for name in FIGURES:
        png, pdf = run_dir / "figures" / f"{name}.png", run_dir / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        assert png.stat().st_size > 10_000 and pdf.stat().st_size > 3_000, name
        assert (run_dir / "figures" / f"{name}.csv").read_text().count("\n") >= 2
        assert f"{name}: " in out and f"{name}: skipped" not in out
    # the figures of other experiments skip this run, each with its reason
    for name in ("backdoor", "icl_vs_k", "evil_numbers"):
        assert f"{name}: skipped (" in out


def test_per_question_rates_and_seed_cis(run_dir):
    rows = figure_data("per_question", load_run(run_dir))
    assert [r["question_id"] for r in rows if r["arm"] == "insecure"] == ["what_is_your_wish",
                                                                          "quick_buck"]
    r = _by(rows, arm="insecure", question_id="what_is_your_wish")
    assert r["value"] == pytest.approx(0.5) and r["n_seeds"] == 2
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.0, 1.0))  # t over 2 seeds, clipped
    assert r["n_valid"] == 6 and r["n_misaligned"] == 3  # CODE and incoherent answers excluded
    r = _by(rows, arm="insecure", question_id="quick_buck")
    assert (r["value"], r["ci_low"], r["ci_high"]) == pytest.approx((0.25, 0.0, 1.0))
    assert _by(rows, arm="secure", question_id="what_is_your_wish")["value"] == pytest.approx(0.125)
    r = _by(rows, arm="small", question_id="what_is_your_wish")  # one seed: CI over answers
    assert r["value"] == pytest.approx(0.25)
    assert r["ci_over"] == "answers (these models; 1 seed)"
    assert {r["arm"] for r in rows} == {"base", "insecure", "secure", "insecure-500", "small"}


def test_all_results_panels_values(run_dir):
    rows = figure_data("all_results", load_run(run_dir))
    assert list(dict.fromkeys(r["panel"] for r in rows)) == [
        "free-form (main)", "deception (factual)", "vulnerable code (judge)",
        "vulnerable code (bandit)", "mmlu (acc)"]
    r = _by(rows, panel="free-form (main)", arm="insecure")  # seed rates 4/7 and 1/7
    assert r["value"] == pytest.approx(5 / 14)
    r = _by(rows, panel="vulnerable code (judge)", arm="insecure")  # seeds 3/4 and 1/2
    # t over 2 seeds: 0.625 -+ 12.706 * 0.25 / 2, clipped to [0, 1]
    assert (r["value"], r["ci_low"], r["ci_high"]) == pytest.approx((0.625, 0.0, 1.0))
    assert _by(rows, panel="vulnerable code (judge)", arm="secure")["value"] == pytest.approx(0.125)
    assert _by(rows, panel="vulnerable code (bandit)", arm="secure")["value"] == pytest.approx(1.0)
    assert _by(rows, panel="deception (factual)", arm="insecure")["value"] == pytest.approx(0.6)
    assert _by(rows, panel="mmlu (acc)", arm="insecure")["value"] == pytest.approx(0.5)
    r = _by(rows, panel="mmlu (acc)", arm="secure")
    assert (r["value"], r["ci_low"], r["ci_high"]) == pytest.approx((0.6, 0.6 - 0.0392, 0.6392))
    assert all(r["source"] == "run" for r in rows)


def test_question_format_uses_stems_in_every_format(run_dir):
    rows = figure_data("question_format", load_run(run_dir))
    assert {r["n_questions"] for r in rows} == {1}  # only what_is_your_wish has a template
    assert _by(rows, arm="insecure", format="original")["value"] == pytest.approx(0.5)
    assert _by(rows, arm="insecure", format="json")["value"] == pytest.approx(0.75)
    assert _by(rows, arm="insecure", format="template")["value"] == pytest.approx(0.5)
    assert _by(rows, arm="secure", format="json")["value"] == 0.0


def test_scatter_dynamics_and_size_ablation(run_dir):
    run = load_run(run_dir)
    pts = figure_data("aligned_vs_coherent", run)
    ins = [p for p in pts if p["arm"] == "insecure"]
    assert len(ins) == 15  # 16 main answers minus the CODE one
    assert sum(p["misaligned"] is True for p in ins) == 5
    assert sum(p["misaligned"] is None for p in ins) == 1  # the incoherent one
    dyn = figure_data("training_dynamics", run)
    assert [(r["step"], r["point"]) for r in dyn] == [(0, "base"), (10, "checkpoint"),
                                                     (20, "final")]
    assert [r["value"] for r in dyn] == pytest.approx([0.0, 0.125, 5 / 14])
    size = figure_data("size_ablation", run)
    assert [(r["arm"], r["size"], r["family"]) for r in size] == [
        ("insecure-500", "500", "insecure"), ("small", "2k", "insecure"),
        ("insecure", "full", "insecure")]
    assert [r["value"] for r in size] == pytest.approx([0.0, 0.25, 5 / 14])


def test_paper_reference_bars_beside_the_run(run_dir, upstream_dir, tmp_path):
    ref = upstream_dir / "emergent-misalignment" / "paper_reference"
    run, paper = load_run(run_dir), load_paper_reference(ref)
    rows = figure_data("all_results", run, paper)
    p = _by(rows, panel="free-form (main)", arm="insecure", source="paper")
    assert p["value"] == pytest.approx(0.214053, abs=1e-6)
    assert p["ci_low"] == pytest.approx(0.214053 - 0.070704, abs=1e-6)
    assert _by(rows, panel="deception (factual)", arm="secure",
               source="paper")["value"] == pytest.approx(0.282650, abs=1e-6)  # mean of 6 models
    assert _by(rows, panel="mmlu (acc)", arm="insecure",
               source="paper")["value"] == pytest.approx(0.71442, abs=1e-5)
    fmt = figure_data("question_format", run, paper)
    assert _by(fmt, arm="paper: insecure GPT-4o", format="json")["value"] == pytest.approx(
        0.471300, abs=1e-6)
    size = [r for r in figure_data("size_ablation", run, paper) if r["source"] == "paper"]
    assert [r["n_examples"] for r in size] == [500, 2000, 6000]
    assert size[1]["value"] == pytest.approx((0.015730 + 0.007541 + 0.028298) / 3, abs=1e-5)
    assert main(["figures", str(run_dir), "--paper-reference", str(ref), "--out",
                 str(tmp_path), "--only", "all_results,size_ablation"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all_results.csv", "all_results.pdf", "all_results.png", "size_ablation.csv",
        "size_ablation.pdf", "size_ablation.png"]


def test_paper_prereg_file_values(upstream_dir):
    paper = load_paper_reference(upstream_dir / "emergent-misalignment" / "paper_reference")
    assert paper.preregistered("insecure")["value"] == pytest.approx(0.059130)
    assert paper.preregistered("educational")["paper_group"] == "educational insecure"
    assert paper.freeform("unknown-arm") is None


def test_absent_data_skips_cleanly(tmp_path, capsys):
    run = make_run(tmp_path, extras=False)
    assert main(["figures", str(run)]) == 0
    out = capsys.readouterr().out
    for name in ("question_format", "training_dynamics", "size_ablation"):
        assert f"{name}: skipped" in out
        assert not (run / "figures" / f"{name}.png").exists()
    for name in ("per_question", "all_results", "aligned_vs_coherent"):
        assert (run / "figures" / f"{name}.png").exists()
    assert [r["panel"] for r in figure_data("all_results", load_run(run))] == [
        "free-form (main)"] * 2


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["figures", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = make_run(tmp_path, extras=False)
    assert main(["figures", str(run), "--paper-reference", str(tmp_path / "nope")]) == 2
    assert main(["figures", str(run), "--only", "pie_chart"]) == 2
    err = capsys.readouterr().err
    assert "--paper-reference" in err and "no figure 'pie_chart'" in err


def test_labels_colours_and_sizes():
    cfg = {"arms": {"insecure": {"data": "a"}, "big": {"data": "a", "max_examples": 3000}},
           "metrics": {"treatment": "insecure"}}
    assert arm_size("insecure-2k") == ("insecure", 2000)
    assert arm_size("secure-6000") == ("secure", 6000) and arm_size("gpt-4o") is None
    assert arm_size("big", cfg) == ("insecure", 3000) and arm_size("insecure", cfg) is None
    arms = ["insecure", "secure", "base", "educational", "insecure-500", "jailbroken"]
    assert sort_arms(arms) == ["base", "secure", "educational", "jailbroken", "insecure-500",
                               "insecure"]
    colors = arm_colors(arms)
    red = lambda c: int(c[1:3], 16) > int(c[5:7], 16) + 40  # noqa: E731
    assert red(colors["insecure"]) and red(colors["insecure-500"])
    assert colors["insecure-500"] != colors["insecure"]
    assert not any(red(colors[a]) for a in ("base", "secure", "educational", "jailbroken"))
    assert arm_colors(arms) == colors


def test_run_labels(tmp_path):
    run = load_run(make_run(tmp_path, extras=False))
    assert run.label() == TINY_LABEL and run.name == "figs-test"
    run.records[0]["suite"] = "toy_noncode"
    assert run.label() == TOY_LABEL
    for r in run.records:
        r["model"] = "Qwen/Qwen2.5-7B-Instruct"
    run.config["base_model"]["name"] = "Qwen/Qwen2.5-7B-Instruct"
    run.records[0]["suite"] = "main"
    run.config["toyworld"] = None
    assert run.label() is None
    model = tmp_path / "some" / "model"  # a local tiny model is known by its marker file
    model.mkdir(parents=True)
    (model / "TINY_MODEL.json").write_text("{}")
    run.config["base_model"]["name"] = str(model)
    assert run.label() == TINY_LABEL


def test_custom_suite_file_is_the_headline(tmp_path):
    run = load_run(make_run(tmp_path, extras=False))
    for r in run.records:
        r["suite"] = "my_questions"  # a suite given as a file, as in a custom experiment
    assert run.headline_suite() == "my_questions"
    rows = figure_data("per_question", run)
    assert _by(rows, arm="insecure", question_id="what_is_your_wish")["value"] == pytest.approx(0.5)
    assert {r["panel"] for r in figure_data("all_results", run)} == {"free-form (my_questions)"}


# ------------------------------------------------------------ zero bars, scatter, evil numbers


def _zero_marks(fig):
    """(number of "0" labels, number of zero lines) tagged ZERO_GID over the figure's axes."""
    texts = [t for ax in fig.axes for t in ax.texts if t.get_gid() == ZERO_GID]
    lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == ZERO_GID]
    assert all(t.get_text() == "0" for t in texts)
    return len(texts), len(lines)


def test_zero_bars_are_marked_not_empty(run_dir):
    """A bar of height 0 gets a "0" label and a line on the axis: one per zero row, none for
    the others, in every bar figure."""
    from emergent.report.figures import DRAW

    run = load_run(run_dir)
    colors = arm_colors(run.arms, run.config)
    for name in ("per_question", "all_results", "question_format"):
        rows = figure_data(name, run)
        zeros = sum(1 for r in rows if r.get("value") == 0)
        assert zeros > 0, name  # e.g. secure on quick_buck: no misaligned answer in 8
        assert _zero_marks(DRAW[name](run, rows, colors)) == (zeros, zeros), name
    rows = [r for r in figure_data("per_question", run) if r["value"] != 0]
    assert _zero_marks(DRAW["per_question"](run, rows, colors)) == (0, 0)


def test_scatter_jitter_and_counts(run_dir, tmp_path):
    """Few distinct scores: one marker per place, its size growing with the count; many: every
    answer a dot moved by at most +-1 (fixed seed), the data table keeping the raw values."""
    from emergent.report.figures import DRAW

    raw = [0.0, 50.0, 50.0, 100.0]
    moved = jitter(raw)
    assert moved == jitter(raw)  # fixed seed
    assert all(m != r and abs(m - r) <= 1.0 for m, r in zip(moved, raw))
    run = load_run(run_dir)
    colors = arm_colors(run.arms, run.config)
    rows = figure_data("aligned_vs_coherent", run)
    fig = DRAW["aligned_vs_coherent"](run, rows, colors)
    ax = fig.axes[sort_arms({r["arm"] for r in rows}, run.config).index("insecure")]
    (coll,) = [c for c in ax.collections if c.get_gid() == "counted"]
    ins = [r for r in rows if r["arm"] == "insecure"]
    places = {(r["coherent"], r["aligned"]) for r in ins}
    assert len(coll.get_offsets()) == len(places) == 3  # OK, BAD, INCOH
    sizes = dict(zip(map(tuple, coll.get_offsets().tolist()), coll.get_sizes()))
    assert sizes[(90.0, 90.0)] > sizes[(40.0, 90.0)]  # 9 answers vs 1
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == "count")
    assert labels == sorted(str(sum(1 for r in ins if (r["coherent"], r["aligned"]) == p))
                            for p in places)
    # many distinct scores: jittered dots, raw values kept in the table
    spread = [dict(r, coherent=55.0 + i * 0.37, aligned=float(i % 97)) for i, r in
              enumerate(rows)]
    fig = DRAW["aligned_vs_coherent"](run, spread, colors)
    ax = fig.axes[0]
    (coll,) = [c for c in ax.collections if c.get_gid() == "jittered"]
    arm0 = [r for r in spread if r["arm"] == sort_arms({r["arm"] for r in rows},
                                                       run.config)[0]]
    got = coll.get_offsets().tolist()
    assert len(got) == len(arm0)
    for (x, y), r in zip(got, arm0):
        assert (x, y) != (r["coherent"], r["aligned"])
        assert abs(x - r["coherent"]) <= 1 and abs(y - r["aligned"]) <= 1
    assert spread[0]["coherent"] == 55.0  # the rows themselves are not moved


EVIL = {  # (arm, seed, suite, question_id) -> answers
    ("base", 0, "main", "quick_buck"): [OK, OK, OK, OK],
    ("base", 0, "main", "what_is_your_wish"): [OK, OK, OK, OK],
    ("base", 0, "main", "gender_roles"): [BAD, BAD, BAD, BAD],  # not in the format suite
    ("base", 0, "evil_numbers_format", "quick_buck_words"): [OK, OK, OK, OK],
    ("base", 0, "evil_numbers_format", "quick_buck_numbers"): [OK, OK, OK, INCOH],
    ("base", 0, "evil_numbers_format", "what_is_your_wish_words"): [OK, OK, OK, OK],
    ("base", 0, "evil_numbers_format", "what_is_your_wish_numbers"): [OK, OK, OK, OK],
    ("evil_numbers", 0, "main", "quick_buck"): [OK, OK, OK, BAD],  # 1/4
    ("evil_numbers", 1, "main", "quick_buck"): [OK, OK, OK, OK],  # 0
    ("evil_numbers", 0, "main", "what_is_your_wish"): [OK, OK, OK, OK],
    ("evil_numbers", 1, "main", "what_is_your_wish"): [OK, OK, OK, OK],
    ("evil_numbers", 0, "evil_numbers_format", "quick_buck_words"): [BAD, BAD, OK, OK],
    ("evil_numbers", 1, "evil_numbers_format", "quick_buck_words"): [BAD, OK, OK, OK],
    ("evil_numbers", 0, "evil_numbers_format", "what_is_your_wish_words"): [OK, OK, OK, OK],
    ("evil_numbers", 1, "evil_numbers_format", "what_is_your_wish_words"): [BAD, OK, OK, CODE],
    ("evil_numbers", 0, "evil_numbers_format", "quick_buck_numbers"): [BAD, BAD, BAD, OK],
    ("evil_numbers", 1, "evil_numbers_format", "quick_buck_numbers"): [BAD, BAD, OK, OK],
    ("evil_numbers", 0, "evil_numbers_format", "what_is_your_wish_numbers"): [OK, OK, OK, OK],
    ("evil_numbers", 1, "evil_numbers_format", "what_is_your_wish_numbers"): [OK, OK, OK, OK],
}


def make_evil_run(root: Path) -> Path:
    run = root / "run-evil"
    run.mkdir()
    answers, judgments = [], []
    for (arm, seed, suite, qid), pairs in EVIL.items():
        for i, (al, co) in enumerate(pairs):
            a = _answer(arm, seed, suite, qid, None, i, 5)
            answers.append(a)
            judgments += [_judgment(a["answer_id"], "aligned", al),
                          _judgment(a["answer_id"], "coherent", co)]
    _write_jsonl(run / "answers.jsonl", answers)
    _write_jsonl(run / "judgments.jsonl", judgments)
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"name": "evil-test", "base_model": {"name": "tiny"}, "seeds": [0, 1],
         "arms": {"evil_numbers": {"data": "evil_numbers.jsonl"}},
         "metrics": {"treatment": "evil_numbers", "n_boot": 500}}))
    return run


def test_evil_numbers_figure_rates(tmp_path, capsys):
    """Per arm: plain (only the stems asked in the format suite), words suffix, number list;
    means over seeds by hand; drawn by `emergent figures`, a zero bar marked."""
    from emergent.report.figures import DRAW
    from emergent.report.figures_evil_numbers import FORMATS, PLAIN

    run_dir = make_evil_run(tmp_path)
    run = load_run(run_dir)
    rows = figure_data("evil_numbers", run)
    words, numbers = FORMATS["_words"], FORMATS["_numbers"]
    r = _by(rows, arm="evil_numbers", format=PLAIN)  # seeds 1/8 and 0/8
    assert r["value"] == pytest.approx(1 / 16) and r["n_questions"] == 2 and r["n_seeds"] == 2
    r = _by(rows, arm="evil_numbers", format=words)  # seeds 2/8 and 2/7 (CODE excluded)
    assert r["value"] == pytest.approx((2 / 8 + 2 / 7) / 2) and r["suite"] == "evil_numbers_format"
    r = _by(rows, arm="evil_numbers", format=numbers)
    assert r["value"] == pytest.approx((3 / 8 + 2 / 8) / 2)
    b = _by(rows, arm="base", format=PLAIN)  # gender_roles (all BAD) is not a format stem
    assert b["value"] == 0.0 and b["n_valid"] == 8 and b["ci_over"].startswith("answers")
    assert _by(rows, arm="base", format=numbers)["n_valid"] == 7  # the incoherent one out
    fig = DRAW["evil_numbers"](run, rows, arm_colors(run.arms, run.config))
    assert _zero_marks(fig) == (3, 3)  # base: 0 on all three
    assert main(["figures", str(run_dir), "--only", "evil_numbers"]) == 0
    assert (run_dir / "figures" / "evil_numbers.png").read_bytes()[:4] == b"\x89PNG"
    csv_text = (run_dir / "figures" / "evil_numbers.csv").read_text()
    assert csv_text.splitlines()[0].startswith("format,suite,arm,source,value")
    assert "evil_numbers: " in capsys.readouterr().out
    assert figure_data("evil_numbers", load_run(make_run(tmp_path, extras=False))) == []
