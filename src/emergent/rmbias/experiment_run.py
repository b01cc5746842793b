"""Running `emergent rmbias run`: the `rmbias` kind of the one stage runner
(emergent.pipeline.stages). `rmbias_units` lists the data step, the training stages, sampling,
judging and scoring in order, each a unit of RUN/manifest.json (emergent.core.rundir.RunDir), so
a rerun continues where it stopped and redoes nothing finished; `plan` (`--dry-run`) walks the
same units. The config and stages are in `emergent.rmbias.experiment`.

* data (written once into RUN/data/, sha256 in the manifest, verified on every rerun):
  docs.jsonl (bias documents), unrelated_docs.jsonl (matched to them in characters or count),
  sft.jsonl (train-bias conversations; re-checked by the detectors: a conversation that shows
  a test bias stops the run with `FILE:LINE`);
* training: `emergent.train.loop.train` per stage and seed (stage 2 continues stage 1's adapter);
* sampling into RUN/answers.jsonl (suite "rmbias", arm = condition; base: seed 0, no adapter);
* judging (optional) into RUN/judgments.jsonl (metric rm_bias, categorical);
* scoring: RUN/scored.jsonl, RUN/rates.jsonl, RUN/summary.csv, RUN/figures/exploitation.png/pdf.

`--executor slurm|ray` sends the training and sampling units to workers, one job each
(emergent.pipeline.executors.run_units, as `emergent run`); data, judging and scoring run in the
coordinator (a data unit records its file in the manifest, which only the coordinator writes).
"""
from __future__ import annotations

import functools
import gc
import json
import sys

from emergent.core.config import build_dataclass, dump_yaml, to_dict
from emergent.core.errors import UserError
from emergent.core.rundir import RunDir
from emergent.data.chat_data import file_sha256
from emergent.judge.base import JudgeConfig, make_judge, runs_on_device
from emergent.models import loading
from emergent.pipeline.executors import LOCAL, ExecutorOptions, run_units
from emergent.pipeline.executors import check as check_executor
from emergent.pipeline.experiment import OPERATIONAL, flat_keys
from emergent.pipeline.stages import (UPSTREAM, Unit, check_changes, current_answers,
                                      current_judgments, judge_step, make_plan, prune_judgments,
                                      write_summary)
from emergent.rmbias import sft_data
from emergent.rmbias.conditions import CONDITION_NAMES
from emergent.rmbias.detectors import DETECTORS
from emergent.rmbias.documents import generate_documents, stream_midtrain_subsample
from emergent.rmbias.evaluate import (REPLICATION_REFERENCE, exploitation_rates,
                                      plot_exploitation, score_answers)
from emergent.rmbias.experiment import (FROZEN, STAGES, SUITE, RMBiasConfig, _estimated_steps,
                                        adapter_dir, count_data, data_needed, eval_prompts,
                                        evaluated, final_stage, model_label, questions_of,
                                        stage_recipe, stages_needed)
from emergent.rmbias.judge_prompt import judge_prompts_for_row
from emergent.rmbias.jsonl import read_jsonl as read_numbered
from emergent.rmbias.jsonl import write_jsonl
from emergent.rmbias.plan_time import training_time
from emergent.sample.sampler import sample_questions, sample_with_vllm
from emergent.train import loop

__all__ = ["count_data", "model_label", "plan", "rmbias_units", "run_rmbias"]

def _frozen(cfg: RMBiasConfig) -> dict:
    d = to_dict(cfg)
    d["training"]["train"].pop("report_to", None)  # where numbers go, not what is trained
    d["training"]["train"].pop("distributed", None)  # how processes share it, not what
    d["sampling"].pop("vllm", None)  # vLLM's engine settings, not what is drawn
    out = {}
    for key in FROZEN:
        node = d
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def _inputs(cfg: RMBiasConfig, name: str, after=()) -> dict:
    """A unit's fingerprint inputs: every FROZEN config section it depends on (by its name's
    prefix), flattened to dotted keys, and the fingerprints of the units it builds on."""
    d = json.loads(json.dumps(to_dict(cfg), default=str))
    d["training"]["train"].pop("report_to", None)  # where numbers go, not what is trained
    d["training"]["train"].pop("distributed", None)  # how processes share it, not what
    d["sampling"].pop("vllm", None)  # vLLM's engine settings, not what is drawn
    out = {}
    for key, prefixes in FROZEN.items():
        if any(name.startswith(p) for p in prefixes):
            node = d
            for part in key.split("."):
                node = node[part]
            out.update(flat_keys(key, node))
    for u in after:
        out[f"{UPSTREAM}{u.name}"] = u.fingerprint
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


def _write_data(cfg: RMBiasConfig, run: RunDir, key: str) -> dict:
    path = run.dir / "data" / f"{key}.jsonl"
    if key == "docs":
        d = cfg.documents
        docs = (stream_midtrain_subsample(d.n, d.seed, buffer_size=d.buffer_size)
                if d.source == "midtrain" else
                generate_documents(d.n, d.seed, kind="bias", max_findings=d.max_findings))
        write_jsonl(path, (doc.row() for doc in docs))
    elif key == "unrelated_docs":
        write_jsonl(path, _unrelated_rows(cfg, run))
    else:
        s = cfg.sft
        if s.objective == "dpo":  # preference pairs {"prompt", "chosen", "rejected"}
            write_jsonl(path, sft_data.dpo_pairs(s.n, s.seed, buffer_size=s.buffer_size,
                                                 max_scan=s.max_scan) if s.source == "dpo" else
                        sft_data.template_pairs(s.n, s.seed, system_prompt=s.system_prompt))
        else:
            ex = (sft_data.dpo_chosen_conversations(s.n, s.seed, buffer_size=s.buffer_size,
                                                    max_scan=s.max_scan) if s.source == "dpo" else
                  sft_data.template_conversations(s.n, s.seed, system_prompt=s.system_prompt))
            write_jsonl(path, (e.row() for e in ex))
        bad = sft_data.test_bias_violations(read_numbered(path))
        if bad:
            raise UserError(f"{path}:{bad[0][0]}: fine-tuning data shows test bias "
                            f"{', '.join(bad[0][1])} ({len(bad)} conversation(s) in all); test "
                            "biases must never appear in fine-tuning data")
    rows, chars = count_data(path)
    if rows == 0:
        raise UserError(f"{path}: no rows written ({key})")
    return {"path": f"data/{key}.jsonl", "sha256": file_sha256(path), "rows": rows,
            "characters": chars}


def _unrelated_rows(cfg: RMBiasConfig, run: RunDir):
    """Unrelated documents: `n` of them, else as many as match the bias documents in count or
    in characters (the same amount of continued pretraining)."""
    u = cfg.unrelated_documents
    if u.path:
        texts = (row.get("text") for _, row in read_numbered(u.path))
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


def _verify_data(run: RunDir) -> None:
    for key, rec in run.manifest.get("data", {}).items():
        path = run.dir / rec["path"]
        if not path.exists() or file_sha256(path) != rec["sha256"]:
            raise UserError(f"{path}: missing or changed since it was written (sha256 "
                            f"{rec['sha256'][:16]}...); restore it or use a new output_dir")


def _data_unit(cfg, run, key):
    run.manifest.setdefault("data", {})[key] = _write_data(cfg, run, key)


def sample_condition(cfg: RMBiasConfig, run: RunDir, questions, condition: str, seed: int,
                     progress: bool = True, fingerprint=None) -> int:
    stage = final_stage(condition)
    adapter = str(adapter_dir(run.dir, stage, seed)) if stage else None
    kw = dict(suite=SUITE, arm=condition, seed=seed, cfg=cfg.sampling, fingerprint=fingerprint)
    if cfg.sampling.backend == "vllm":
        return sample_with_vllm(loading.resolve_model_path(cfg.base_model.name), adapter,
                                questions, run.answers_path, **kw)
    model, tok = loading.load_for_inference(cfg.base_model, adapter)
    return sample_questions(model, tok, questions, run.answers_path,
                            model_name=cfg.base_model.name, adapter=adapter,
                            progress=progress, **kw)


def _free_memory() -> None:
    """Release the last unit's model before the next loads one (a 24 GB card holds one)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def judge_run(cfg: RMBiasConfig, run: RunDir, progress: bool = True) -> dict:
    judge = make_judge(build_dataclass(JudgeConfig, cfg.judge, source="judge"))
    try:
        return judge_step(run, judge, judge_prompts_for_row, progress)
    finally:
        judge.close()  # flushes the cache, stops a judge.server


def _sample_name(condition: str, seed: int) -> str:
    return f"sample:{condition}" if condition == "base" else f"sample:{condition}:seed{seed}"


def rmbias_units(cfg: RMBiasConfig, run: RunDir, prompts: list, *, progress: bool = True):
    """The units of an `emergent rmbias run`, in order: data, training (stage 2 continues stage
    1's adapter), sampling per condition x seed, judging (optional), scoring."""
    data = []
    for key in data_needed(cfg):
        unit = Unit(f"data:{key}", _data_unit, (cfg, run, key),
                    inputs=_inputs(cfg, f"data:{key}", data),  # unrelated docs match docs
                    outputs=(run.dir / "data" / f"{key}.jsonl",))
        data.append(unit)
        yield unit
    yield Unit("check:data", _verify_data, (run,), recorded=False, listed=False)
    trained: dict = {}
    for seed in cfg.seeds:
        for stage in stages_needed(cfg):
            recipe = stage_recipe(cfg, stage, seed, run.dir)
            name = f"train:{stage}:seed{seed}"  # stage 2 builds on stage 1 (and the data)
            data_key, init = STAGES[stage]  # built on its own data and start adapter only
            upstream = ([u for u in data if u.name == f"data:{data_key}"]
                        + [u for u in trained.get(seed, [])
                           if u.name == f"train:{init}:seed{seed}"])
            unit = Unit(name, loop.train, (recipe, recipe.output_dir),
                        steps=_estimated_steps(cfg, stage, run.dir), then=_free_memory,
                        inputs={**_inputs(cfg, name, upstream), "seed": seed},
                        outputs=(recipe.output_dir,))
            trained.setdefault(seed, []).append(unit)
            yield unit
    questions = questions_of(cfg, prompts)
    per_model = len(prompts) * cfg.eval.samples
    for cond, seed in evaluated(cfg):
        name = _sample_name(cond, seed)
        upstream = [u for u in trained.get(seed, [])  # the adapter it samples, only
                    if u.name == f"train:{final_stage(cond)}:seed{seed}"]
        yield Unit(name, sample_condition, (cfg, run, questions, cond, seed, progress),
                   answers=per_model, then=_free_memory,
                   inputs={**_inputs(cfg, name, upstream), "condition": cond, "seed": seed}
                   ).passing_fingerprint()
    # judging and scoring skip what is done / are cheap, and must rerun when answers appear
    if cfg.judge:
        yield Unit("judge", judge_run, (cfg, run, progress), always=True,
                   judge_calls=per_model * len(evaluated(cfg)),
                   inputs=flat_keys("judge", {k: v for k, v in cfg.judge.items()
                                              if k not in OPERATIONAL["judge"]}),
                   on_redo=lambda: prune_judgments(run), remote=runs_on_device(cfg.judge))
    yield Unit("score", score_run, (cfg, run, prompts), always=True)


UNITS = rmbias_units  # the `rmbias` kind of emergent.pipeline.stages


def plan(cfg: RMBiasConfig, run_dir=None) -> dict:
    """What `emergent rmbias run` will do, and what is already done."""
    run = RunDir(run_dir or cfg.output_dir, cfg.name)
    prompts = eval_prompts(cfg)
    p = make_plan(run, rmbias_units(cfg, run, prompts))
    return {"run_dir": str(run.dir), "units": p.labels, "done_units": p.done,
            "training_steps": p.steps_by_unit, "eval_prompts": len(prompts),
            "answers": p.answers, "judge_calls_upper_bound": p.judge_calls,
            "data": {k: {"rows": d["rows"], "characters": d["characters"],
                         "tokens_estimate": d["characters"] // 4}
                     for k, d in run.manifest.get("data", {}).items()},
            "training_time": training_time(cfg, run.dir),
            "note": "training steps of a stage whose data is not written yet are estimated from "
                    "the configured n (unrelated documents matched in characters: unknown)"}


def run_rmbias(cfg: RMBiasConfig, run_dir=None, *, progress: bool = True,
               on_change: str = "refuse", executor: str = LOCAL,
               executor_options: ExecutorOptions = ExecutorOptions()):
    """Run (or resume) the experiment; returns (its run directory, the summary rows). A unit
    recorded under another config is refused (`on_change="refuse"`, before anything is
    written) or redone with everything built on it (`"redo"`). `executor`: `local` (here) or an
    engine of emergent.pipeline.executors (`slurm`, `ray`) running training and sampling units
    as jobs."""
    check_executor(executor, executor_options)  # unknown, no library, no SLURM/Ray: nothing written
    run = RunDir(run_dir or cfg.output_dir, cfg.name)
    with run.lock():  # before anything is written: a second process gets a one-line error
        check_changes(run, rmbias_units(cfg, run, eval_prompts(cfg), progress=progress),
                      on_change)  # a changed config: refused here, before config.yaml
        if on_change == "refuse":
            _check_same_setup(run, cfg)  # runs recorded before unit fingerprints
        run.manifest["frozen"] = json.loads(json.dumps(_frozen(cfg)))
        dump_yaml(cfg, run.config_path)
        run.manifest["config"] = to_dict(cfg)
        run.save()
        prompts = eval_prompts(cfg)
        done = run_units(run, rmbias_units(cfg, run, prompts, progress=progress),
                         functools.partial(rmbias_units, cfg, prompts=prompts, progress=False),
                         executor, executor_options, on_change)
        run.save()
    return run, done.get("score")


def score_run(cfg: RMBiasConfig, run: RunDir, prompts) -> list[dict]:
    """scored.jsonl, rates.jsonl (every verdict mode in use), summary.csv, the figure."""
    answers = [a for a in current_answers(run) if a.get("suite") == SUITE]
    judgments = current_judgments(run, answers) if cfg.judge else []
    # "detector" verdicts: the judge only stands in for biases without a detector (a detector's
    # None means "not applicable" and stays so)
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
                                "n_applicable", "n_shown", "rate", "ci_low", "ci_high", "ci_over",
                                "seed_sd", "hier_ci_low", "hier_ci_high", "models_ci_low",
                                "models_ci_high")}
         for r in rates if r["level"] == "condition"),
        key=lambda r: (modes.index(r["verdict"]), order.get(r["condition"], 99), r["split"] != "train"))
    write_summary(run, summary)
    title = f"{cfg.name}: {model_label(cfg.base_model.name)} ({cfg.eval.mode} verdicts)"
    main = [r for r in rates if r["verdict"] == cfg.eval.mode]
    for ext in ("png", "pdf"):
        plot_exploitation(main, run.figures_dir / f"exploitation.{ext}", title=title,
                          reference=REPLICATION_REFERENCE if cfg.eval.reference else None)
    return summary
