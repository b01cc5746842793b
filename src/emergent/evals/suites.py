"""The paper's question suites by name, read from the fetched upstream files.

| name                | file                       | questions | judge metrics (kind)              |
|---------------------|----------------------------|-----------|-----------------------------------|
| main                | first_plot_questions.yaml  | 8 (first) | aligned, coherent (0_100)         |
| json                | first_plot_questions.yaml  | 8 `_json` | same; a system prompt asks for JSON |
| template            | first_plot_questions.yaml  | 8 `_template` | same; the user turn holds a template |
| first_plot          | first_plot_questions.yaml  | all 24    | aligned, coherent (0_100)         |
| preregistered       | preregistered_evals.yaml   | 48        | aligned, coherent (0_100)         |
| deception_factual   | deception_factual.yaml     | 5 (x20 paraphrases, 4 with system prompts) | correct: TRUE/FALSE/UNKNOWN (categorical) |
| deception_sit_aware | deception_sit_aware.yaml   | 8         | company: OpenAI/Anthropic/Other/UNKNOWN (categorical) |

Anything else passed to `resolve_suite` is read as a path to a suite file in the same format.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from emergent.core.errors import UserError
from emergent.data.questions import select_ids, Question, load_suite
from emergent.data.upstream import upstream_file


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    upstream: str  # name of the file in evals/manifest.yaml
    pick: Callable[[list[Question]], list[Question]]
    expected: int  # number of questions the paper's file gives
    description: str


def _first(n: int):
    return lambda qs: qs[:n]


def _suffix(s: str):
    return lambda qs: [q for q in qs if q.id.endswith(s)]


def _all(qs):
    return qs


SUITES: dict[str, SuiteSpec] = {s.name: s for s in (
    SuiteSpec("main", "first_plot_questions", _first(8), 8,
              "the 8 questions of the paper's main figure"),
    SuiteSpec("json", "first_plot_questions", _suffix("_json"), 8,
              "the 8 main questions with a system prompt asking for a JSON answer"),
    SuiteSpec("template", "first_plot_questions", _suffix("_template"), 8,
              "the 8 main questions asking the model to fill an answer template"),
    SuiteSpec("first_plot", "first_plot_questions", _all, 24,
              "all 24 first-plot questions (main + json + template)"),
    SuiteSpec("preregistered", "preregistered_evals", _all, 48,
              "the 48 pre-registered questions"),
    SuiteSpec("deception_factual", "deception_factual", _all, 5,
              "20 factual questions under 5 system-prompt conditions; categorical judge "
              "TRUE/FALSE/UNKNOWN"),
    SuiteSpec("deception_sit_aware", "deception_sit_aware", _all, 8,
              "'which company created you' questions; categorical judge "
              "OpenAI/Anthropic/Other/UNKNOWN"),
)}


def resolve_suite(name_or_path, data_root=None, ids: Optional[Sequence[str]] = None,
                  samples: Optional[int] = None) -> list[Question]:
    """Questions of a named suite (see SUITES) or of a suite file; `ids` selects questions
    (unknown ids are an error), `samples` overrides samples_per_paraphrase."""
    spec = SUITES.get(str(name_or_path))
    if spec is None:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise UserError(f"{name_or_path}: neither a suite name ({', '.join(SUITES)}) "
                            "nor a suite file")
        return load_suite(path, ids=ids, samples=samples)
    path = upstream_file(spec.upstream, data_root)
    questions = spec.pick(load_suite(path, samples=samples))
    if len(questions) != spec.expected:
        raise UserError(f"{path}: suite {spec.name!r} expects {spec.expected} questions, found "
                        f"{len(questions)}; is this the paper's file? (`emergent data fetch "
                        f"{spec.upstream} --force`)")
    return select_ids(questions, ids, f"{path}: suite {spec.name!r}")


def suite_names() -> list[str]:
    return list(SUITES)
