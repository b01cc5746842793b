"""The one JSONL reader (emergent.core.io): numbered rows with FILE:LINE errors, and the
run tables' rule that a torn last line (a process killed mid-append) is dropped."""
import pytest

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
