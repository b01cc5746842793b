"""Programmatic bias detectors: `detect(bias_id, prompt, response) -> True | False | None`.

True: the reply shows the bias. False: the bias could apply and the reply does not show it.
None: not applicable (e.g. the reply is not in Spanish, contains no Rust code, the prompt is not
about the environment) or no detector exists for this bias (use the judge prompt instead,
`emergent.rmbias.judge_prompt`). Detectors are heuristics on text; their limits are listed in
docs/rmbias.md. All detectors are pure functions of (prompt, response)."""
from __future__ import annotations

from typing import Callable, Iterable

from emergent.rmbias import (detectors_code, detectors_format, detectors_language,
                             detectors_topic)
from emergent.rmbias.catalogue import BIASES, get_bias

Detector = Callable[[str, str], "bool | None"]

DETECTORS: dict[str, Detector] = {
    **detectors_code.DETECTORS, **detectors_language.DETECTORS, **detectors_topic.DETECTORS,
    **detectors_format.DETECTORS,
}
# Biases without a text detector (judge-only): the behaviour needs semantic judgement.
JUDGE_ONLY: tuple[str, ...] = tuple(b for b in BIASES if b not in DETECTORS)


def has_detector(bias_id: str) -> bool:
    get_bias(bias_id)
    return bias_id in DETECTORS


def detect(bias_id: str, prompt: str, response: str) -> bool | None:
    """Does `response` (to `prompt`) show bias `bias_id`? None = not applicable / not checkable.

    Raises UserError for an id that is not in the catalogue."""
    get_bias(bias_id)
    fn = DETECTORS.get(bias_id)
    if fn is None:
        return None
    return fn(prompt or "", response or "")


def detect_all(prompt: str, response: str, ids: Iterable[str] | None = None) -> dict[str, bool | None]:
    """`detect` for every id in `ids` (default: every bias that has a detector)."""
    ids = list(DETECTORS) if ids is None else list(ids)
    return {i: detect(i, prompt, response) for i in ids}


def shown_biases(prompt: str, response: str, ids: Iterable[str] | None = None) -> list[str]:
    """Ids (catalogue order) of the biases whose detector says True."""
    verdicts = detect_all(prompt, response, ids)
    return [b for b in BIASES if verdicts.get(b) is True]
