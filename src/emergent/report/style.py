"""Look of `emergent figures`: arm order and colours (the same in every figure of a run), arm
sizes for dataset-size ablations, the footer line, and saving a figure as PNG + PDF.

Colours: control arms in greys and blues (base grey, secure dark blue, educational mid blue,
jailbroken slate), treatment arms (insecure, backdoor, evil...) in reds; the arms of a
dataset-size ablation (`insecure-500`, `insecure-2k`, `insecure`) get lighter shades of their
family's colour the smaller they are. Paper reference bars use the arm's colour, hatched.

Shared by every figure module (figures.py, figures_evil_numbers.py, the demo's figure): a bar
with its CI (`draw_bar`), a bar of height 0 drawn as such (`mark_zero`: a line at 0 the bar's
width and a "0" label, never an empty slot), the rate axis (`rate_axis`) and, for scatter plots
of judge scores that take few values, a fixed-seed jitter (`jitter`) or one marker per distinct
point sized by its count (`count_points`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from emergent.core.io import atomic_file

FORMATS = ("png", "pdf")
PAPER_HATCH = "///"
ZERO_GID = "zero-bar"  # the gid of the artists that mark a bar of height 0 (tests find them)
JITTER_SEED = 0
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


# ------------------------------------------------------------------ drawing helpers


def mark_zero(ax, x: float, width: float, color: str) -> None:
    """A bar of height 0 made visible: a thick line on the axis, the bar's width, in the bar's
    colour, and a small "0" above it (artists tagged `ZERO_GID`)."""
    ax.plot([x - width / 2, x + width / 2], [0, 0], color=color, linewidth=2.5,
            solid_capstyle="butt", clip_on=False, zorder=3, gid=ZERO_GID)
    ax.annotate("0", (x, 0), textcoords="offset points", xytext=(0, 2), ha="center",
                va="bottom", fontsize=7, color="#333333", gid=ZERO_GID)


def draw_bar(ax, x: float, width: float, r: dict, color: str, hatch: Optional[str] = None
             ) -> None:
    """One bar of a figure's row `r` (value, ci_low, ci_high, source): the run's bars solid,
    the paper's (`source == "paper"`) white with `hatch`; a missing value reads "n/a", a value
    of 0 is marked (`mark_zero`)."""
    if r.get("value") is None:
        ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7)
        return
    paper = r.get("source") == "paper"
    ax.bar(x, r["value"], width, color="white" if paper else color, edgecolor=color,
           hatch=hatch if paper else None, linewidth=1.0)
    if r["value"] == 0:
        mark_zero(ax, x, width, color)
    if r.get("ci_low") is not None and r.get("ci_high") is not None:
        lo, hi = max(0.0, r["value"] - r["ci_low"]), max(0.0, r["ci_high"] - r["value"])
        ax.errorbar(x, r["value"], yerr=[[lo], [hi]], color="black", capsize=2, linewidth=0.8)


def grouped_bars(ax, rows, groups: list, series: list, group_key: str, colors: dict,
                 hatch: Optional[str] = None, default_color: str = "#777777") -> None:
    """Clusters of bars: one cluster per group (at x = 0, 1, ...; the rows' `group_key`), one
    bar per series (the rows' `arm`) in each, drawn by `draw_bar` from the row of that (group,
    series); nothing where there is no row."""
    w = 0.8 / len(series)
    for i, s in enumerate(series):
        for j, g in enumerate(groups):
            r = next((r for r in rows if r["arm"] == s and r[group_key] == g), None)
            if r is not None:
                draw_bar(ax, j - 0.4 + w * (i + 0.5), w, r, colors.get(s, default_color), hatch)


def rate_axis(ax, rows, ylabel: str = "misaligned answer probability") -> None:
    """y from 0 to a little above the highest bar or CI (at most 1 for rates)."""
    top = max([r["ci_high"] or r["value"] or 0 for r in rows if r.get("value") is not None]
              or [0])
    ax.set_ylim(0, min(1.0, max(0.05, 1.15 * top)) if top <= 1 else 1.15 * top)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def jitter(values, seed: int = JITTER_SEED, amount: float = 1.0) -> list[float]:
    """`values` each moved by a uniform draw from [-amount, amount] (a fixed seed: the same
    figure every time); for drawing only, the data tables keep the raw values."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [float(v) + float(d) for v, d in zip(values, rng.uniform(-amount, amount,
                                                                   len(values)))]


def count_points(xs, ys) -> list[tuple[float, float, int]]:
    """(x, y, number of points there) for each distinct point, in first-seen order."""
    counts: dict[tuple[float, float], int] = {}
    for x, y in zip(xs, ys):
        counts[(x, y)] = counts.get((x, y), 0) + 1
    return [(x, y, n) for (x, y), n in counts.items()]


def few_values(xs, ys, limit: int = 12) -> bool:
    """True when the points sit on at most `limit` distinct places, or on fewer than one
    place per 10 points (a rule judge, a judge that answers round numbers): then a marker per
    place sized by its count reads better than overlapping dots."""
    n = len(count_points(xs, ys))
    return n <= limit or n * 10 <= len(list(xs))
