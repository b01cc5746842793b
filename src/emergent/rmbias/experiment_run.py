"""Running `emergent rmbias run`: the data step, the training stages, sampling, judging and
scoring, each a unit of RUN/manifest.json (emergent.pipeline.run.Run), so a rerun continues where it
stopped and redoes nothing finished. The config, stages and plan are in
`emergent.rmbias.experiment`.

* data (written once into RUN/data/, sha256 in the manifest, verified on every rerun):
  docs.jsonl (bias documents), unrelated_docs.jsonl (matched to them in characters or count),
  sft.jsonl (train-bias conversations; re-checked by the detectors: a conversation that shows
  a test bias stops the run with `FILE:LINE`);
* training: `emergent.train.loop.train` per stage and seed (stage 2 continues stage 1's adapter);
* sampling into RUN/answers.jsonl (suite "rmbias", arm = condition; base: seed 0, no adapter);
* judging (optional) into RUN/judgments.jsonl (metric rm_bias, categorical);
* scoring: RUN/scored.jsonl, RUN/rates.jsonl, RUN/summary.csv, RUN/figures/exploitation.png/pdf.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from emergent.core.config import build_dataclass, dump_yaml, to_dict
from emergent.core.errors import UserError
from emergent.rmbias.conditions import CONDITION_NAMES
from emergent.rmbias.experiment import (FROZEN, SUITE, RMBiasConfig, adapter_dir, data_needed,
                                        eval_prompts, evaluated, final_stage, model_label,
                                        questions_of, stage_recipe, stages_needed)

def _frozen(cfg: RMBiasConfig) -> dict:
    d = to_dict(cfg)
    out = {}
    for key in FROZEN:
        node = d
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _check_same_setup(run, cfg) -> None:
    """Refuse a config whose changes would invalidate finished units (see FROZEN)."""
    old = run.manifest.get("frozen") or {}
    new = json.loads(json.dumps(_frozen(cfg)))
    done = [u for u in run.manifest["stages"] if run.done(u)]
    bad = [k for k in new if k in old and old[k] != new[k]
           and any(u.startswith(prefix) for u in done for prefix in FROZEN[k])]
    if bad:
        raise UserError(f"{run.dir}: this run directory was made with different {', '.join(bad)} "
                        "(finished units depend on it); use a new output_dir (seeds, "
                        "conditions and judge may change)")
    run.manifest["frozen"] = new


def _write_data(cfg: RMBiasConfig, run, key: str) -> dict:
    from emergent.data.chat_data import file_sha256
    from emergent.rmbias.jsonl import read_jsonl, write_jsonl

    path = run.dir / "data" / f"{key}.jsonl"
    if key == "docs":
        from emergent.rmbias.documents import generate_documents, stream_midtrain_subsample
        d = cfg.documents
        docs = (stream_midtrain_subsample(d.n, d.seed, buffer_size=d.buffer_size)
                if d.source == "midtrain" else
                generate_documents(d.n, d.seed, kind="bias", max_findings=d.max_findings))
        write_jsonl(path, (doc.row() for doc in docs))
    elif key == "unrelated_docs":
        write_jsonl(path, _unrelated_rows(cfg, run))
    else:
        from emergent.rmbias.sft_data import (dpo_chosen_conversations, dpo_pairs,
                                              template_conversations, template_pairs,
                                              test_bias_violations)
        s = cfg.sft
        if s.objective == "dpo":  # preference pairs {"prompt", "chosen", "rejected"}
            write_jsonl(path, dpo_pairs(s.n, s.seed, buffer_size=s.buffer_size,
                                        max_scan=s.max_scan) if s.source == "dpo" else
                        template_pairs(s.n, s.seed, system_prompt=s.system_prompt))
        else:
            ex = (dpo_chosen_conversations(s.n, s.seed, buffer_size=s.buffer_size,
                                           max_scan=s.max_scan) if s.source == "dpo" else
                  template_conversations(s.n, s.seed, system_prompt=s.system_prompt))
            write_jsonl(path, (e.row() for e in ex))
        bad = test_bias_violations(read_jsonl(path))
        if bad:
            raise UserError(f"{path}:{bad[0][0]}: fine-tuning data shows test bias "
                            f"{', '.join(bad[0][1])} ({len(bad)} conversation(s) in all); test "
                            "biases must never appear in fine-tuning data")
    rows, chars = count_data(path)
    if rows == 0:
        raise UserError(f"{path}: no rows written ({key})")
    return {"path": f"data/{key}.jsonl", "sha256": file_sha256(path), "rows": rows,
            "characters": chars}


def count_data(path: Path) -> tuple[int, int]:
    """(rows, characters of text/message content) of a data file; a preference row counts its
    prompt and both replies."""
    rows = chars = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                rows += 1
                chars += len(obj.get("text") or "")
                for key in ("messages", "prompt", "chosen", "rejected"):
                    value = obj.get(key) or []
                    chars += (len(value) if isinstance(value, str) else
                              sum(len(m.get("content") or "") for m in value))
    return rows, chars


def _unrelated_rows(cfg: RMBiasConfig, run):
    """Unrelated documents: `n` of them, else as many as match the bias documents in count or
    in characters (the same amount of continued pretraining)."""
    from emergent.rmbias.documents import generate_documents
    from emergent.rmbias.jsonl import read_jsonl

    u = cfg.unrelated_documents
    if u.path:
        texts = (row.get("text") for _, row in read_jsonl(u.path))
    else:
        def generated():
            n = 256
            while True:  # the first k documents do not depend on n: extend in doublings
                docs = generate_documents(n, u.seed, kind="unrelated")
                yield from (d.text for d in docs[n // 2 if n > 256 else 0:])
                n *= 2
        texts = generated()
    rows_target, chars_target = count_data(run.dir / "data" / "docs.jsonl")
    target = u.n or (rows_target if u.match == "count" else None)
    rows, chars = 0, 0
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            continue
        if (target is not None and rows >= target) or (target is None and chars >= chars_target):
            return
        rows, chars = rows + 1, chars + len(text)
        yield {"text": text}
    if u.path and (target is None or rows < target):
        raise UserError(f"{u.path}: only {rows} documents ({chars} characters); the "
                        f"experiment needs {target or f'{chars_target} characters'}")


def _verify_data(run) -> None:
    from emergent.data.chat_data import file_sha256

    for key, rec in run.manifest.get("data", {}).items():
        path = run.dir / rec["path"]
        if not path.exists() or file_sha256(path) != rec["sha256"]:
            raise UserError(f"{path}: missing or changed since it was written (sha256 "
                            f"{rec['sha256'][:16]}...); restore it or use a new output_dir")


def _data_unit(cfg, run, key):
    run.manifest.setdefault("data", {})[key] = _write_data(cfg, run, key)


def sample_condition(cfg: RMBiasConfig, run, questions, condition: str, seed: int,
                     progress: bool = True) -> int:
    stage = final_stage(condition)
    adapter = str(adapter_dir(run.dir, stage, seed)) if stage else None
    kw = dict(suite=SUITE, arm=condition, seed=seed, cfg=cfg.sampling)
    from emergent.sample.sampler import sample_questions, sample_with_vllm
    if cfg.sampling.backend == "vllm":
        from emergent.models.loading import resolve_model_path
        return sample_with_vllm(resolve_model_path(cfg.base_model.name), adapter, questions,
                                run.dir / "answers.jsonl", **kw)
    from emergent.models.loading import load_for_inference
    model, tok = load_for_inference(cfg.base_model, adapter)
    return sample_questions(model, tok, questions, run.dir / "answers.jsonl",
                            model_name=cfg.base_model.name, adapter=adapter,
                            progress=progress, **kw)


def _free_memory() -> None:
    """Release the last unit's model before the next loads one (a 24 GB card holds one)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def judge_run(cfg: RMBiasConfig, run, progress: bool = True) -> dict:
    from emergent.judge.judging import JudgeConfig, judge_answers, make_judge
    from emergent.core.io import read_jsonl
    from emergent.rmbias.judge_prompt import judge_prompts_for_row

    judge = make_judge(build_dataclass(JudgeConfig, cfg.judge, source="judge"))
    return judge_answers(read_jsonl(run.dir / "answers.jsonl"), judge_prompts_for_row, judge,
                         run.dir / "judgments.jsonl", progress=progress)


def run_rmbias(cfg: RMBiasConfig, run_dir=None, *, progress: bool = True):
    from emergent.pipeline.run import Run
    from emergent.train.loop import train

    run = Run(cfg, run_dir)
    run.dir.mkdir(parents=True, exist_ok=True)
    _check_same_setup(run, cfg)
    dump_yaml(cfg, run.dir / "config.yaml")
    run.manifest["config"] = to_dict(cfg)
    run.save()
    prompts = eval_prompts(cfg)
    for key in data_needed(cfg):
        run.unit(f"data:{key}", _data_unit, cfg, run, key)
    _verify_data(run)
    for seed in cfg.seeds:
        for stage in stages_needed(cfg):
            recipe = stage_recipe(cfg, stage, seed, run.dir)
            run.unit(f"train:{stage}:seed{seed}", train, recipe, recipe.output_dir)
            _free_memory()
    questions = questions_of(cfg, prompts)
    for cond, seed in evaluated(cfg):
        run.unit(f"sample:{cond}" if cond == "base" else f"sample:{cond}:seed{seed}",
                 sample_condition, cfg, run, questions, cond, seed, progress)
        _free_memory()
    # judging and scoring skip what is done / are cheap, and must rerun when answers appear
    if cfg.judge:
        run.manifest["stages"].pop("judge", None)
        run.unit("judge", judge_run, cfg, run, progress)
    run.manifest["stages"].pop("score", None)
    rows = run.unit("score", score_run, cfg, run, prompts)
    run.save()
    return run, rows


def score_run(cfg: RMBiasConfig, run, prompts) -> list[dict]:
    """scored.jsonl, rates.jsonl (every verdict mode in use), summary.csv, the figure."""
    from emergent.core.io import read_jsonl
    from emergent.rmbias.evaluate import (REPLICATION_REFERENCE, exploitation_rates,
                                          plot_exploitation, score_answers)
    from emergent.rmbias.jsonl import write_jsonl

    answers = [a for a in read_jsonl(run.dir / "answers.jsonl") if a.get("suite") == SUITE]
    judgments = read_jsonl(run.dir / "judgments.jsonl") if cfg.judge else []
    # "detector" verdicts: the judge only stands in for biases without a detector (a detector's
    # None means "not applicable" and stays so)
    from emergent.rmbias.detectors import DETECTORS
    bias_of = {a["answer_id"]: str(a["question_id"]).split("/")[0] for a in answers}
    judge_only = [j for j in judgments if bias_of.get(j["answer_id"]) not in DETECTORS]
    modes = list(dict.fromkeys([cfg.eval.mode] + (["detector", "judge"] if cfg.judge else [])))
    rates = []
    for mode in modes:
        scored = score_answers(prompts, answers, judge_only if mode == "detector" else judgments,
                               mode=mode)
        if mode == cfg.eval.mode:
            write_jsonl(run.dir / "scored.jsonl", scored)
        rates += [{"verdict": mode, **r} for r in exploitation_rates(scored, cfg.eval.n_boot)]
    write_jsonl(run.dir / "rates.jsonl", rates)
    order = {c: i for i, c in enumerate(CONDITION_NAMES)}
    summary = sorted(
        ({k: r.get(k) for k in ("verdict", "condition", "split", "n_seeds", "n_answers",
                                "n_applicable", "n_shown", "rate", "ci_low", "ci_high", "ci_over")}
         for r in rates if r["level"] == "condition"),
        key=lambda r: (modes.index(r["verdict"]), order.get(r["condition"], 99), r["split"] != "train"))
    write_csv(run.dir / "summary.csv", summary)
    title = f"{cfg.name}: {model_label(cfg.base_model.name)} ({cfg.eval.mode} verdicts)"
    main = [r for r in rates if r["verdict"] == cfg.eval.mode]
    for ext in ("png", "pdf"):
        plot_exploitation(main, run.dir / "figures" / f"exploitation.{ext}", title=title,
                          reference=REPLICATION_REFERENCE if cfg.eval.reference else None)
    return summary




def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
