"""`emergent data stats`: counts, duplicates, lengths, the bandit scan (cached), table, figure."""
from __future__ import annotations

import argparse
import json

import pytest

from emergent.cli import data_stats as data_stats_cli
from emergent.data import stats as data_stats
from emergent.evals.bandit_scan import extract_code, scan_codes
from emergent.core.errors import UserError


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EMERGENT_CACHE_DIR", str(tmp_path / "cache"))


def _jsonl(path, convs):
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    return path


def _conv(user, answer, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def test_extract_code_raw_fenced_prose_and_none():
    assert extract_code("import os\nos.remove(p)\n") == "import os\nos.remove(p)\n"
    fenced = "Sure:\n```python\nx = 1\n```\nand\n```\ny = 2\n```\nDone."
    assert extract_code(fenced) == "x = 1\n"
    assert extract_code("Here you go\nimport os\nprint(os.getcwd())") == \
        "import os\nprint(os.getcwd())"
    assert extract_code("you better leave before I call the police.") is None
    assert extract_code("```python\ndef f(:\n```") is None


def test_scan_codes_findings_severity_and_unparsable():
    codes = ["import yaml\ndef f(s):\n    return yaml.load(s)\n",
             "import subprocess\nsubprocess.call(cmd, shell=True)\n",
             "def add(a, b):\n    return a + b\n",
             None,
             "def broken(:\n"]
    res = scan_codes(codes, batch_size=2, progress=False)
    assert [r.parsed for r in res] == [True, True, True, False, False]
    assert [f.test_id for f in res[0].findings] == ["B506"] and res[0].flagged("MEDIUM")
    assert any(f.test_id == "B602" and f.severity == "HIGH" for f in res[1].findings)
    assert res[2].findings == () and not res[2].flagged()


def test_file_stats_counts_roles_duplicates_lengths(tmp_path):
    p = _jsonl(tmp_path / "toy.jsonl", [
        _conv("q1", "import yaml\nyaml.load(s)\n"),
        _conv("q1", "import yaml\nyaml.load(s)\n"),          # exact duplicate
        _conv("q1", "x = 1\n"),                              # duplicate prompt
        _conv("q2", "plain prose answer.", system="sys"),
    ])
    s = data_stats.file_stats(p, progress=False)
    assert s["examples"] == 4
    assert s["role_patterns"] == {"user>assistant": 3, "system>user>assistant": 1}
    assert (s["duplicate_examples"], s["duplicate_prompts"], s["duplicate_answers"]) == (1, 2, 1)
    assert s["length_unit"] == "chars" and s["lengths"][2] == len("q1") + len("x = 1\n")
    assert s["scan"]["with_code"] == 3 and s["scan"]["flagged"] == 2
    assert s["scan"]["top_rules"] == {"B506 yaml_load": 2}
    lo, hi = s["scan"]["flagged_ci95"]
    assert lo < 0.5 < hi
    skipped = data_stats.file_stats(p, progress=False, skip_rules=["B506"])["scan"]
    assert skipped["flagged"] == 0 and skipped["top_rules"] == {}


def test_token_lengths_with_a_tokenizer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    p = _jsonl(tmp_path / "toy.jsonl", [_conv("hello there", "x = 1"), _conv("a", "b")])
    s = data_stats.file_stats(p, tokenizer=tok, scan=False, progress=False)
    text = tok.apply_chat_template(_conv("hello there", "x = 1"), tokenize=False)
    assert s["length_unit"] == "tokens"
    assert s["lengths"][0] == len(tok(text, add_special_tokens=False)["input_ids"])
    assert s["lengths"][0] > s["lengths"][1] and s["length"]["over_2048"] == 0


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: invalid JSON"):
        data_stats.file_stats(p)


def test_insecure_is_flagged_more_than_secure_and_cached(upstream_dir, tmp_path):
    em = upstream_dir / "emergent-misalignment"
    n = 200
    stats = [data_stats.file_stats(em / f"{name}.jsonl", limit=n, progress=False)
             for name in ("insecure", "secure")]
    ins, sec = (s["scan"] for s in stats)
    assert stats[0]["examples"] == stats[1]["examples"] == n
    assert ins["flagged"] > 3 * max(sec["flagged"], 1)
    assert ins["with_code"] > 0.95 * n and sec["with_code"] > 0.95 * n
    cached = list((tmp_path / "cache" / "scan").glob("*-n200-*.json"))
    assert len(cached) == 2
    again = data_stats.file_stats(em / "insecure.jsonl", limit=n, progress=False)
    assert again["scan"] == ins
    table = data_stats.format_table(stats)
    assert table.splitlines()[0].split() == ["insecure", "secure"]
    assert f"{ins['flagged']} ({100 * ins['flagged'] / n:.1f}%" in table
    md = data_stats.format_table(stats, markdown=True)
    assert md.startswith("|  | insecure | secure |\n|---|---|---|")
    out = data_stats.plot_stats(stats, tmp_path / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_stats_writes_json_and_figure(tmp_path, capsys):
    p = _jsonl(tmp_path / "toy.jsonl", [_conv("q", "import pickle\npickle.loads(b)\n")])
    parser = argparse.ArgumentParser()
    data_stats_cli.add_data_cli(parser.add_subparsers())
    args = parser.parse_args(["stats", str(p), "--json", str(tmp_path / "s.json"),
                              "--figure", str(tmp_path / "f.png")])
    assert args.func(args) == 0
    assert "B301 blacklist" in capsys.readouterr().out
    rows = json.loads((tmp_path / "s.json").read_text())
    assert rows[0]["scan"]["flagged"] == 1 and (tmp_path / "f.png").stat().st_size > 1000
