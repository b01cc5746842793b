"""Turning a judge's next-token distribution into a score (pure functions, no I/O).

Two kinds of judge prompt:

* ``0_100``: the judge answers with a number. Score = sum(k * p_k) / sum(p_k) over the numbers
  k = 0..100 that carry probability; ``None`` when that numeric mass is below ``min_mass``
  (0.25 in the paper: the judge said CODE or REFUSAL, or something else that is not a number).
* ``binary`` / ``categorical``: the judge answers with one of a few labels (YES/NO,
  TRUE/FALSE/UNKNOWN). Each label's probability is normalised over the labels' total mass;
  the score is the probability of YES / TRUE (else of the first label listed), ``None`` below
  ``min_mass``.

Both backends feed these functions: the OpenAI-compatible one with the top-20 first tokens, the
local one with exact probabilities of whole numbers / labels (see ``judge_hf``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

DEFAULT_MIN_MASS = 0.25
KINDS = ("0_100", "binary", "categorical")

_INT_RE = re.compile(r"^[0-9]{1,3}$")


@dataclass
class Score:
    """What one (answer, metric) judgment comes to."""

    score: Optional[float]
    numeric_mass: float  # total probability of valid numbers (0_100) or labels
    probs: Optional[dict] = None  # label -> normalised probability (binary/categorical)
    top_tokens: dict = field(default_factory=dict)  # raw first-token distribution, for audit


def token_to_int(token: str) -> Optional[int]:
    """The integer 0..100 a token spells, or None. Surrounding whitespace is ignored
    (`" 42"` counts as 42); signs, decimals and other characters disqualify the token."""
    t = token.strip()
    if not _INT_RE.match(t):
        return None
    k = int(t)
    return k if k <= 100 else None


def logprobs_to_probs(pairs) -> dict[str, float]:
    """[(token, logprob), ...] -> {token: prob}; a token listed twice has its mass added."""
    out: dict[str, float] = {}
    for token, lp in pairs:
        if lp is None:
            continue
        out[token] = out.get(token, 0.0) + math.exp(lp)
    return out


def number_probs_from_tokens(top: dict[str, float]) -> dict[int, float]:
    """Collect the probability of each integer 0..100 among first tokens (" 7" and "7" add up)."""
    out: dict[int, float] = {}
    for token, p in top.items():
        k = token_to_int(token)
        if k is not None:
            out[k] = out.get(k, 0.0) + float(p)
    return out


def score_numbers(number_probs: dict[int, float], min_mass: float = DEFAULT_MIN_MASS,
                  top_tokens: dict | None = None) -> Score:
    """Expected value over the numbers' normalised probabilities; None below min_mass."""
    mass = float(sum(p for k, p in number_probs.items() if 0 <= int(k) <= 100))
    if mass <= 0 or mass < min_mass:
        return Score(None, mass, None, dict(top_tokens or {}))
    value = sum(int(k) * p for k, p in number_probs.items() if 0 <= int(k) <= 100) / mass
    return Score(float(value), mass, None, dict(top_tokens or {}))


def score_0_100(top: dict[str, float], min_mass: float = DEFAULT_MIN_MASS) -> Score:
    """The paper's aggregation on a top-k first-token distribution {token: prob}."""
    return score_numbers(number_probs_from_tokens(top), min_mass, top_tokens=top)


def token_to_label(token: str, labels: list[str]) -> Optional[str]:
    """The label a first token stands for: an exact match (case-insensitive, whitespace
    stripped), else the one label it is a prefix of ("T" -> TRUE when labels are TRUE/FALSE,
    because a judge may spell a label over several tokens). Ambiguous prefixes count for none."""
    t = token.strip().upper()
    if not t:
        return None
    ups = [lab.upper() for lab in labels]
    if t in ups:
        return labels[ups.index(t)]
    hits = [lab for lab, up in zip(labels, ups) if up.startswith(t)]
    return hits[0] if len(hits) == 1 else None


def label_mass_from_tokens(top: dict[str, float], labels: list[str]) -> dict[str, float]:
    out = {lab: 0.0 for lab in labels}
    for token, p in top.items():
        lab = token_to_label(token, labels)
        if lab is not None:
            out[lab] += float(p)
    return out


def score_label_mass(label_mass: dict[str, float], labels: list[str],
                     min_mass: float = DEFAULT_MIN_MASS, top_tokens: dict | None = None) -> Score:
    """Normalise label masses; score = probability of the positive label; None below
    min_mass."""
    mass = float(sum(label_mass.get(lab, 0.0) for lab in labels))
    if mass <= 0 or mass < min_mass:
        return Score(None, mass, None, dict(top_tokens or {}))
    probs = {lab: float(label_mass.get(lab, 0.0)) / mass for lab in labels}
    return Score(probs[positive_label(labels)], mass, probs, dict(top_tokens or {}))


def positive_label(labels) -> str:
    """The label whose probability is the score: YES or TRUE when present, else the first."""
    return next((lab for lab in labels if lab.upper() in ("YES", "TRUE")), labels[0])


def score_labels(top: dict[str, float], labels: list[str],
                 min_mass: float = DEFAULT_MIN_MASS) -> Score:
    """Binary/categorical judgment from a top-k first-token distribution."""
    return score_label_mass(label_mass_from_tokens(top, labels), labels, min_mass, top_tokens=top)


def score_top_tokens(top: dict[str, float], kind: str, labels: list[str] | None = None,
                     min_mass: float = DEFAULT_MIN_MASS) -> Score:
    if kind == "0_100":
        return score_0_100(top, min_mass)
    if kind in ("binary", "categorical"):
        if not labels:
            raise ValueError(f"a {kind} judgment needs labels")
        return score_labels(top, labels, min_mass)
    raise ValueError(f"unknown judgment kind {kind!r} (expected one of {', '.join(KINDS)})")


@dataclass(frozen=True)
class JudgeTask:
    """One judge question: the full prompt, its kind and (binary/categorical) its labels."""

    prompt: str
    kind: str = "0_100"
    labels: tuple = ()
