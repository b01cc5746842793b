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
