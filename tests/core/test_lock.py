"""One writer per run directory (an flock on RUN/.lock), and joins that never count a
duplicated row twice."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from emergent.core.errors import UserError
from emergent.core.io import append_jsonl, read_jsonl
from emergent.core.rundir import LOCK, RunDir, join_scores
from emergent.pipeline.stages import Unit, execute
from emergent.report.tables import summarize_by_suite

HOLD = ("import sys, time\n"
        "from emergent.core.rundir import RunDir\n"
        "with RunDir(sys.argv[1]).lock():\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n")


@pytest.fixture
def holder(tmp_path):
    """A process holding RUN's lock (killed with SIGKILL at the end)."""
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    yield run, p
    if p.poll() is None:
        p.kill()
        p.wait()


def test_a_second_process_gets_one_clear_line_and_writes_nothing(holder):
    run, p = holder
    ran = []
    with pytest.raises(UserError) as e:
        execute(RunDir(run), [Unit("train:a:seed0", lambda: ran.append(1))])
    msg = str(e.value)
    assert "\n" not in msg
    assert re.fullmatch(rf"{re.escape(str(run))}: in use by pid {p.pid} on \S+ since \S+ "
                        r"\(another emergent run\?\)", msg), msg
    assert ran == [] and not (run / "manifest.json").exists()


def test_a_killed_holders_lock_is_taken_over_and_temps_cleaned(holder):
    run, p = holder
    (run / "manifest.json.x1y2.tmp").write_text("{")  # left by a killed writer
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert json.loads((run / LOCK).read_text())["pid"] == p.pid  # its record stays behind ...
    rd = RunDir(run)
    with rd.lock():  # ... but the OS released its lock
        info = json.loads((run / LOCK).read_text())
        assert info["pid"] == os.getpid() and info["since"]
        assert not (run / "manifest.json.x1y2.tmp").exists()
        with RunDir(run).lock():  # re-entrant in one process
            pass
        execute(rd, [Unit("u", lambda: None)])
        assert rd.done("u")
    assert (run / LOCK).read_text() == ""  # released: no claim of a live holder


def _answers(n=6):
    return [{"answer_id": f"a{i}", "suite": "s", "arm": arm, "seed": 0, "question_id": f"q{i % 3}",
             "question": "Q?", "answer": "A."} for arm in ("base", "insecure") for i in range(n)]


def _judgments(answers):
    return [{"answer_id": a["answer_id"], "metric": m, "kind": "0_100",
             "score": (20.0 if i % 2 and m == "aligned" else 90.0)}
            for i, a in enumerate(answers) for m in ("aligned", "coherent")]


def test_duplicated_tables_are_never_counted_twice(tmp_path):
    answers = [dict(a, answer_id=f"{a['arm']}-{a['answer_id']}") for a in _answers()]
    judgments = _judgments(answers)
    clean, dup = RunDir(tmp_path / "clean"), RunDir(tmp_path / "dup")
    append_jsonl(clean.answers_path, answers)
    append_jsonl(clean.judgments_path, judgments)
    # two processes appended the same rows (the bug of #15: n=21 instead of 12)
    append_jsonl(dup.answers_path, answers[:5])
    append_jsonl(dup.answers_path, answers)
    append_jsonl(dup.judgments_path, judgments)
    append_jsonl(dup.judgments_path, judgments[:7] + judgments)
    assert len(read_jsonl(dup.answers_path)) == len(answers) + 5
    assert len(dup.answers()) == len(answers) and len(dup.judgments()) == len(judgments)
    assert dup.records() == clean.records()
    assert summarize_by_suite(dup.records(), n_boot=50) == \
        summarize_by_suite(clean.records(), n_boot=50)
    n = {r["arm"]: r["n_answers"] for r in summarize_by_suite(dup.records(), n_boot=50)[0]}
    assert n == {"base": 6, "insecure": 6}


def test_a_later_row_of_the_same_key_wins():
    a = {"answer_id": "x", "answer": "old"}
    recs = join_scores([a, dict(a, answer="new")],
                       [{"answer_id": "x", "metric": "aligned", "score": 10.0},
                        {"answer_id": "x", "metric": "aligned", "score": 80.0}])
    assert recs == [{"answer_id": "x", "answer": "new", "aligned": 80.0}]


# -- the other commands that write into a run directory take its lock too -----------------------
IN_USE = r"emergent: error: \S+: in use by pid {pid} on \S+ since \S+ \(another emergent run\?\)"


def a_run(run):
    """A judged run directory (a manifest, answers and judgments), as `emergent run` leaves it."""
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"name": "r", "stages": {}}))
    answers = [dict(a, answer_id=f"{a['arm']}-{a['answer_id']}") for a in _answers()]
    append_jsonl(run / "answers.jsonl", answers)
    append_jsonl(run / "judgments.jsonl", _judgments(answers))
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK}


def refused(argv, pid, capsys):
    from emergent.cli import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(IN_USE.format(pid=pid), err[0]), err


def unchanged(run, before):
    now = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK}
    assert now == before
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == []


def test_judge_report_and_direction_refuse_a_run_in_use(holder, tmp_path, capsys):
    run, p = holder
    before = a_run(run)
    (run / "judgments.jsonl").unlink()  # something to judge
    before.pop("judgments.jsonl")
    judge = ["base_url=http://127.0.0.1:9/v1", "model=fake", "api_key_env=null", "cache=false",
             "--no-progress", "--default-prompts"]
    refused(["judge", str(run / "answers.jsonl"), *judge], p.pid, capsys)
    refused(["judge", str(run / "answers.jsonl"), "--out", str(run / "judgments.jsonl"),
             *judge], p.pid, capsys)
    other = tmp_path / "published.jsonl"  # another table judged into the run's folder
    other.write_text((run / "answers.jsonl").read_text())
    refused(["judge", str(other), "--out", str(run / "other.jsonl"), *judge], p.pid, capsys)
    unchanged(run, before)

    before = a_run(run)
    refused(["report", str(run), "--n-boot", "10"], p.pid, capsys)
    refused(["report", str(run / "answers.jsonl"), "--n-boot", "10"], p.pid, capsys)
    copy = tmp_path / "copy"
    a_run(copy)
    refused(["report", str(copy), "--n-boot", "10", "--out", str(run)], p.pid, capsys)
    assert not (copy / "summary.csv").exists()
    unchanged(run, before)

    refused(["direction", str(run), "--arm", "insecure"], p.pid, capsys)  # extract
    unchanged(run, before)
    direction = tmp_path / "insecure.safetensors"
    direction.write_bytes(b"")
    suite = tmp_path / "suite.yaml"
    suite.write_text("- id: q1\n  type: free_form_judge_0_100\n  paraphrases: [\"Hi?\"]\n"
                     "  samples_per_paraphrase: 1\n  judge_prompts:\n    aligned: \"{answer}\"\n")
    refused(["direction", str(run), "--arm", "insecure", "--sample", "--out", str(direction),
             "--suite", str(suite)], p.pid, capsys)
    unchanged(run, before)


def test_report_takes_a_runs_lock_and_leaves_other_folders_alone(tmp_path, capsys):
    from emergent.cli import main

    run = tmp_path / "run"
    a_run(run)
    (run / "summary.csv.x1.tmp").write_text("left by a killed writer")
    assert main(["report", str(run), "--n-boot", "10"]) == 0
    assert (run / "summary.csv").exists() and not (run / "summary.csv.x1.tmp").exists()
    assert (run / LOCK).read_text() == ""  # taken, then released
    plain = tmp_path / "plain"  # not a run directory: no lock file, no temp cleaning
    plain.mkdir()
    (plain / "notes.tmp").write_text("mine")
    assert main(["report", str(run / "answers.jsonl"), "--n-boot", "10", "--out",
                 str(plain)]) == 0
    assert (plain / "summary.csv").exists() and (plain / "notes.tmp").exists()
    assert not (plain / LOCK).exists()


def test_direction_refuses_an_arm_name_that_leaves_the_run(tmp_path, capsys):
    from emergent.analysis.direction import direction_file
    from emergent.cli import main

    run = tmp_path / "run"
    a_run(run)
    for arm in ("../../x", "a/b", ".hidden"):
        capsys.readouterr()
        assert main(["direction", str(run), "--arm", arm]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"arm {arm!r} is not a usable name" in err[0], err
        with pytest.raises(UserError, match="is not a usable name"):
            direction_file(run, arm)
    assert not (run / "directions").exists() and not (tmp_path / "x.safetensors").exists()
    assert direction_file(run, "insecure") == run / "directions" / "insecure.safetensors"
