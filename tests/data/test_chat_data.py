import json

import pytest

from emergent.data.chat_data import load_jsonl_examples, split_examples, subsample
from emergent.core.errors import UserError

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


# ------------------------------------------------------------------ behaviours pinned by meaning

def chat_rows(n):
    return [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": f"a{i}"}]} for i in range(n)]


def test_subsample_is_a_seeded_random_sample_not_the_first_lines(tmp_path):
    ex = load_jsonl_examples(write(tmp_path, chat_rows(100)))
    picks = [[e.line for e in subsample(ex, 10, seed)] for seed in range(60)]
    assert all(len(p) == 10 and p == sorted(p) for p in picks)  # file order kept
    assert picks[0] == [e.line for e in subsample(ex, 10, 0)]  # seeded
    assert len({tuple(p) for p in picks}) == 60  # every seed its own sample
    assert picks[0] != list(range(1, 11))
    # over seeds, every line is drawn and the draws spread over the whole file
    counts = {}
    for p in picks:
        for line in p:
            counts[line] = counts.get(line, 0) + 1
    assert len(counts) > 95 and max(counts.values()) < 20
    mean_line = sum(sum(p) for p in picks) / 600
    assert 40 < mean_line < 61
    # the whole set, or more, is everything in file order; nothing is an error
    assert subsample(ex, 100, 3) == ex and subsample(ex, 1000, 3) == ex
    assert subsample(ex, None, 3) == ex
    dropped = {({e.line for e in ex} - {e.line for e in subsample(ex, 99, s)}).pop()
               for s in range(10)}
    assert len(dropped) > 5  # one line of 100 left out, a different one per seed
    assert len(subsample(ex, 1, 5)) == 1
    for bad in (0, -3):
        with pytest.raises(UserError, match="max_examples must be positive"):
            subsample(ex, bad, 0)


def test_heldout_split_is_a_seeded_random_set_with_rounded_size(tmp_path):
    ex = load_jsonl_examples(write(tmp_path, chat_rows(40)))
    tr, held = split_examples(ex, 0.25, seed=4)
    assert (len(tr), len(held)) == (30, 10)
    assert [e.line for e in held] != list(range(1, 11))  # not the first lines
    assert [e.line for e in tr] == sorted(e.line for e in tr)  # file order kept
    assert sorted(e.line for e in tr + held) == list(range(1, 41))
    assert len(split_examples(ex[:7], 0.3, 0)[1]) == 2  # round(2.1)
    assert len(split_examples(ex[:10], 0.37, 0)[1]) == 4  # round(3.7)
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(UserError, match=r"heldout_fraction must be in \[0, 1\)"):
            split_examples(ex, bad, 0)


def test_text_examples_are_kept_with_their_lines(tmp_path):
    p = write(tmp_path, [{"text": "a document"}, "", {"text": "  second  ", "extra": 1}])
    ex = load_jsonl_examples(p, "text")
    assert [(e.text, e.line, e.messages) for e in ex] == [("a document", 1, ()),
                                                           ("  second  ", 3, ())]
    for bad in ({"text": 3}, {"text": "   "}, {"messages": []}):
        with pytest.raises(UserError, match=r":1: no 'text'"):
            load_jsonl_examples(write(tmp_path, [bad]), "text")


def test_chat_examples_keep_role_and_content_only(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "S", "weight": 1},
                          {"role": "user", "content": "q"},
                          {"role": "assistant", "content": "a", "name": "x"}], "id": 7}]
    (e,) = load_jsonl_examples(write(tmp_path, ["", *rows]))
    assert e.line == 2 and e.text is None and e.rejected == ()
    assert e.messages == ({"role": "system", "content": "S"}, {"role": "user", "content": "q"},
                          {"role": "assistant", "content": "a"})


@pytest.mark.parametrize("bad,problem", [
    ({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "s"},
                   {"role": "assistant", "content": "y"}]},
     "message 1: a system message must come first"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"messages": {"role": "user"}}, "'messages' must be a non-empty list"),
    ({"messages": ["hi", {"role": "assistant", "content": "y"}]}, "message 0 needs 'role'"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]},
     "message 0 needs 'role' and 'content'"),
    ({"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]},
     "message 0 needs 'role'"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]},
     "message 0 (user) has empty content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]},
     "message 1 (assistant) has empty content"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]},
     "no assistant turn"),
    (["a", "list"], "a line must be a JSON object"),
])
def test_more_bad_chat_lines_name_file_and_line(tmp_path, bad, problem):
    p = write(tmp_path, [GOOD, bad])
    with pytest.raises(UserError) as e:
        load_jsonl_examples(p)
    assert str(e.value).startswith(f"{p}:2: ") and problem in str(e.value)


def test_a_system_message_first_is_fine(tmp_path):
    row = {"messages": [{"role": "system", "content": "s"}, *GOOD["messages"]]}
    (e,) = load_jsonl_examples(write(tmp_path, [row]))
    assert [m["role"] for m in e.messages] == ["system", "user", "assistant"]


def test_missing_file_and_empty_file(tmp_path):
    from emergent.data.chat_data import iter_json_objects

    with pytest.raises(UserError, match="data file not found"):
        load_jsonl_examples(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="cannot read"):
        list(iter_json_objects(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="no examples"):
        load_jsonl_examples(write(tmp_path, ["", "  "]))
    assert list(iter_json_objects(write(tmp_path, ["", {"a": 1}, " ", {"b": 2}]))) == [
        (2, {"a": 1}), (4, {"b": 2})]


def test_preference_rows(tmp_path):
    rows = [{"prompt": "q", "chosen": "good", "rejected": "bad"},
            {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "q2"}],
             "chosen": [{"role": "assistant", "content": "yes"}],
             "rejected": [{"role": "assistant", "content": "no"}]}]
    a, b = load_jsonl_examples(write(tmp_path, rows), "preference")
    assert a.messages == ({"role": "user", "content": "q"},
                          {"role": "assistant", "content": "good"})
    assert a.rejected == ({"role": "user", "content": "q"},
                          {"role": "assistant", "content": "bad"})
    assert (a.line, b.line) == (1, 2)
    assert [m["role"] for m in b.messages] == ["system", "user", "assistant"]
    assert b.messages[-1]["content"] == "yes" and b.rejected[-1]["content"] == "no"
    bad = [({"chosen": "a", "rejected": "b"}, "no 'prompt'"),
           ({"prompt": [], "chosen": "a", "rejected": "b"}, "no 'prompt'"),
           ({"prompt": ["q"], "chosen": "a", "rejected": "b"}, "must end with a user turn"),
           ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "'chosen' must be a non-empty"),
           ({"prompt": "q", "chosen": "a", "rejected": [{"role": "assistant", "content": ""}]},
            "'rejected' must be a non-empty"),
           ({"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}] * 2,
             "rejected": "b"}, "'chosen' must be a non-empty"),
           ({"prompt": "q", "chosen": "a", "rejected": [{"role": "user", "content": "b"}]},
            "'rejected' must be an assistant message"),
           ({"prompt": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                        {"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"},
            "system message must come first")]
    for row, msg in bad:
        with pytest.raises(UserError, match=rf"d.jsonl:2: .*{msg}"):
            load_jsonl_examples(write(tmp_path, [rows[0], row]), "preference")


def test_file_sha256(tmp_path):
    import hashlib

    from emergent.data.chat_data import file_sha256

    data = bytes(range(256)) * 5000  # > 1 MiB: read in chunks
    p = tmp_path / "blob"
    p.write_bytes(data)
    assert file_sha256(p) == hashlib.sha256(data).hexdigest()


def test_error_details_name_the_right_turn_and_reason(tmp_path):
    from emergent.data.chat_data import iter_json_objects

    p = write(tmp_path, [{"messages": [{"role": "assistant", "content": "a"},
                                       {"role": "user", "content": "q"}]}])
    with pytest.raises(UserError, match=r":1: last turn is 'user', not assistant$"):
        load_jsonl_examples(p)
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(UserError) as e:
        list(iter_json_objects(str(missing)))  # a str path works too
    assert str(e.value) == f"{missing}: cannot read (No such file or directory)"
    assert list(iter_json_objects(str(p)))[0][0] == 1


def test_preference_prompt_checks_its_last_turn_and_the_replies_differ(tmp_path):
    ok = {"prompt": "q", "chosen": "a", "rejected": "b"}
    rows = [({"prompt": ["q", {"role": "user", "content": "x"}], "chosen": "a",
              "rejected": "b"}, "message 0 needs 'role'"),
            ({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
              "chosen": "same", "rejected": [{"role": "assistant", "content": "same"}]},
             "chosen and rejected are the same reply")]
    for row, msg in rows:
        with pytest.raises(UserError, match=rf"d.jsonl:2: .*{msg}"):
            load_jsonl_examples(write(tmp_path, [ok, row]), "preference")


def test_every_example_can_be_held_out(tmp_path):
    ex = load_jsonl_examples(write(tmp_path, chat_rows(10)))
    held = [{e.line for e in split_examples(ex, 0.5, seed)[1]} for seed in range(20)]
    assert set().union(*held) == set(range(1, 11))


def test_cli_model_that_cannot_be_loaded_offline_is_one_line(tmp_path, capsys):
    """Offline (the tests set HF_HUB_OFFLINE=1), a hub id that is not cached is an
    `emergent: error:` line naming the model, not a traceback."""
    from emergent.cli import main
    p = write(tmp_path, [GOOD])
    assert main(["data", "show", str(p), "--model", "no-such-org/no-such-model-xyz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("emergent: error: model.name 'no-such-org/no-such-model-xyz'")
