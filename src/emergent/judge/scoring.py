"""Turning a judge's next-token distribution into a score (pure functions, no I/O).

Two kinds of judge prompt:

* ``0_100``: the judge answers with a number. Score = sum(k * p_k) / sum(p_k) over the numbers
  k = 0..100 that carry probability; ``None`` when that numeric mass is below ``min_mass``
  (0.25 in the paper: the judge said CODE or REFUSAL, or something else that is not a number).
* ``binary`` / ``categorical``: the judge answers with one of a few labels (YES/NO,
  TRUE/FALSE/UNKNOWN). Each label's probability is normalised over the labels' total mass;
  the score is the probability of YES / TRUE (else of the first label listed), ``None`` below
  ``min_mass``.

A reply with no numeric (label) mass at all gets status ``no_numeric_mass``: the judgment runner
counts those, does not keep them as final and fails a run with too many
(``JudgeConfig.max_no_score_fraction``). A mass above 0 but below ``min_mass`` is an ordinary
null score (status ``ok``).

Both backends feed these functions: the OpenAI-compatible one with the top-20 first tokens
(chat-top20 mode) or with exact probabilities assembled from per-prefix completions calls
(exact mode: ``prefix_summary``, ``exact_sequence_probs``), the local one with exact
probabilities of whole numbers / labels (see ``judge_hf``).
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
    # OK; NO_NUMERIC_MASS: the reply held no number (0_100) / no label at all (a broken or
    # misconfigured server, or a judge that only said CODE/REFUSAL); EMPTY_ANSWER: never sent
    status: str = "ok"


OK = "ok"
NO_NUMERIC_MASS = "no_numeric_mass"
EMPTY_ANSWER = "empty_answer"
STATUSES = (OK, NO_NUMERIC_MASS, EMPTY_ANSWER)


def _status(mass: float) -> str:
    return NO_NUMERIC_MASS if mass <= 0 else OK


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
        return Score(None, mass, None, dict(top_tokens or {}), _status(mass))
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
        return Score(None, mass, None, dict(top_tokens or {}), _status(mass))
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
    """One judge question: the full prompt, its kind and (binary/categorical) its labels. A
    judge that reads answers by rule instead of a prompt gets the metric, question and answer
    too (they take no part in comparing tasks: the prompt determines them)."""

    prompt: str
    kind: str = "0_100"
    labels: tuple = ()
    metric: str = field(default="", compare=False)
    question: str = field(default="", compare=False)
    answer: str = field(default="", compare=False)


# ---------------------------------------------------------------------------- exact, from prefixes
# The `openai` backend's exact mode (see judge_openai) reads one next-token distribution per
# prefix of the answers' token sequences (top-N alternatives from a completions endpoint) and
# computes the `hf` backend's P(sequence, then a token that does not continue it) from them.


def continues(token: str, what: str) -> bool:
    """Whether a next token continues the answer, as `judge_hf` decides it: its text starts with
    a digit (numbers) or a letter or digit (labels); a leading space or line break ends it."""
    c = token[:1]
    return bool(c) and (c.isdigit() if what == "numbers" else c.isalnum())


def prefix_summary(probs: dict[str, float], what: str, children: dict[str, list[str]],
                   keep_top: int = 0) -> dict:
    """All that exact scoring keeps of one prefix call's alternatives {token text: prob}:

    * ``next``: {token id (str): prob} of the trie children listed (each child is looked up by
      its candidate texts, first match wins); a child not listed is absent;
    * ``cont`` / ``noncont``: listed mass of tokens that continue / end the answer, ``n_cont``
      how many continuing texts are listed, ``n`` how many texts in all, ``min`` the smallest
      listed prob (an upper bound on any unlisted token);
    * ``top``: the `keep_top` most likely texts, for audit (the empty prefix only).
    """
    cont = noncont = 0.0
    n_cont = 0
    for t, p in probs.items():
        if continues(t, what):
            cont += p
            n_cont += 1
        else:
            noncont += p
    nxt = {}
    for cid, texts in children.items():
        hit = next((t for t in texts if t in probs), None)
        if hit is not None:
            nxt[cid] = float(probs[hit])
    out = {"next": nxt, "cont": float(cont), "noncont": float(noncont), "n_cont": n_cont,
           "n": len(probs),
           "min": float(min(probs.values())) if probs else 1.0}
    if keep_top:
        out["top"] = dict(sorted(probs.items(), key=lambda kv: -kv[1])[:keep_top])
    return out


def exact_sequence_probs(seqs: list[tuple], get, n_cont_total: Optional[int] = None):
    """P(sequence, then a token that does not continue it) for token-id sequences, from
    per-prefix summaries (`prefix_summary`); `get(prefix)` returns one or None (not fetched).

    P(seq) = prod_j next[t_j] at prefix seq[:j] * P(end) at seq, with P(end) = 1 - listed
    continuing mass (unlisted mass counted as ending the answer). A token the server did not
    list counts 0 and its subtree is not fetched ("pruned"). Returns (probs, missing, bound):
    probs[i] is None while a prefix on its path is missing; `missing` holds the prefixes to
    fetch next (each with all its ancestors fetched); `bound` >= sum over sequences of
    |computed - true probability|: unlisted continuing mass at each end position (at most
    min(unlisted mass, unlisted continuing tokens * smallest listed prob)) plus, per pruned
    child, min(unlisted mass, smallest listed prob), each times the path probability.
    """
    probs, missing, bound, pruned = [], set(), 0.0, set()
    for s in seqs:
        q, p = 1.0, None
        for j in range(len(s) + 1):
            summ = get(s[:j])
            if summ is None:
                missing.add(s[:j])
                break
            unlisted = max(0.0, 1.0 - summ["cont"] - summ["noncont"])
            if j == len(s):
                p = q * min(1.0, summ["noncont"] + unlisted)
                hidden = unlisted
                if n_cont_total is not None:
                    hidden = min(unlisted, max(0, n_cont_total - summ["n_cont"]) * summ["min"])
                bound += q * hidden
                break
            pt = summ["next"].get(str(s[j]))
            if pt is None:
                p = 0.0
                if s[:j + 1] not in pruned:
                    pruned.add(s[:j + 1])
                    bound += q * min(unlisted, summ["min"])
                break
            q *= pt
        probs.append(p)
    return probs, missing, bound
