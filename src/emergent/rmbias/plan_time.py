"""Training time and memory of an rm-bias run before it starts (`emergent rmbias run --dry-run`).

Each training unit's recipe (`experiment.stage_recipe`) goes through `emergent.pipeline.estimate`: model
shape (config.json, the HF cache or the built-in table), memory at `max_length`, and a
tokens/s range per GPU class from FLOPs per token and an assumed utilisation. Token counts come
from the written data (characters / 4) when RUN/data/ has it, else from the configured `n` and
an assumed mean length (`ASSUMED_MEAN_TOKENS`, capped at max_length), said so in the output.
DPO stages count both replies of a pair plus the reference pass (x 2.5). Sampling time is not
estimated here (see the preset's header). A range, not a promise: check
RUN/arms/<stage>/seed<k>/train_log.jsonl (trained_tokens_per_s) after a few steps.
"""
from __future__ import annotations

from pathlib import Path

from emergent.core.errors import UserError
from emergent.pipeline.estimate import estimate, model_shape
from emergent.rmbias.experiment import STAGES, count_data, stage_recipe, stages_needed

ASSUMED_MEAN_TOKENS = {"docs": 700, "unrelated_docs": 700, "sft": 500}
CHARS_PER_TOKEN = 4.0
DPO_FACTOR = 2.5  # chosen + rejected, plus a forward-only reference pass


def _data_tokens(cfg, data_key: str, run_dir: Path, max_length: int):
    """(examples, mean tokens, source) of a stage's data."""
    path = run_dir / "data" / f"{data_key}.jsonl"
    if path.exists():
        rows, chars = count_data(path)
        if rows:
            return rows, min(max_length, chars / rows / CHARS_PER_TOKEN), f"{path.name} (chars/4)"
    n = {"docs": cfg.documents.n, "unrelated_docs": cfg.unrelated_documents.n,
         "sft": cfg.sft.n}[data_key] or cfg.documents.n  # unrelated matched: about the docs' n
    return n, min(max_length, ASSUMED_MEAN_TOKENS[data_key]), "assumed (configured n)"


def training_time(cfg, run_dir: Path) -> dict:
    """Per training unit: tokens, memory need and hours per GPU class; plus the totals."""
    try:
        model_shape(cfg.base_model.name)
    except UserError as e:
        return {"unavailable": str(e)}
    units, totals, need = {}, {}, 0.0
    for seed in cfg.seeds:
        for stage in stages_needed(cfg):
            rec = stage_recipe(cfg, stage, seed, run_dir)
            data_key = STAGES[stage][0]
            n, mean, source = _data_tokens(cfg, data_key, run_dir, rec.train.max_length)
            rep = estimate(rec, examples=n, mean_tokens=mean, tokenizer=None)
            factor = DPO_FACTOR if rec.train.objective == "dpo" else 1.0
            need = max(need, rep["need_gib"])
            hours = {}
            for t in rep.get("time", []):
                lo, hi = (s * factor / 3600 for s in t["seconds"])
                hours[t["gpu"]] = [round(lo, 2), round(hi, 2)]
                tot = totals.setdefault(t["gpu"], [0.0, 0.0])
                tot[0], tot[1] = tot[0] + lo, tot[1] + hi
            units[f"train:{stage}:seed{seed}"] = {
                "examples": n, "mean_tokens": round(mean), "tokens_from": source,
                "objective": rec.train.objective, "memory_gib": round(rep["need_gib"], 1),
                "hours": hours}
    return {"units": units, "memory_gib_max": round(need, 1),
            "total_training_hours": {g: [round(lo, 1), round(hi, 1)]
                                     for g, (lo, hi) in totals.items()},
            "note": "emergent.pipeline.estimate: FLOPs per token / (dense bf16 peak x assumed "
                    "utilisation); not measured; sampling not included"}
