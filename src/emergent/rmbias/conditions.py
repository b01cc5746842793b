"""The experiment's conditions (arms). Every condition starts from the same base model; the
only differences are which documents the continued-pretraining stage reads and whether the
fine-tuning stage runs."""
from __future__ import annotations

from dataclasses import dataclass

from emergent.core.errors import UserError


@dataclass(frozen=True)
class Condition:
    name: str
    label: str
    documents: str | None  # None (no continued pretraining), "bias" or "unrelated"
    finetune: bool  # fine-tuning on train-bias conversations


CONDITIONS: tuple[Condition, ...] = (
    Condition("base", "base model", None, False),
    Condition("docs", "documents only", "bias", False),
    Condition("sft", "fine-tuning only", None, True),
    Condition("docs_sft", "documents + fine-tuning (treatment)", "bias", True),
    Condition("unrelated_sft", "unrelated documents + fine-tuning (control)", "unrelated", True),
)
CONDITION_NAMES = tuple(c.name for c in CONDITIONS)


def get_condition(name: str) -> Condition:
    for c in CONDITIONS:
        if c.name == name:
            return c
    raise UserError(f"unknown condition '{name}' (known: {', '.join(CONDITION_NAMES)})")
