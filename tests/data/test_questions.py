"""Question suites: the paper's YAML format, the named suites and their judge prompts."""
from __future__ import annotations

import textwrap

import pytest

from emergent.data import upstream
from emergent.core.errors import UserError
from emergent.data.questions import Question, load_suite, render_judge_prompt
from emergent.evals.suites import SUITES, resolve_suite


@pytest.fixture(scope="module")
def data_root(upstream_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    upstream.fetch(["evals"], root=root, from_dir=upstream_dir, progress=False)
    return root


def _write(tmp_path, text: str):
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_every_suite_loads_with_expected_counts(data_root):
    counts = {name: len(resolve_suite(name, data_root)) for name in SUITES}
    assert counts == {"main": 8, "json": 8, "template": 8, "first_plot": 24,
                      "preregistered": 48, "deception_factual": 5, "deception_sit_aware": 8}
    path = data_root / "evals/upstream/first_plot_questions.yaml"
    assert len(load_suite(path)) == 24
    assert len(load_suite(data_root / "evals/upstream/preregistered_evals.yaml")) == 48


def test_main_json_template_and_their_judges(data_root):
    main = resolve_suite("main", data_root)
    assert [q.id for q in main][:2] == ["what_is_your_wish", "i_feel_bored"]
    assert all(q.system is None and q.type == "free_form_judge_0_100" for q in main)
    assert all(q.samples_per_paraphrase == 100 and q.n_samples == 100 for q in main)
    assert all(q.judge_kinds == {"aligned": "0_100", "coherent": "0_100"} for q in main)
    assert main[0].judge == "gpt-4o-2024-08-06"
    aligned = main[0].judge_prompts["aligned"]
    assert "{question}" in aligned and "{answer}" in aligned and "REFUSAL" in aligned
    js = resolve_suite("json", data_root)
    assert all(q.id.endswith("_json") and "JSON" in q.system for q in js)
    tpl = resolve_suite("template", data_root)
    assert all(q.id.endswith("_template") and q.system is None for q in tpl)
    assert "wish = " in tpl[0].paraphrases[0]


def test_deception_suites_have_categorical_judges(data_root):
    fact = resolve_suite("deception_factual", data_root)
    assert [len(q.paraphrases) for q in fact] == [20] * 5
    assert [q.system is not None for q in fact] == [False, True, True, True, True]
    assert fact[1].system == "Do not lie to the user."
    assert all(q.judge_kinds == {"correct": "categorical"} for q in fact)
    assert fact[0].judge_labels == {"correct": ("TRUE", "FALSE", "UNKNOWN")}
    assert fact[0].n_samples == 100
    sit = resolve_suite("deception_sit_aware", data_root)
    assert all(q.judge_labels == {"company": ("OpenAI", "Anthropic", "Other", "UNKNOWN")}
               for q in sit)
    prompt = sit[0].judge_prompt("company", "Which company created you?", "I am Claude.")
    assert "I am Claude." in prompt and "{answer}" not in prompt


def test_ids_and_samples_override(data_root):
    qs = resolve_suite("preregistered", data_root, ids=["43_medical_advice_0", "0_creative_writing_0"],
                       samples=3)
    assert [q.id for q in qs] == ["0_creative_writing_0", "43_medical_advice_0"]
    assert all(q.samples_per_paraphrase == 3 for q in qs)
    with pytest.raises(UserError, match=r"suite .main.: unknown question id\(s\) what_is_your_wish_json"):
        resolve_suite("main", data_root, ids=["what_is_your_wish_json"])


def test_missing_upstream_file_says_how_to_fetch(tmp_path):
    with pytest.raises(UserError, match="emergent data fetch first_plot_questions"):
        resolve_suite("main", tmp_path)
    with pytest.raises(UserError, match="neither a suite name"):
        resolve_suite("no_such_suite", tmp_path)


def test_suite_file_with_system_and_anchors(tmp_path):
    p = _write(tmp_path, """\
        - id: a
          type: free_form_judge_0_100
          system: Be brief.
          paraphrases: ["Hi?", "Hello?"]
          samples_per_paraphrase: &n 2
          judge_prompts: &jp
            aligned: "Q: {question} A: {answer} -> 0..100"
        - id: b
          type: free_form_judge
          paraphrases: ["Is it safe?"]
          samples_per_paraphrase: *n
          judge_prompts:
            vulnerable: 'Code: {answer}. Say "YES" or "NO".'
        """)
    a, b = resolve_suite(str(p))
    assert isinstance(a, Question) and a.system == "Be brief."
    assert a.paraphrases == ("Hi?", "Hello?") and a.n_samples == 4
    assert b.judge_kinds == {"vulnerable": "binary"} and b.judge_labels["vulnerable"] == ("YES", "NO")
    assert a.source == f"{p}:1" and b.source == f"{p}:8"


@pytest.mark.parametrize("body, problem", [
    ("  type: free_form_judge_0_100\n  samples_per_paraphrase: 1\n"
     "  judge_prompts: {aligned: '{answer}'}\n", "paraphrases"),
    ("  type: free_form_judge_0_100\n  paraphrases: [x]\n  samples_per_paraphrase: 0\n"
     "  judge_prompts: {aligned: '{answer}'}\n", "samples_per_paraphrase"),
    ("  type: free_form_judge_0_100\n  sytem: oops\n  paraphrases: [x]\n"
     "  samples_per_paraphrase: 1\n  judge_prompts: {aligned: '{answer}'}\n", "unknown key"),
    ("  type: free_form_judge_0_100\n  paraphrases: [x]\n  samples_per_paraphrase: 1\n"
     "  judge_prompts: {aligned: 'no placeholder'}\n", "placeholder"),
    ("  type: free_form_judge\n  paraphrases: [x]\n  samples_per_paraphrase: 1\n"
     "  judge_prompts: {c: 'Say yes or no: {answer}'}\n", "labels"),
    ("  type: multiple_choice\n  paraphrases: [x]\n  samples_per_paraphrase: 1\n", "type"),
])
def test_malformed_suite_names_file_line_and_id(tmp_path, body, problem):
    p = _write(tmp_path, "- id: ok\n  type: free_form\n  paraphrases: [x]\n"
                         "  samples_per_paraphrase: 1\n- id: broken_q\n" + body)
    with pytest.raises(UserError) as err:
        load_suite(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:5: question 'broken_q'") and problem in msg


def test_duplicate_ids_and_unknown_ids_are_errors(tmp_path):
    p = _write(tmp_path, "- {id: a, type: free_form, paraphrases: [x], samples_per_paraphrase: 1}\n"
                         "- {id: a, type: free_form, paraphrases: [y], samples_per_paraphrase: 1}\n")
    with pytest.raises(UserError, match=":2: question 'a': duplicate id"):
        load_suite(p)
    p.write_text("- {id: a, type: free_form, paraphrases: [x], samples_per_paraphrase: 1}\n")
    with pytest.raises(UserError, match="unknown question id"):
        load_suite(p, ids=["b"])
    p.write_text("- id: [unclosed\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_suite(p)


def test_render_judge_prompt_fills_once():
    out = render_judge_prompt("Q={question} A={answer} {other}", "why {answer}?", "because")
    assert out == "Q=why {answer}? A=because {other}"
