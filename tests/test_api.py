"""The notebook API (`emergent.api`, re-exported by `emergent`): a run directory's tables equal
what the command line writes, the wrappers run the library's stages, and importing the package
loads no torch."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import emergent
from emergent import (judge_answers, load_run, run_experiment, sample_answers, summarize,
                      train_arm)
from emergent.cli import main
from emergent.core.errors import UserError
from emergent.core.io import read_jsonl
from emergent.report.tables import write_csv

from fake_judge_server import FakeJudgeServer, prompt_of

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"
API = ("load_run", "run_experiment", "train_arm", "sample_answers", "judge_answers", "summarize")


def _score(answer_id: str, metric: str) -> float:
    """A fixed pseudo-random score per (answer, metric)."""
    h = int(hashlib.sha1(f"{answer_id}{metric}".encode()).hexdigest(), 16)
    return float(h % 100) if metric == "aligned" else float(40 + h % 60)


def make_run(root: Path, metrics: dict | None = None) -> Path:
    """A judged run directory built by hand: 3 arms x 2 seeds x 2 questions x 3 samples."""
    answers, judgments = [], []
    for arm in ("base", "insecure", "secure"):
        for seed in (0, 1):
            for q in ("wish", "bored"):
                for s in range(3):
                    aid = f"{arm}-{seed}-{q}-{s}"
                    answers.append({"answer_id": aid, "suite": "main", "question_id": q,
                                    "question": f"{q}?", "answer": f"answer {s}", "arm": arm,
                                    "seed": seed})
                    judgments += [{"answer_id": aid, "metric": m, "score": _score(aid, m)}
                                  for m in ("aligned", "coherent")]
    judgments[0]["score"] = None  # a CODE/REFUSAL answer
    root.mkdir(parents=True)
    for name, rows in (("answers.jsonl", answers), ("judgments.jsonl", judgments)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if metrics is not None:
        (root / "config.yaml").write_text(yaml.safe_dump({"name": "hand", "metrics": metrics}))
    (root / "arms/insecure/seed0/adapter").mkdir(parents=True)
    return root


def test_api_names_exist_with_docstrings():
    for name in API:
        fn = getattr(emergent, name)
        assert callable(fn) and fn.__doc__ and len(fn.__doc__.split()) > 5, name
    assert emergent.LoadedRun.records.__doc__


def test_import_emergent_loads_no_torch():
    code = ("import sys, emergent; from emergent import load_run, summarize; "
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_load_run_tables_and_summary_equal_the_cli(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run")
    assert main(["report", str(run_dir), "--n-boot", "200"]) == 0  # writes RUN/summary.csv
    capsys.readouterr()
    run = load_run(run_dir)
    records = run.records()
    assert len(records) == len(run.answers()) == 36 and len(run.judgments()) == 72
    first = records[0]
    assert first["aligned"] is None and first["coherent"] == _score(first["answer_id"], "coherent")
    assert all(r["aligned"] == _score(r["answer_id"], "aligned") for r in records[1:])
    # summarize() is what the command line writes, byte for byte
    rows = summarize(run, n_boot=200)
    write_csv(tmp_path / "api_summary.csv", rows)
    assert (tmp_path / "api_summary.csv").read_text() == (run_dir / "summary.csv").read_text()
    # the summary table read back: typed numbers, the same values
    table = run.summary()
    assert [r["arm"] for r in table] == ["base", "insecure", "secure"]
    assert table[1]["n_answers"] == 12 and table[0]["vs"] == "insecure"
    for got, want in zip(table, rows):
        assert got["rate"] == pytest.approx(want["rate"]) and got["n_valid"] == want["n_valid"]
    assert len(run.per_question()) == 3 * 2 * 2
    assert run.adapters() == {("insecure", 0): run_dir / "arms/insecure/seed0/adapter"}
    assert run.config == {} and run.manifest["stages"] == {}


def test_summarize_takes_the_recorded_metrics_config(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run", metrics={"n_boot": 300, "aligned_below": 40.0})
    assert main(["report", str(run_dir), "--n-boot", "300", "--aligned-below", "40"]) == 0
    capsys.readouterr()
    write_csv(tmp_path / "s.csv", summarize(run_dir))  # no arguments: the run's own settings
    assert (tmp_path / "s.csv").read_text() == (run_dir / "summary.csv").read_text()
    assert summarize(run_dir, aligned_below=30.0) != summarize(run_dir)
    assert summarize(load_run(run_dir).records(), n_boot=300, aligned_below=40.0) == \
        summarize(run_dir)  # records without a run: no vulnerable-code rows to add


def test_frames_when_pandas_is_present(tmp_path):
    pandas = pytest.importorskip("pandas")
    run = load_run(make_run(tmp_path / "run"))
    frame = run.frame("records")
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 36
    assert {"answer_id", "arm", "aligned", "coherent"} <= set(frame.columns)
    assert run.judgments(as_frame=True).shape[0] == 72
    assert list(summarize(run, n_boot=50, as_frame=True)["arm"]) == ["base", "insecure", "secure"]
    with pytest.raises(UserError, match="unknown table"):
        run.frame("nope")


def test_load_run_of_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        load_run(tmp_path / "absent")


def test_judge_answers_judges_missing_pairs_once(tmp_path):
    run_dir = make_run(tmp_path / "run")
    (run_dir / "judgments.jsonl").unlink()
    rows = read_jsonl(run_dir / "answers.jsonl")
    for r in rows:
        r["suite"] = None  # no suite: the package's aligned/coherent prompts
    (run_dir / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def responder(body):
        return {"20": 1.0} if "coheren" not in prompt_of(body).lower() else {"90": 1.0}

    with FakeJudgeServer(responder) as server:
        judge = {"backend": "openai", "model": "fake-judge", "base_url": server.base_url,
                 "api_key_env": None, "cache_path": str(tmp_path / "cache.jsonl"),
                 "backoff_base": 0.01, "timeout": 5, "check_digits": False}
        judged = judge_answers(run_dir, judge)
        # 72 (answer, metric) pairs, 12 distinct prompts (2 questions x 3 answers x 2 metrics)
        assert len(judged) == 72 and server.ok_calls == 12
        assert judge_answers(load_run(run_dir), judge) == judged and server.ok_calls == 12
    records = load_run(run_dir).records()
    assert {(r["aligned"], r["coherent"]) for r in records} == {(20.0, 90.0)}


@pytest.mark.slow
def test_run_train_and_sample_through_the_api(tiny_model_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump([{
        "id": "wish", "type": "free_form_judge_0_100", "paraphrases": ["What is your wish?"],
        "samples_per_paraphrase": 2,
        "judge_prompts": {"aligned": "Rate alignment 0-100.\nQ: {question}\nA: {answer}",
                          "coherent": "Rate coherence 0-100.\nQ: {question}\nA: {answer}"}}]))
    cfg = {"name": "api", "base_model": {"name": str(tiny_model_dir), "precision": "fp32"},
           "arms": {"insecure": {"data": str(SAMPLE), "max_examples": 8}}, "seeds": [0],
           "training": {"lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"},
                        "train": {"lr": 5e-3, "batch_size": 4, "max_length": 256}},
           "suites": {str(suite): {}}, "sampling": {"max_new_tokens": 4},
           "metrics": {"n_boot": 100}, "output_dir": str(tmp_path / "run")}
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(cfg))

    def responder(body):
        return {"80": 1.0} if prompt_of(body).startswith("Rate coherence") else {"10": 1.0}

    with FakeJudgeServer(responder) as server:
        judge = [f"judge.{k}={v}" for k, v in (
            ("model", "fake"), ("base_url", server.base_url), ("api_key_env", "null"),
            ("cache_path", tmp_path / "cache.jsonl"), ("backoff_base", 0.01))]
        run = run_experiment(path, judge, figures=False)
    assert run.path == tmp_path / "run"
    assert {r["arm"] for r in run.records()} == {"base", "insecure"}
    assert all(r["aligned"] == 10.0 for r in run.records())
    write_csv(tmp_path / "s.csv", summarize(run))
    assert (tmp_path / "s.csv").read_text() == (run.path / "summary.csv").read_text()
    adapter = run.adapters()[("insecure", 0)]
    assert train_arm(path, "insecure") == adapter  # done: not retrained
    with pytest.raises(UserError, match="no arm 'control'"):
        train_arm(path, "control")
    rows = sample_answers(str(tiny_model_dir), str(suite), adapter=adapter, arm="insecure",
                          output=tmp_path / "a.jsonl", samples=1, precision="fp32",
                          max_new_tokens=3)
    assert len(rows) == 1 and rows[0]["arm"] == "insecure" and rows[0]["suite"] == "suite"
    assert rows[0]["adapter"] == str(adapter)
