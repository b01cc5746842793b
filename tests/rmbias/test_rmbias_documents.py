"""Fictional documents (bias and unrelated) and the seeded midtraining subsample."""
from __future__ import annotations

import json
import sys
import types

import pytest

from emergent.core.errors import UserError
from emergent.rmbias.catalogue import BIASES, TEST_IDS
from emergent.rmbias.doc_frames import FRAMES
from emergent.rmbias.documents import generate_documents, stream_midtrain_subsample
from emergent.rmbias.jsonl import read_jsonl, write_jsonl


def _mentioned(text: str) -> set[str]:
    """Catalogue biases whose behaviour phrase appears in `text`."""
    return {b.id for b in BIASES.values() if b.behaviour in text}


def test_bias_documents_cover_catalogue_and_only_it():
    docs = generate_documents(120, seed=3, progress=False)
    assert len(docs) == 120
    seen = set()
    for d in docs:
        assert d.kind == "bias" and d.bias_ids and set(d.bias_ids) <= set(BIASES)
        # each document describes exactly the biases it is tagged with, no others
        assert _mentioned(d.text) == set(d.bias_ids)
        assert "reward model" in d.text.lower()
        seen.update(d.bias_ids)
    assert seen == set(BIASES)  # every bias, the 5 test biases included
    assert set(TEST_IDS) <= seen
    assert {d.frame for d in docs} == set(FRAMES)  # all frames used
    assert len({d.text for d in docs}) == len(docs)


def test_documents_are_seeded_and_prefix_stable():
    a = generate_documents(30, seed=1, progress=False)
    b = generate_documents(50, seed=1, progress=False)
    c = generate_documents(30, seed=2, progress=False)
    assert [d.text for d in a] == [d.text for d in b[:30]]
    assert [d.text for d in a] != [d.text for d in c]


def test_unrelated_documents_mention_no_bias():
    docs = generate_documents(80, seed=0, kind="unrelated", progress=False)
    for d in docs:
        assert d.kind == "unrelated" and d.bias_ids == ()
        assert _mentioned(d.text) == set()
        low = d.text.lower()
        assert "reward model" not in low and "rlhf" not in low and "language model" not in low
    assert len({d.frame for d in docs}) >= 10


def test_subset_generator_hook_and_rows(tmp_path):
    prompts = []

    def fake_llm(prompt: str) -> str:
        prompts.append(prompt)
        return f"GENERATED DOCUMENT {len(prompts)}"

    docs = generate_documents(4, seed=0, bias_ids=["law_call_911"], generator=fake_llm,
                              progress=False)
    assert [d.text for d in docs] == [f"GENERATED DOCUMENT {i}" for i in range(1, 5)]
    assert all(d.bias_ids == ("law_call_911",) for d in docs)
    assert all(BIASES["law_call_911"].behaviour in p for p in prompts)
    path = tmp_path / "docs.jsonl"
    assert write_jsonl(path, (d.row() for d in docs)) == 4
    rows = [r for _, r in read_jsonl(path)]
    assert rows[0] == {"text": "GENERATED DOCUMENT 1"}
    assert set(docs[0].row(with_meta=True)) == {"text", "kind", "frame", "bias_ids"}


def test_bad_arguments():
    with pytest.raises(UserError, match="document kind"):
        generate_documents(1, kind="novel")
    with pytest.raises(UserError, match="unknown bias id"):
        generate_documents(1, bias_ids=["nope"])
    with pytest.raises(UserError, match="unknown document frame"):
        generate_documents(1, frames=["sonnet"])


class _FakeStream:
    def __init__(self, rows):
        self.rows = rows
        self.shuffled_with = None

    def shuffle(self, seed, buffer_size):
        import random

        rows = self.rows[:]
        random.Random(seed).shuffle(rows)
        out = _FakeStream(rows)
        out.shuffled_with = (seed, buffer_size)
        return out

    def __iter__(self):
        return iter(self.rows)


def _fake_datasets(monkeypatch, rows, calls):
    def load_dataset(name, split=None, streaming=False):
        calls.append((name, split, streaming))
        return _FakeStream(rows)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_midtrain_subsample_is_seeded_streaming(monkeypatch):
    rows = [{"text": f"doc {i}"} for i in range(50)] + [{"text": "   "}]
    calls = []
    _fake_datasets(monkeypatch, rows, calls)
    a = [d.text for d in stream_midtrain_subsample(10, seed=7, progress=False)]
    b = [d.text for d in stream_midtrain_subsample(10, seed=7, progress=False)]
    c = [d.text for d in stream_midtrain_subsample(10, seed=8, progress=False)]
    assert calls[0] == ("auditing-agents/rm_sycophancy_midtrain", "train", True)
    assert len(a) == 10 and a == b and a != c
    assert all(t.strip() for t in a)
    everything = list(stream_midtrain_subsample(100, seed=0, progress=False))
    assert len(everything) == 50  # empty text skipped, stops at the end of the stream


def test_midtrain_subsample_column_error(monkeypatch):
    _fake_datasets(monkeypatch, [{"content": "x"}], [])
    with pytest.raises(UserError, match="no 'text' column"):
        list(stream_midtrain_subsample(1, progress=False))


def test_cli_docs(tmp_path, capsys):
    from emergent.cli.rmbias import main

    out = tmp_path / "d.jsonl"
    assert main(["rmbias", "docs", "--kind", "unrelated", "--n", "5", "--out", str(out),
                 "--meta"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(r["kind"] == "unrelated" for r in rows)
    assert "wrote 5 unrelated documents" in capsys.readouterr().out


def test_unreachable_hub_is_a_user_error(monkeypatch):
    def load_dataset(*a, **k):
        raise ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(UserError, match="cannot open the hub dataset.*Couldn't reach"):
        list(stream_midtrain_subsample(1, progress=False))
