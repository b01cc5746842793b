"""Look of `emergent figures`: arm order and colours (the same in every figure of a run), arm
sizes for dataset-size ablations, the footer line, and saving a figure as PNG + PDF.

Colours: control arms in greys and blues (base grey, secure dark blue, educational mid blue,
jailbroken slate), treatment arms (insecure, backdoor, evil...) in reds; the arms of a
dataset-size ablation (`insecure-500`, `insecure-2k`, `insecure`) get lighter shades of their
family's colour the smaller they are. Paper reference bars use the arm's colour, hatched.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from emergent.core.io import atomic_file

FORMATS = ("png", "pdf")
PAPER_HATCH = "///"
KNOWN_COLORS = {"base": "#8c8c8c", "secure": "#1f4e9c", "educational": "#5fa2dd",
                "jailbroken": "#6b6fa8", "insecure": "#d62728"}
CONTROL_CYCLE = ("#4d7ea8", "#a6a6a6", "#2f6690", "#6e6e6e", "#86b3d1", "#3b3b6d")
TREATMENT_CYCLE = ("#d62728", "#b2182b", "#e6550d", "#8c1a1a")
ORDER = ("base", "secure", "educational", "jailbroken")
_SIZE = re.compile(r"^(?P<base>.+?)-(?P<n>\d+(?:\.\d+)?)(?P<k>[kK]?)$")
_TREATMENT_WORDS = ("insecure", "backdoor", "evil", "treatment", "misalign")


def arm_size(arm: str, config: Optional[dict] = None) -> Optional[tuple[str, int]]:
    """(family, number of training examples) for an ablation arm: `max_examples` recorded in
    the run's config (arms.<arm>.max_examples), else a name `<family>-<N>` (N may be `2k`).
    The family is the name without `-<N>`, else the arm of the same dataset without
    max_examples, else the arm itself."""
    arms = ((config or {}).get("arms") or {})
    arms = arms if isinstance(arms, dict) else {}
    spec = arms.get(arm)
    m = _SIZE.match(str(arm))
    family = m.group("base") if m else str(arm)
    if isinstance(spec, dict) and isinstance(spec.get("max_examples"), int):
        data = spec.get("data", spec.get("dataset"))
        if not m and data is not None:
            family = next((a for a, s in arms.items() if isinstance(s, dict) and a != arm
                           and s.get("data", s.get("dataset")) == data
                           and s.get("max_examples") is None), family)
        return family, int(spec["max_examples"])
    if m:
        return family, int(float(m.group("n")) * (1000 if m.group("k") else 1))
    return None


def family(arm: str, config: Optional[dict] = None) -> str:
    """The family an arm's colour and order come from: its name without `-<N>`."""
    m = _SIZE.match(str(arm))
    return m.group("base") if m else str(arm)


def is_treatment(arm: str, config: Optional[dict] = None) -> bool:
    t = ((config or {}).get("metrics") or {}).get("treatment", (config or {}).get("treatment"))
    fam = family(arm, config).lower()
    if isinstance(t, str) and (fam == t.lower() or str(arm) == t):
        return True
    return "educational" not in fam and any(w in fam for w in _TREATMENT_WORDS)


def sort_arms(arms, config: Optional[dict] = None) -> list[str]:
    """base, secure, educational, jailbroken, other controls, then treatment arms; the arms of
    one family by size (smallest first, the full arm last)."""
    def key(a):
        fam = family(a, config)
        size = arm_size(a, config)
        known = ORDER.index(fam) if fam in ORDER else len(ORDER)
        return (is_treatment(a, config), known, fam, size[1] if size else float("inf"), str(a))
    return sorted({str(a) for a in arms}, key=key)


def _shade(hex_color: str, t: float) -> str:
    """Mix a colour with white: t = 0 the colour, t = 1 white."""
    rgb = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * t):02x}" for c in rgb)


def arm_colors(arms, config: Optional[dict] = None) -> dict[str, str]:
    """One colour per arm, deterministic for a given set of arms (pass all the run's arms)."""
    out: dict[str, str] = {}
    fams: dict[str, list[str]] = {}
    for a in sort_arms(arms, config):
        fams.setdefault(family(a, config), []).append(a)
    n_ctrl = n_treat = 0
    for fam, members in fams.items():
        if fam in KNOWN_COLORS:
            color = KNOWN_COLORS[fam]
        elif is_treatment(members[0], config):
            color, n_treat = TREATMENT_CYCLE[n_treat % len(TREATMENT_CYCLE)], n_treat + 1
        else:
            color, n_ctrl = CONTROL_CYCLE[n_ctrl % len(CONTROL_CYCLE)], n_ctrl + 1
        k = len(members)
        for i, a in enumerate(members):  # smallest lightest, full arm the family colour
            out[a] = _shade(color, 0.6 * (k - 1 - i) / (k - 1)) if k > 1 else color
    return out


def size_label(n: Optional[int]) -> str:
    if n is None:
        return "full"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def footer(fig, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=7, color="#555555", ha="left", va="bottom")


def save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FORMATS:
        p = out_dir / f"{name}.{ext}"
        with atomic_file(p, "write:figure") as tmp:  # never a half-written figure
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        paths.append(p)
    return paths


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg renderer, without pyplot (no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig
