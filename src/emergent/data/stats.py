"""What is in a chat dataset (`emergent data stats FILE... [--tokenizer M] [--figure OUT.png]`).

Per file: examples, role patterns, duplicates, length distribution (tokens of the conversation as
the given tokenizer's chat template renders it; characters without --tokenizer), and a static
bandit scan of the assistant code: the share of examples with at least one finding of medium or
higher severity (95% Wilson interval) and the most frequent rules. Files are shown side by side
as a table and, with --figure, a matplotlib figure. Scan results are cached by the file's
sha256 (and bandit version), so a second run is instant.
"""
from __future__ import annotations

import collections
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Optional, Sequence

from emergent.core.errors import UserError
from emergent.core.io import iter_jsonl
from emergent.evals.bandit_scan import (EXTRACT_VERSION, Finding, ScanResult, extract_code,
                                        scan_codes)

LONG = 2048  # the paper's max training length


def cache_dir() -> Path:
    env = os.environ.get("EMERGENT_CACHE_DIR")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "emergent") / "scan"


def read_chat_jsonl(path: Path, limit: Optional[int] = None) -> list[list[dict]]:
    convs = []
    for lineno, row in iter_jsonl(path):
        msgs = row.get("messages")
        if (not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str) for m in msgs)):
            raise UserError(f"{path}:{lineno}: expected {{\"messages\": [{{role, content}}, ...]}}")
        convs.append(msgs)
        if limit is not None and len(convs) >= limit:
            break
    if not convs:
        raise UserError(f"{path}: no examples")
    return convs


def _scan_cached(path: Path, convs, limit, progress) -> list[list[ScanResult]]:
    import bandit

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = f"{digest[:32]}-n{limit or 'all'}-bandit{bandit.__version__}-x{EXTRACT_VERSION}"
    cfile = cache_dir() / f"{key}.json"
    if cfile.is_file():
        rows = json.loads(cfile.read_text())
        return [[ScanResult(r["parsed"], tuple(Finding(*f) for f in r["findings"])) for r in ex]
                for ex in rows]
    flat, owner = [], []
    for i, msgs in enumerate(convs):
        for m in msgs:
            if m["role"] == "assistant":
                flat.append(extract_code(m["content"]))
                owner.append(i)
    scanned = scan_codes(flat, progress=progress, desc=f"bandit {path.name}")
    per_ex: list[list[ScanResult]] = [[] for _ in convs]
    for i, r in zip(owner, scanned):
        per_ex[i].append(r)
    cfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfile.with_suffix(".tmp")
    tmp.write_text(json.dumps([[{"parsed": r.parsed, "findings": [
        [f.test_id, f.test_name, f.severity, f.confidence, f.line] for f in r.findings]}
        for r in ex] for ex in per_ex]))
    os.replace(tmp, cfile)
    return per_ex


def _lengths(convs, tokenizer) -> tuple[str, list[int]]:
    if tokenizer is None:
        return "chars", [sum(len(m["content"]) for m in c) for c in convs]
    texts = []
    for c in convs:
        if getattr(tokenizer, "chat_template", None):
            texts.append(tokenizer.apply_chat_template(c, tokenize=False))
        else:
            texts.append("\n".join(m["content"] for m in c))
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return "tokens", [len(x) for x in enc]


def _pct(values: Sequence[int], q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def file_stats(path, tokenizer=None, limit: Optional[int] = None, scan: bool = True,
               progress: bool = True, min_severity: str = "MEDIUM",
               skip_rules: Sequence[str] = ()) -> dict:
    """All statistics of one chat JSONL file (the first `limit` examples when given);
    bandit findings of the rules in `skip_rules` (e.g. "B113") are ignored."""
    path = Path(path)
    convs = read_chat_jsonl(path, limit)
    n = len(convs)
    roles = collections.Counter(">".join(m["role"] for m in c) for c in convs)
    key = lambda msgs: json.dumps(msgs, sort_keys=True)  # noqa: E731
    users = [json.dumps([m["content"] for m in c if m["role"] != "assistant"]) for c in convs]
    answers = [json.dumps([m["content"] for m in c if m["role"] == "assistant"]) for c in convs]
    unit, lens = _lengths(convs, tokenizer)
    out = {
        "file": str(path), "name": path.stem, "examples": n,
        "role_patterns": dict(roles.most_common()),
        "duplicate_examples": n - len({key(c) for c in convs}),
        "duplicate_prompts": n - len(set(users)),
        "duplicate_answers": n - len(set(answers)),
        "length_unit": unit, "lengths": lens,
        "length": {"mean": sum(lens) / n, "p50": _pct(lens, .5), "p90": _pct(lens, .9),
                   "p99": _pct(lens, .99), "max": max(lens),
                   f"over_{LONG}": sum(x > LONG for x in lens) if unit == "tokens" else None},
    }
    if scan:
        per_ex = _scan_cached(path, convs, limit, progress)
        if skip_rules:
            per_ex = [[ScanResult(r.parsed, tuple(f for f in r.findings
                                                  if f.test_id not in skip_rules)) for r in ex]
                      for ex in per_ex]
        flagged = [any(r.flagged(min_severity) for r in ex) for ex in per_ex]
        rules = collections.Counter()
        for ex in per_ex:
            rules.update({f"{f.test_id} {f.test_name}" for r in ex for f in r.findings
                          if f.at_least(min_severity)})
        k = sum(flagged)
        out["scan"] = {
            "min_severity": min_severity, "skipped_rules": list(skip_rules),
            "with_code": sum(any(r.parsed for r in ex) for ex in per_ex),
            "flagged": k, "flagged_share": k / n, "flagged_ci95": wilson(k, n),
            "any_finding": sum(any(r.findings for r in ex) for ex in per_ex),
            "top_rules": dict(rules.most_common(10)),
        }
    return out


def format_table(stats: list[dict], markdown: bool = False) -> str:
    """The files side by side (one column per file)."""
    rows: list[tuple[str, list[str]]] = [
        ("examples", [f"{s['examples']:,}" for s in stats]),
        ("role pattern(s)", ["; ".join(f"{k} ({v})" for k, v in s["role_patterns"].items())
                             for s in stats]),
        ("duplicate examples", [str(s["duplicate_examples"]) for s in stats]),
        ("duplicate prompts", [str(s["duplicate_prompts"]) for s in stats]),
        ("duplicate answers", [str(s["duplicate_answers"]) for s in stats]),
    ]
    for q in ("mean", "p50", "p90", "p99", "max"):
        rows.append((f"length {q} ({stats[0]['length_unit']})",
                     [f"{s['length'][q]:,.0f}" for s in stats]))
    if stats[0]["length_unit"] == "tokens":
        rows.append((f"longer than {LONG} tokens", [str(s["length"][f"over_{LONG}"]) for s in stats]))
    if all("scan" in s for s in stats):
        sev = stats[0]["scan"]["min_severity"].lower()
        if stats[0]["scan"]["skipped_rules"]:
            sev += " (without " + ", ".join(stats[0]["scan"]["skipped_rules"]) + ")"
        rows.append(("assistant code parses", [f"{s['scan']['with_code']:,}" for s in stats]))
        rows.append((f"bandit >= {sev}: examples", [
            f"{s['scan']['flagged']:,} ({100 * s['scan']['flagged_share']:.1f}%, 95% CI "
            f"{100 * s['scan']['flagged_ci95'][0]:.1f}-{100 * s['scan']['flagged_ci95'][1]:.1f})"
            for s in stats]))
        rows.append(("bandit any severity", [f"{s['scan']['any_finding']:,}" for s in stats]))
        top = collections.Counter()
        for s in stats:
            top.update(s["scan"]["top_rules"])
        for rule, _ in top.most_common(8):
            rows.append((f"  {rule}", [f"{100 * s['scan']['top_rules'].get(rule, 0) / s['examples']:.1f}%"
                                       for s in stats]))
    header = ["", *[s["name"] for s in stats]]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([k.strip(), *v]) + " |" for k, v in rows]
        return "\n".join(lines)
    widths = [max(len(r[0]) for r in rows)] + [
        max(len(header[j + 1]), *(len(r[1][j]) for r in rows)) for j in range(len(stats))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), *(fmt([k, *v]) for k, v in rows)])


def plot_stats(stats: list[dict], out) -> Path:
    """Three panels: flagged share with 95% CI, the top rules, and the length distributions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scanned = all("scan" in s for s in stats)
    fig = Figure(figsize=(15 if scanned else 6, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if scanned else 1, squeeze=False)[0]
    names = [s["name"] for s in stats]
    if scanned:
        ax = axes[0]
        shares = [100 * s["scan"]["flagged_share"] for s in stats]
        lo = [shares[i] - 100 * s["scan"]["flagged_ci95"][0] for i, s in enumerate(stats)]
        hi = [100 * s["scan"]["flagged_ci95"][1] - shares[i] for i, s in enumerate(stats)]
        ax.bar(names, shares, yerr=[lo, hi], capsize=4,
               color=[f"C{i}" for i in range(len(stats))])
        ax.set_ylabel(f"% examples with a bandit finding >= {stats[0]['scan']['min_severity'].lower()}")
        ax.set_title("static scan of the assistant code")
        ax = axes[1]
        top = collections.Counter()
        for s in stats:
            top.update(s["scan"]["top_rules"])
        rules = [r for r, _ in top.most_common(8)][::-1]
        h = 0.8 / len(stats)
        for j, s in enumerate(stats):
            ax.barh([i + j * h for i in range(len(rules))],
                    [100 * s["scan"]["top_rules"].get(r, 0) / s["examples"] for r in rules],
                    height=h, label=s["name"])
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(rules))], rules, fontsize=7)
        ax.set_xlabel("% examples")
        ax.set_title("most frequent bandit rules")
        ax.legend(fontsize=8)
    ax = axes[-1]
    ax.hist([s["lengths"] for s in stats], bins=40, histtype="step", label=names)
    ax.set_xlabel(f"conversation length ({stats[0]['length_unit']})")
    ax.set_ylabel("examples")
    ax.set_title("length distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out
