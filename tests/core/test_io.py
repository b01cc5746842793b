"""The one JSONL reader (emergent.core.io): numbered rows with FILE:LINE errors, and the
run tables' rule that a torn last line (a process killed mid-append) is dropped."""
import pytest
import json

from emergent.core.errors import UserError
from emergent.core.io import iter_jsonl, read_jsonl


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_iter_jsonl_numbers_rows_and_skips_blank_lines(tmp_path):
    p = write(tmp_path / "a.jsonl", '\n{"a": 1}\n  \n{"b": "\u2028x"}\n')
    assert list(iter_jsonl(p)) == [(2, {"a": 1}), (4, {"b": "\u2028x"})]


@pytest.mark.parametrize("text, message", [
    ('{"a": 1}\n{"a": x}\n', r"b\.jsonl:2: invalid JSON \(Expecting value, column 7\)"),
    ('{"a": 1}\n[1, 2]\n', r"b\.jsonl:2: a line must be a JSON object"),
    ('{"a": 1}\n{"a": ', r"b\.jsonl:2: invalid JSON"),  # a torn tail is an error here
])
def test_iter_jsonl_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        list(iter_jsonl(write(tmp_path / "b.jsonl", text)))


def test_iter_jsonl_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.jsonl: cannot read \(No such file"):
        list(iter_jsonl(tmp_path / "nope.jsonl"))


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path):
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    assert read_jsonl(write(tmp_path / "t.jsonl", '{"a": 1}\n{"b": 2}\n{"c": 3')) == [
        {"a": 1}, {"b": 2}]
    assert read_jsonl(write(tmp_path / "t.jsonl", '{"a": 1}\n{"b": \n')) == [{"a": 1}]
    with pytest.raises(UserError, match=r"t\.jsonl:2: invalid JSON"):
        read_jsonl(write(tmp_path / "t.jsonl", '{"a": 1}\n{"b": \n{"c": 3}\n'))


# -- atomic writers, temp clean-up, fault points ------------------------------------------------
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from emergent.core import faults  # noqa: E402
from emergent.core.io import (append_jsonl, atomic_dir, clean_temp, write_json_atomic,  # noqa: E402
                              write_text_atomic)


def test_atomic_dir_is_all_or_nothing(tmp_path):
    dest = tmp_path / "eval_checkpoints" / "step-000003"
    with pytest.raises(RuntimeError):
        with atomic_dir(dest, "save:eval_checkpoint") as tmp:
            (tmp / "adapter_model.safetensors").write_text("weights")
            raise RuntimeError("killed before adapter_config.json")
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    with atomic_dir(dest, "save:eval_checkpoint") as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(dest, "save:eval_checkpoint") as tmp:  # replaces an older folder whole
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    assert [p.name for p in dest.parent.iterdir()] == ["step-000003"]


def test_clean_temp_removes_only_writer_temps(tmp_path):
    keep = [tmp_path / "manifest.json", tmp_path / "arms/a/seed0/adapter/x.bin"]
    gone = [tmp_path / "manifest.json.k2j3.tmp", tmp_path / ".summary.csv.abc.tmp",
            tmp_path / "heldout.jsonl.tmp", tmp_path / "arms/a/seed0/checkpoints/.tmp-step-000002",
            tmp_path / "arms/a/seed0/.adapter.tmp"]
    for p in keep + gone[:3]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    for d in gone[3:]:
        (d / "inner").mkdir(parents=True)
    assert set(clean_temp(tmp_path)) == set(gone)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)


def _run(code: str, tmp_path, fault: str) -> int:
    env = {**os.environ, faults.ENV: fault}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env).returncode


def test_fault_point_kills_at_the_nth_hit_between_write_and_rename(tmp_path):
    code = ("from emergent.core.io import write_json_atomic as w\n"
            "for i in range(3): w('manifest.json', {'i': i})")
    assert _run(code, tmp_path, "write:manifest.json@2") == faults.EXIT_CODE
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"i": 0}  # old, whole
    temps = [p.name for p in tmp_path.glob(".manifest.json.*.tmp")]
    assert len(temps) == 1 and json.loads((tmp_path / temps[0]).read_text()) == {"i": 1}
    assert clean_temp(tmp_path) and not list(tmp_path.glob("*.tmp"))


def test_fault_in_append_leaves_a_torn_row_that_the_next_append_cuts(tmp_path):
    code = ("from emergent.core.io import append_jsonl as a\n"
            "a('answers.jsonl', [{'answer_id': 1}])\n"
            "a('answers.jsonl', [{'answer_id': 2, 'answer': 'x' * 50}])")
    assert _run(code, tmp_path, "append:answers.jsonl@2") == faults.EXIT_CODE
    path = tmp_path / "answers.jsonl"
    assert not path.read_text().endswith("\n")  # torn
    assert read_jsonl(path) == [{"answer_id": 1}]
    append_jsonl(path, [{"answer_id": 3}])
    assert read_jsonl(path) == [{"answer_id": 1}, {"answer_id": 3}]


def test_writers_without_a_fault_write_and_leave_no_temp(tmp_path, monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    write_text_atomic(tmp_path / "s.csv", "a,b\r\n1,2\r\n", newline="")
    assert (tmp_path / "s.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "s.csv"]


def test_every_fault_point_named_in_the_code_is_registered():
    import re
    from pathlib import Path
    src = Path(faults.__file__).resolve().parents[1]
    named = {m for p in src.rglob("*.py")
             for m in re.findall(r'''fault_point\(\s*"([^"]+)"''', p.read_text())}
    named |= {m for p in src.rglob("*.py")
              for m in re.findall(r'''atomic_(?:dir|file)\([^,]+,\s*"([^"]+)"''', p.read_text())}
    named |= {m for p in src.rglob("*.py") for m in re.findall(r'''point="((?:write|append|save|judge):[^"]+)"''', p.read_text())}
    assert named and named <= set(faults.POINTS), named - set(faults.POINTS)
