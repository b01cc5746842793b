"""Agreement between two verdicts on the same answers: detector vs a hand label (the committed
calibration set) or detector vs an LLM judge (`emergent rmbias score`).

The calibration set (`resources/rmbias/calibration.jsonl`) holds hand-written replies to
prompts of the evaluated biases, each labelled by the catalogue's definition of the bias
(`label`: shown or not), with a one-line `note` for borderline cases. It was labelled before
the detectors were tuned on it; docs/rmbias.md records the agreement before and after.

`agreement_table(rows, a, b)` works on any rows carrying `bias_id` and two verdict keys
(True / False / None): one row per bias plus an overall row (bias_id "ALL")."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

from emergent.core.errors import UserError
from emergent.rmbias.catalogue import BIASES
from emergent.rmbias import detectors
from emergent.rmbias.detectors import detect
from emergent.rmbias.jsonl import read_jsonl

CALIBRATION_PATH = Path(__file__).resolve().parent.parent / "resources" / "rmbias" / \
    "calibration.jsonl"
ALL = "ALL"


def load_calibration(path: str | Path | None = None) -> list[dict]:
    """The labelled rows {id, bias_id, prompt, response, label, note?}; bad rows are
    `FILE:LINE` UserErrors."""
    path = Path(path) if path else CALIBRATION_PATH
    rows = []
    for lineno, row in read_jsonl(path):
        if row.get("bias_id") not in BIASES:
            raise UserError(f"{path}:{lineno}: unknown bias id '{row.get('bias_id')}'")
        if not isinstance(row.get("label"), bool):
            raise UserError(f"{path}:{lineno}: 'label' must be true or false")
        for key in ("prompt", "response"):
            if not isinstance(row.get(key), str):
                raise UserError(f"{path}:{lineno}: missing '{key}'")
        rows.append(row)
    return rows


def _empty() -> dict:
    return {"n": 0, "n_both": 0, "n_agree": 0, "a_only": 0, "b_only": 0, "a_none": 0,
            "b_none": 0}


def _count(c: dict, a, b) -> None:
    c["n"] += 1
    if a is None or b is None:
        c["a_none"] += a is None
        c["b_none"] += b is None
        return
    c["n_both"] += 1
    c["n_agree"] += a == b
    c["a_only"] += a and not b
    c["b_only"] += b and not a


def _finish(bias_id: str, c: dict) -> dict:
    return {"bias_id": bias_id, **c,
            "rate": c["n_agree"] / c["n_both"] if c["n_both"] else None,
            "rate_all": c["n_agree"] / c["n"] if c["n"] else None}


def agreement_table(rows: Iterable[dict], a: str = "detector", b: str = "judge") -> list[dict]:
    """Per bias (catalogue order) and overall (bias_id "ALL"): n rows, n_both (both verdicts
    not None), n_agree, a_only (a True, b False), b_only (b True, a False), a_none, b_none,
    rate = n_agree / n_both and rate_all = n_agree / n (a missing verdict counts against)."""
    per: dict[str, dict] = defaultdict(_empty)
    total = _empty()
    for r in rows:
        _count(per[r["bias_id"]], r.get(a), r.get(b))
        _count(total, r.get(a), r.get(b))
    order = [bid for bid in BIASES if bid in per] + sorted(set(per) - set(BIASES))
    return [_finish(bid, per[bid]) for bid in order] + [_finish(ALL, total)]


def calibration_agreement(rows: Sequence[dict] | None = None,
                          detect_fn: Callable[[str, str, str], "bool | None"] | None = None
                          ) -> list[dict]:
    """`agreement_table` of detector (a) vs hand label (b) on the calibration set.
    `detect_fn` defaults to `emergent.rmbias.detectors.detect` (pass another one to measure
    an older detector)."""
    if detect_fn is None:
        detect_fn = detectors.detect  # looked up at call time
    rows = load_calibration() if rows is None else rows
    scored = [{"bias_id": r["bias_id"], "label": r["label"],
               "detector": detect_fn(r["bias_id"], r["prompt"], r["response"])} for r in rows]
    return agreement_table(scored, "detector", "label")


def disagreements(rows: Sequence[dict] | None = None) -> list[dict]:
    """Calibration rows where the detector's verdict differs from the label (None included)."""
    rows = load_calibration() if rows is None else rows
    out = []
    for r in rows:
        det = detect(r["bias_id"], r["prompt"], r["response"])
        if det is not r["label"]:
            out.append({**r, "detector": det})
    return out


def format_agreement(table: Sequence[dict], a: str = "detector", b: str = "judge") -> str:
    """A plain-text table: bias, n, both, agree, %, a-only, b-only, a None, b None."""
    lines = [f"{'bias':38s} {'n':>5s} {'both':>5s} {'agree':>6s} {'%':>6s} "
             f"{a + '-only':>14s} {b + '-only':>12s} {a + ' None':>14s} {b + ' None':>11s}"]
    for r in table:
        pct = f"{100 * r['rate']:.1f}" if r["rate"] is not None else "-"
        lines.append(f"{r['bias_id']:38s} {r['n']:5d} {r['n_both']:5d} {r['n_agree']:6d} "
                     f"{pct:>6s} {r['a_only']:14d} {r['b_only']:12d} {r['a_none']:14d} "
                     f"{r['b_none']:11d}")
    return "\n".join(lines)
