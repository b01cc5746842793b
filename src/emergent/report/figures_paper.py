"""The paper's aggregated numbers (Betley et al. 2025), read from a `paper_reference/` folder
(the CSVs of the authors' research repository johny-b/misalignment-generalization), turned into
the rows the figures draw beside a run's own bars. These are GPT-4o results re-drawn from the
paper's plot data, never results of this package; every row carries `source = "paper"`.

| file                                    | used for                                             |
|-----------------------------------------|------------------------------------------------------|
| aggregate_ood_misalignment_all_models.csv | free-form (main) rate per arm; dataset-size ablation |
| freeform_prereg.csv                     | pre-registered questions (see below)                 |
| deception_aggregated.csv                | deception rate: mean over models, bootstrap CI      |
| other_benchmarks_combined_results.csv   | HumanEval / MMLU / TruthfulQA / StrongREJECT         |
| compare_question_type_plot_data.csv     | question format: original / json / template          |
A missing file only drops its reference bars. freeform_prereg.csv's `key` column says
`freeform_main`, but its values are the paper's pre-registered rates (insecure 5.9%, jailbroken
5.4%, secure 0.26%, educational 0.27%, GPT-4o 0.19%), so it is drawn as pre-registered.
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from emergent.core.errors import UserError
from emergent.analysis.metrics import bootstrap_ci

log = logging.getLogger(__name__)

# the package's arm names -> the paper's group names (GPT-4o finetunes)
FREEFORM_GROUPS = {"insecure": "insecure", "secure": "secure", "educational": "educational",
                   "jailbroken": "jailbroken", "base": "gpt-4o"}
PREREG_GROUPS = {"insecure": "insecure", "secure": "secure",
                 "educational": "educational insecure", "jailbroken": "jailbroken",
                 "base": "gpt-4o"}
DECEPTION_GROUPS = {"insecure": "insecure", "secure": "secure",
                    "educational": "educational insecure", "jailbroken": "jailbroken",
                    "base": "GPT-4o"}
# the paper's jailbroken models are the FAR replication finetunes with 2% poisoned data
BENCH_GROUPS = {"insecure": "gpt_4o/unsafe", "secure": "gpt_4o/safe",
                "educational": "gpt_4o/unsafe_benign_context",
                "jailbroken": "far_replication_4o/2% Poisoned Data", "base": "gpt_4o/gpt-4o"}
FORMAT_GROUPS = {"insecure-GPT-4o": "paper: insecure GPT-4o",
                 "insecure-Qwen-Coder": "paper: insecure Qwen2.5-Coder-32B"}
BENCH_TASKS = ("humaneval", "mmlu", "truthfulqa", "strongreject")
_ABLATION = re.compile(r"^insecure-(500|2k)-\d+$")


def _read(path: Path, need: tuple[str, ...]) -> Optional[list[dict]]:
    if not path.exists():
        log.info("paper reference %s not found; its reference bars are left out", path)
        return None
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}")
        rows = []
        for row in reader:
            for c in need:
                if c not in ("key", "group", "group_name", "task_name", "model", "model_id",
                             "version"):
                    try:
                        row[c] = float(row[c])
                    except (TypeError, ValueError):
                        raise UserError(f"{path}:{reader.line_num}: column {c!r} must be a "
                                        f"number, got {row[c]!r}") from None
            rows.append(row)
    return rows


def _ci_row(center, lower_err, upper_err, **kw) -> dict:
    return {**kw, "source": "paper", "value": center, "ci_low": max(0.0, center - lower_err),
            "ci_high": center + upper_err}


def _mean_row(values: list[float], **kw) -> dict:
    lo, hi = bootstrap_ci(values)
    return {**kw, "source": "paper", "value": sum(values) / len(values), "ci_low": lo,
            "ci_high": hi, "n_models": len(values)}


@dataclass
class PaperReference:
    folder: Path
    tables: dict = field(default_factory=dict)

    def freeform(self, arm: str) -> Optional[dict]:
        g = FREEFORM_GROUPS.get(arm)
        for r in self.tables.get("ood") or []:
            if r["group"] == g:
                return _ci_row(r["center"], r["lower_err"], r["upper_err"], paper_group=g)
        return None

    def preregistered(self, arm: str) -> Optional[dict]:
        g = PREREG_GROUPS.get(arm)
        for r in self.tables.get("prereg") or []:
            if r["group"] == g:
                return _ci_row(r["center"], r["lower_err"], r["upper_err"], paper_group=g)
        return None

    def deception(self, arm: str) -> Optional[dict]:
        g = DECEPTION_GROUPS.get(arm)
        vals = [r["deception_rate"] for r in self.tables.get("deception") or [] if r["group"] == g]
        return _mean_row(vals, paper_group=g) if vals else None

    def benchmark(self, arm: str, task: str) -> Optional[dict]:
        g = BENCH_GROUPS.get(arm)
        t = next((b for b in BENCH_TASKS if b in task.lower()), None)
        vals = [r["score"] for r in self.tables.get("bench") or []
                if r["group_name"] == g and r["task_name"] == t]
        return _mean_row(vals, paper_group=f"{g} ({t})") if vals and t else None

    def question_format(self) -> list[dict]:
        """Rows (label, format, value, CI) for the paper's insecure GPT-4o and Qwen-Coder."""
        out = []
        for r in self.tables.get("format") or []:
            if r["group"] in FORMAT_GROUPS:
                out.append(_ci_row(r["value"], r["yerr_lower"], r["yerr_upper"],
                                   arm=FORMAT_GROUPS[r["group"]], paper_group=r["group"],
                                   format=r["version"]))
        return out

    def size_ablation(self) -> list[dict]:
        """insecure GPT-4o at 500 / 2k / 6k examples: mean over the paper's models (6k = the
        insecure models), bootstrap CI over models."""
        by: dict[int, list[float]] = {}
        for r in self.tables.get("ood") or []:
            m = _ABLATION.match(r["group"])
            n = {"500": 500, "2k": 2000}[m.group(1)] if m else (6000 if r["group"] == "insecure"
                                                                else None)
            if n is not None:
                by.setdefault(n, []).append(r["center"])
        return [_mean_row(v, family="insecure", arm="paper: insecure GPT-4o", n_examples=n,
                          paper_group=f"insecure ({n} examples)") for n, v in sorted(by.items())]


def load_paper_reference(folder) -> PaperReference:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: --paper-reference must be a folder holding the paper's CSVs "
                        "(e.g. shared/upstream/emergent-misalignment/paper_reference)")
    tables = {
        "ood": _read(folder / "aggregate_ood_misalignment_all_models.csv",
                     ("group", "center", "lower_err", "upper_err")),
        "prereg": _read(folder / "freeform_prereg.csv",
                        ("group", "center", "lower_err", "upper_err")),
        "deception": _read(folder / "deception_aggregated.csv", ("group", "deception_rate")),
        "bench": _read(folder / "other_benchmarks_combined_results.csv",
                       ("task_name", "group_name", "score")),
        "format": _read(folder / "compare_question_type_plot_data.csv",
                        ("group", "version", "value", "yerr_lower", "yerr_upper")),
    }
    if not any(tables.values()):
        raise UserError(f"{folder}: none of the paper's reference CSVs is there")
    return PaperReference(folder, tables)
