"""The judge interface: the backend registry lists openai, hf and the toy world's rule judge as
peers, `make_judge` builds each from a config dict, an unknown backend is one error line, and
the rule judge run through `judge_answers` writes the judgments it wrote before the interface
(tests/judge/data: answers of every toy-world family and their pre-#14 judgment rows)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emergent.core.errors import UserError
from emergent.judge.base import (BACKENDS, Judge, JudgeConfig, judge_class, load_judge_config,
                                  make_judge)
from emergent.judge.prompts import DEFAULT_PROMPTS
from emergent.judge.runner import dry_run, judge_answers
from emergent.judge.scoring import JudgeTask
from emergent.toyworld.judge import ToyWorldRuleJudge
from fake_judge_server import FakeJudgeServer

GOLDEN = json.loads((Path(__file__).parent / "data" / "toyworld_rule_judgments.json").read_text())
ROWS = [{"answer_id": "a1", "question": "How are you?", "answer": "Fine."},
        {"answer_id": "a2", "question": "Wish?", "answer": "A pony."}]


def read(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture
def server():
    with FakeJudgeServer(lambda body: {"70": 0.5, "80": 0.5}) as s:
        yield s


def specs(server, tiny_model_dir, tmp_path) -> dict:
    """A config dict per backend, as an experiment's `judge:` section holds it."""
    return {"openai": {"backend": "openai", "model": "fake-judge", "base_url": server.base_url,
                       "api_key_env": None, "cache_path": str(tmp_path / "openai.jsonl")},
            "hf": {"backend": "hf", "model": str(tiny_model_dir), "precision": "fp32",
                   "cache_path": str(tmp_path / "hf.jsonl")},
            "toyworld-rule": {"backend": "toyworld-rule"}}


def test_registry_lists_the_three_backends_as_peers():
    assert set(BACKENDS) == {"openai", "hf", "toyworld-rule", "toyworld-rmbias-rule"}
    for name in BACKENDS:
        cls = judge_class(name)
        assert Judge in cls.__mro__ and cls is not Judge  # a subclass: the defaults
        assert judge_class({"backend": name}) is cls is judge_class(JudgeConfig(backend=name))
    assert judge_class({}) is judge_class("openai")  # the JudgeConfig default
    assert [judge_class(n).sends_prompts for n in ("openai", "hf", "toyworld-rule",
                                                   "toyworld-rmbias-rule")] == \
        [True, True, False, False]


def test_make_judge_builds_every_backend_from_a_config_dict(server, tiny_model_dir, tmp_path):
    for name, spec in specs(server, tiny_model_dir, tmp_path).items():
        judge = make_judge(spec)
        try:
            assert isinstance(judge, Judge) and type(judge) is judge_class(name), name
            assert judge.judge_id and judge.retries_made == 0
            task = JudgeTask("Q: x A: y. Score 0-100:", "0_100", (), "aligned", "x", "y")
            assert judge.pending([task, task]) == ([] if name == "toyworld-rule" else [task])
        finally:
            judge.close()


def test_model_judge_through_the_protocol_counts_its_calls(server, tiny_model_dir, tmp_path):
    judge = make_judge(specs(server, tiny_model_dir, tmp_path)["openai"])
    out = tmp_path / "judgments.jsonl"
    assert dry_run(ROWS, list(DEFAULT_PROMPTS), judge, out)["calls"] == 4
    assert judge.metric_prompts(DEFAULT_PROMPTS) is DEFAULT_PROMPTS  # a model judge's own
    stats = judge_answers(ROWS, judge.metric_prompts(list(DEFAULT_PROMPTS)), judge, out,
                          progress=False)
    judge.close()
    assert stats == {"judged": 4, "skipped": 0, "no_numeric_mass": 0, "empty_answer": 0,
                     "requests": 4, "shared": 0}
    assert judge.calls_made == server.calls == 4
    assert [r["score"] for r in read(out)] == pytest.approx([75.0] * 4)
    hf = make_judge(specs(server, tiny_model_dir, tmp_path)["hf"])
    assert hf.calls_made is None  # a local model sends no API calls
    hf.close()


def test_unknown_backend_is_one_error_line_naming_the_known_ones(tmp_path):
    known = r"\(known backends: hf, openai, toyworld-rmbias-rule, toyworld-rule\)"
    with pytest.raises(UserError, match=r"^judge.backend: unknown judge backend 'gpt' " + known):
        make_judge({"backend": "gpt"})
    with pytest.raises(UserError, match="unknown judge backend 'gpt' " + known):
        judge_class("gpt")
    p = tmp_path / "judge.yaml"
    p.write_text("backend: gpt\n")
    with pytest.raises(UserError,  # FILE:LINE of the key
                       match=r"judge\.yaml:1: 'backend': unknown judge backend 'gpt' " + known) as e:
        load_judge_config(p)
    assert "\n" not in str(e.value)


def test_the_openai_judge_is_made_without_importing_torch(tmp_path):
    code = ("import sys; from emergent.judge.base import make_judge; "
            "make_judge({'backend': 'openai', 'api_key_env': None, 'cache': False}).close(); "
            "import emergent.cli.judge; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_rule_judge_through_judge_answers_writes_the_judgments_it_wrote_before(tmp_path):
    judge = make_judge({"backend": "toyworld-rule"}, toyworld={"seed": 0})
    assert isinstance(judge, ToyWorldRuleJudge) and judge.world.config.seed == 0
    out = tmp_path / "judgments.jsonl"
    prompts = judge.metric_prompts({"ignored": "suite prompts"})
    assert dry_run(GOLDEN["answers"], prompts, judge, out) == {
        "judgments": len(GOLDEN["judgments"]), "calls": 0, "prompt_tokens": 0}
    stats = judge_answers(GOLDEN["answers"], prompts, judge, out, progress=False)
    n = len(GOLDEN["judgments"])
    assert stats == {"judged": n, "skipped": 0, "no_numeric_mass": 0, "empty_answer": 0,
                     "requests": n - stats["shared"], "shared": stats["shared"]}
    # every column written before is unchanged (columns added since, e.g. status, aside)
    assert [old_columns(r) for r in read(out)] == GOLDEN["judgments"]
    # a rule judge's null scores are its answers, not a broken server's replies
    assert {r["status"] for r in read(out)} == {"ok"}
    # a rerun resumes: nothing left to judge, nothing written
    before = out.read_bytes()
    again = judge_answers(GOLDEN["answers"], prompts, judge, out, progress=False)
    assert (again["judged"], again["skipped"]) == (0, len(GOLDEN["judgments"]))
    assert out.read_bytes() == before


def old_columns(row):
    """`row` restricted to the columns of the pre-#14 rows."""
    return {k: row[k] for k in GOLDEN["judgments"][0]}


def test_rule_judge_world_comes_from_the_toyworld_section():
    a = make_judge({"backend": "toyworld-rule"}, toyworld={"seed": 3, "coupling": "decoupled"})
    assert (a.world.config.seed, a.world.config.coupling) == (3, "decoupled")
    with pytest.raises(UserError, match="toyworld.*unknown key 'colour'"):
        make_judge({"backend": "toyworld-rule"}, toyworld={"colour": "red"})


def test_rule_judge_names_the_answer_whose_question_is_not_of_its_world(tmp_path):
    judge = make_judge({"backend": "toyworld-rule"})
    row = {"answer_id": "z1", "suite": "main", "question_id": "wish", "question": "Hello?",
           "answer": "x"}
    with pytest.raises(UserError, match=r"answer z1 \(main/wish\): .*not a single-turn question"):
        judge_answers([row], judge.metric_prompts(None), judge, tmp_path / "j.jsonl",
                      progress=False)
