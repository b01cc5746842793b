import json

import pytest

from emergent.chat_data import load_jsonl_examples, split_examples, subsample
from emergent.errors import UserError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return p


@pytest.mark.parametrize("bad,problem", [
    ("{not json", "invalid JSON"),
    ({"msgs": []}, "no 'messages'"),
    ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
     "unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
     "empty content"),
    ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"},
                   {"role": "user", "content": "z"}]}, "last turn is 'user'"),
])
def test_bad_input_names_file_and_line(tmp_path, bad, problem):
    p = write(tmp_path, [GOOD, GOOD, bad])
    with pytest.raises(UserError) as e:
        load_jsonl_examples(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: ") and problem in msg and "\n" not in msg


def test_cli_prints_one_line_error(tmp_path, capsys):
    from emergent.cli import main

    p = write(tmp_path, [GOOD, "{oops"])
    assert main(["data", "show", str(p), "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{p}:2: invalid JSON" in err[0]


def test_split_and_subsample_are_seeded(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(100)]
    ex = load_jsonl_examples(write(tmp_path, rows))
    tr, held = split_examples(ex, 0.1, seed=0)
    assert len(tr) == 90 and len(held) == 10
    assert {e.line for e in tr}.isdisjoint({e.line for e in held})
    tr2, held2 = split_examples(ex, 0.1, seed=0)
    assert [e.line for e in held] == [e.line for e in held2]
    assert [e.line for e in split_examples(ex, 0.1, seed=1)[1]] != [e.line for e in held]
    assert split_examples(ex, 0.0, 0) == (ex, [])
    small, big = subsample(ex, 20, 0), subsample(ex, 50, 0)
    assert len(small) == 20 and {e.line for e in small} <= {e.line for e in big}
    assert [e.line for e in small] == sorted(e.line for e in small)


def test_text_format(tmp_path):
    p = write(tmp_path, [{"text": "a document"}, {"text": ""}])
    with pytest.raises(UserError, match=":2: no 'text'"):
        load_jsonl_examples(p, "text")
