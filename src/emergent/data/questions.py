"""Question suites in the paper's YAML format.

A suite file is a YAML list; each entry has `id`, `type`, `paraphrases`,
`samples_per_paraphrase`, optional `system` (a system prompt, honoured by the sampler), optional
`judge` (the judge model the authors used) and `judge_prompts` ({metric: prompt}) where the prompt
holds `{question}` and/or `{answer}`. YAML anchors/aliases (used by the upstream files) work.

How each metric is scored follows from the question type:
* `free_form_judge_0_100` -> every metric is a 0..100 score (kind "0_100");
* `free_form_judge` -> a label judge: the labels are the double-quoted words of the prompt
  ("TRUE"/"FALSE"/"UNKNOWN", "OpenAI"/"Anthropic"/"Other"/"UNKNOWN"), or an explicit
  `judge_labels: {metric: [..]}` (an extension of this package); YES/NO is "binary", anything
  else "categorical";
* `free_form` -> sampled but not judged.

Unknown keys are errors (a misspelt `system` would silently drop the system prompt).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import yaml

from emergent.core.errors import UserError
from emergent.core.input_files import read_yaml_file

QUESTION_TYPES = ("free_form_judge_0_100", "free_form_judge", "free_form")
KNOWN_KEYS = {"id", "type", "paraphrases", "samples_per_paraphrase", "system", "judge",
              "judge_prompts", "judge_labels"}
_PLACEHOLDER = re.compile(r"\{(question|answer)\}")
_QUOTED_LABEL = re.compile(r'"([A-Za-z][A-Za-z0-9_\-]{0,40})"')


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    paraphrases: tuple[str, ...]
    samples_per_paraphrase: int
    system: Optional[str] = None
    judge_prompts: dict[str, str] = field(default_factory=dict, hash=False)
    judge: Optional[str] = None  # the judge model named in the file (informational)
    judge_kinds: dict[str, str] = field(default_factory=dict, hash=False)  # metric -> kind
    judge_labels: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    source: Optional[str] = None  # "FILE:LINE" the question came from

    @property
    def n_samples(self) -> int:
        return len(self.paraphrases) * self.samples_per_paraphrase

    def judge_prompt(self, metric: str, question: str, answer: str) -> str:
        return render_judge_prompt(self.judge_prompts[metric], question, answer)


def render_judge_prompt(template: str, question: str, answer: str) -> str:
    """Fill `{question}` and `{answer}` in one pass (text inside the answer is never re-filled,
    and other braces in the template are left alone, unlike str.format)."""
    values = {"question": question, "answer": answer}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def judge_kind(labels: Sequence[str]) -> str:
    if not labels:
        return "0_100"
    return "binary" if {x.upper() for x in labels} == {"YES", "NO"} else "categorical"


def prompt_labels(prompt: str) -> tuple[str, ...]:
    """The double-quoted single-word labels a label-judge prompt asks for, in order."""
    seen: dict[str, None] = {}
    for label in _QUOTED_LABEL.findall(prompt):
        seen.setdefault(label, None)
    return tuple(seen)


def sequence_item_lines(text: str, key: Optional[str] = None) -> list[int]:
    """1-based line of each item of the top-level YAML list (or of the list under `key`)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if key is not None and isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def read_yaml(path: Path):
    """(text, data) of a suite file; invalid UTF-8, invalid YAML and duplicate keys are one line
    `FILE:LINE: problem` (emergent.core.input_files)."""
    text, data, _ = read_yaml_file(path)
    return text, data


def _question(raw, where: str) -> Question:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: each question must be a mapping, got {type(raw).__name__}")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid:
        raise UserError(f"{where}: question without a string `id`")
    here = f"{where}: question {qid!r}"
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise UserError(f"{here}: unknown key(s) {', '.join(unknown)} "
                        f"(allowed: {', '.join(sorted(KNOWN_KEYS))})")
    qtype = raw.get("type")
    if qtype not in QUESTION_TYPES:
        raise UserError(f"{here}: type must be one of {', '.join(QUESTION_TYPES)}, got {qtype!r}")
    paras = raw.get("paraphrases")
    if (not isinstance(paras, list) or not paras
            or not all(isinstance(p, str) and p.strip() for p in paras)):
        raise UserError(f"{here}: `paraphrases` must be a non-empty list of non-empty strings")
    n = raw.get("samples_per_paraphrase")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"{here}: `samples_per_paraphrase` must be a positive integer, got {n!r}")
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise UserError(f"{here}: `system` must be a string")
    judge = raw.get("judge")
    if judge is not None and not isinstance(judge, str):
        raise UserError(f"{here}: `judge` must be a string")
    prompts = raw.get("judge_prompts") or {}
    if not isinstance(prompts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise UserError(f"{here}: `judge_prompts` must map metric names to prompt strings")
    if qtype != "free_form" and not prompts:
        raise UserError(f"{here}: type {qtype} needs `judge_prompts`")
    for metric, prompt in prompts.items():
        if "{answer}" not in prompt:
            raise UserError(f"{here}: judge prompt {metric!r} has no {{answer}} placeholder")
    explicit = raw.get("judge_labels") or {}
    if not isinstance(explicit, dict) or set(explicit) - set(prompts):
        raise UserError(f"{here}: `judge_labels` must map metrics of judge_prompts to label lists")
    labels: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for metric, prompt in prompts.items():
        if qtype == "free_form_judge_0_100":
            found: tuple[str, ...] = ()
        else:
            given = explicit.get(metric)
            if given is not None and (not isinstance(given, list) or len(given) < 2
                                      or not all(isinstance(x, str) and x for x in given)):
                raise UserError(f"{here}: judge_labels.{metric} must list at least 2 labels")
            found = tuple(given) if given is not None else prompt_labels(prompt)
            if len(found) < 2:
                raise UserError(f"{here}: judge prompt {metric!r} of a label judge names fewer "
                                f"than 2 double-quoted labels; add judge_labels: {{{metric}: [...]}}")
        labels[metric] = found
        kinds[metric] = judge_kind(found)
    return Question(id=qid, type=qtype, paraphrases=tuple(paras), samples_per_paraphrase=n,
                    system=system, judge_prompts=dict(prompts), judge=judge, judge_kinds=kinds,
                    judge_labels={m: v for m, v in labels.items() if v}, source=where)


def load_suite(path, ids: Optional[Sequence[str]] = None,
               samples: Optional[int] = None) -> list[Question]:
    """All questions of a suite file (or those with `ids`, in file order); `samples` overrides
    samples_per_paraphrase. Malformed input -> UserError naming the file, line and question id."""
    path = Path(path)
    text, data = read_yaml(path)
    if not isinstance(data, list) or not data:
        raise UserError(f"{path}: a question suite is a non-empty YAML list of questions")
    lines = sequence_item_lines(text)
    questions = []
    for i, raw in enumerate(data):
        where = f"{path}:{lines[i]}" if i < len(lines) else f"{path}: item {i + 1}"
        questions.append(_question(raw, where))
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise UserError(f"{q.source}: question {q.id!r}: duplicate id")
        seen.add(q.id)
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise UserError(f"{path}: samples override must be a positive integer, got {samples!r}")
        questions = [replace(q, samples_per_paraphrase=samples) for q in questions]
    return select_ids(questions, ids, str(path))


def select_ids(questions: list[Question], ids: Optional[Sequence[str]], where: str
               ) -> list[Question]:
    """The questions whose id is in `ids` (None: all); an unknown id is an error naming them."""
    if ids is None:
        return questions
    known = {q.id for q in questions}
    missing = [i for i in ids if i not in known]
    if missing:
        raise UserError(f"{where}: unknown question id(s) {', '.join(missing)}; "
                        f"it has {', '.join(q.id for q in questions)}")
    return [q for q in questions if q.id in set(ids)]
