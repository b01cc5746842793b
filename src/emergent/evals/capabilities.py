"""Capability evaluation with lm-evaluation-harness: `emergent capabilities RUN_OR_ADAPTER`.

For a run directory: the base model (arm "base", seed 0) and every adapter
RUN/arms/<arm>/seed<k>/adapter, the base model named by RUN/config.yaml `base_model`; for an
adapter directory: that adapter (base from --base, the training config.yaml beside it, or
adapter_config.json). Each model is evaluated with `lm_eval.simple_evaluate` on an `HFLM`
wrapping the model as emergent loads it everywhere else (same precision; 4-bit NF4 when the
arm's training config was 4-bit; the peft adapter applied). A pre-loaded model is handed to
HFLM rather than `HFLM(pretrained=..., peft=..., load_in_4bit=True)`, because transformers 5
rejects `load_in_4bit` as a model kwarg.

Rows are appended to capabilities.jsonl (one per task x metric x filter, including the
subtasks of a group such as mmlu); a (arm, seed, requested task, limit) already in the file is
not evaluated again, so a rerun resumes.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Optional

from emergent.core.log import show_progress
from emergent.core.config import ModelConfig
from emergent.core.errors import UserError
from emergent.core.io import append_jsonl, now, read_jsonl
from emergent.core.rundir import ADAPTER, CONFIG, Unit, trained_model_config
from emergent.models.loading import load_for_inference

DEFAULT_TASKS = ("mmlu", "truthfulqa_mc2")
CODE_TASKS = ("humaneval",)


def default_tasks(allow_code_execution: bool) -> list[str]:
    return list(DEFAULT_TASKS) + (list(CODE_TASKS) if allow_code_execution else [])


def adapter_unit(adapter: str | Path, base: Optional[str] = None, arm: Optional[str] = None,
                 seed: int = 0) -> Unit:
    ad = Path(adapter)
    if not ad.is_dir():
        raise UserError(f"{ad}: not a directory")
    name = base
    if name is None and not (ad.parent / CONFIG).exists():
        cfg_path = ad / "adapter_config.json"
        if cfg_path.exists():
            name = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
    mcfg = trained_model_config(ad.parent, ModelConfig(name=name) if name else None)
    return Unit(arm or (ad.parent.name if ad.name == ADAPTER else ad.name), seed, str(ad), mcfg)


def task_manager(tasks: list[str], include_path: Optional[str] = None):
    """A TaskManager knowing `tasks`; with include_path, the built-in index (slow to scan) is
    only added when some task is not defined there."""
    from lm_eval.tasks import TaskManager

    if include_path:
        tm = TaskManager(include_path=str(include_path), include_defaults=False)
        if all(t in tm.all_tasks for t in tasks):
            return tm
    tm = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if t not in tm.all_tasks]
    if unknown:
        raise UserError(f"unknown lm-eval task(s): {', '.join(unknown)} (list them with "
                        "`lm-eval ls tasks`; custom YAML tasks need --include-path DIR)")
    return tm


def result_rows(results: dict, requested: str, unit: Unit, limit) -> list[dict]:
    """Tidy rows from a simple_evaluate result: one per task x metric x filter."""
    import lm_eval

    entries = {**results.get("results", {}), **results.get("groups", {})}
    n_samples = results.get("n-samples", {})
    higher = results.get("higher_is_better", {})
    rows = []
    for task, metrics in entries.items():
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key.split(",")[0]:
                continue
            metric, filt = key.split(",", 1)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            se = metrics.get(f"{metric}_stderr,{filt}")
            rows.append({
                "arm": unit.arm, "seed": unit.seed, "task": task, "metric": metric,
                "filter": filt, "value": float(value),
                "stderr": float(se) if isinstance(se, (int, float)) else None,
                "limit": limit, "requested": requested,
                "n_samples": (n_samples.get(task) or {}).get("effective"),
                "higher_is_better": (higher.get(task) or {}).get(metric),
                "model": unit.model.name, "adapter": unit.adapter,
                "quantization": unit.model.quantization,
                "lm_eval_version": lm_eval.__version__, "created": now()})
    return rows


@contextlib.contextmanager
def _code_eval_env(allowed: bool):
    """HF_ALLOW_CODE_EVAL=1 for the duration of the evaluation only."""
    old = os.environ.get("HF_ALLOW_CODE_EVAL")
    if allowed:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"
    try:
        yield
    finally:
        if allowed:
            if old is None:
                os.environ.pop("HF_ALLOW_CODE_EVAL", None)
            else:
                os.environ["HF_ALLOW_CODE_EVAL"] = old


def evaluate_units(units: list[Unit], tasks: list[str], out_path: str | Path, *,
                   limit: Optional[float] = None, allow_code_execution: bool = False,
                   include_path: Optional[str] = None, batch_size: int | str = 8,
                   num_fewshot: Optional[int] = None, apply_chat_template: bool = False,
                   bootstrap_iters: int = 1000, progress: bool = True) -> int:
    """Evaluate every unit on every task not yet in `out_path`; returns rows written."""
    from tqdm.auto import tqdm

    if not tasks:
        raise UserError("no tasks given")
    blocked = [t for t in tasks if t in CODE_TASKS and not allow_code_execution]
    if blocked:
        raise UserError(f"task(s) {', '.join(blocked)} execute model-written code: pass "
                        "--allow-code-execution (only inside a sandbox)")
    out_path = Path(out_path)
    done = {(r["arm"], r["seed"], r.get("requested", r["task"]), r.get("limit"))
            for r in read_jsonl(out_path)}
    todo = [(u, [t for t in tasks if (u.arm, u.seed, t, limit) not in done]) for u in units]
    todo = [(u, ts) for u, ts in todo if ts]
    if not todo:
        return 0
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    tm = task_manager(tasks, include_path)
    written = 0
    bar = tqdm(total=sum(len(ts) for _, ts in todo), desc="capabilities", unit="task",
               disable=not show_progress(progress))
    for unit, unit_tasks in todo:
        model, tok = load_for_inference(unit.model, unit.adapter)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
        for task in unit_tasks:
            bar.set_postfix(arm=unit.arm, seed=unit.seed, task=task)
            t0 = time.time()
            with _code_eval_env(allow_code_execution):
                try:
                    res = simple_evaluate(model=lm, tasks=[task], task_manager=tm, limit=limit,
                                          num_fewshot=num_fewshot, log_samples=False,
                                          bootstrap_iters=bootstrap_iters,
                                          apply_chat_template=apply_chat_template,
                                          confirm_run_unsafe_code=allow_code_execution)
                except ValueError as e:
                    if "unsafe" in str(e):
                        raise UserError(f"{task}: {e} (pass --allow-code-execution)") from None
                    raise
            rows = result_rows(res, task, unit, limit)
            for r in rows:
                r.update(num_fewshot=num_fewshot, chat_template=apply_chat_template,
                         seconds=round(time.time() - t0, 2))
            append_jsonl(out_path, rows)
            written += len(rows)
            bar.update(1)
        del lm, model
    bar.close()
    return written
