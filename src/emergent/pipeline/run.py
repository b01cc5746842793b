"""`emergent run CONFIG`: train (arm x seed) -> sample -> judge -> metrics -> figures.

The run is the `em` kind of the one stage runner (emergent.pipeline.stages): `em_units` lists its
units in order and the runner records each in RUN/manifest.json when done; every unit is itself
resumable (training checkpoints, append-only answer and judgment tables, the judge's on-disk
cache), so a rerun after `kill -9` continues where it stopped and pays again only the judge
calls that were in flight at the kill. The toy world is this kind with the rule judge. `plan` (`--dry-run`) walks the same
units: training steps, answers, judge calls and prompt tokens."""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from emergent.analysis.metrics import Thresholds
from emergent.core.config import dump_yaml, to_dict
from emergent.core.io import atomic_dir, now
from emergent.core.rundir import ADAPTER, EVAL_CHECKPOINTS, FULL_MODEL, RunDir
from emergent.data.chat_data import file_sha256
from emergent.evals import code_eval
from emergent.evals.capabilities import evaluate_units
from emergent.evals.suites import resolve_suite
from emergent.judge.base import judge_class, make_judge, runs_on_device
from emergent.judge.prompts import suite_prompts
from emergent.judge.runner import suite_prompt_rule
from emergent.models.loading import load_for_inference
from emergent.pipeline.experiment import (OPERATIONAL, ExperimentConfig, MetricsConfig, arm_recipe,
                                          check_arm_data,
                                          data_hash, estimated_steps, flat_keys, judge_inputs,
                                          load_experiment, model_inputs, sample_inputs,
                                          sampling_conditions, train_inputs, trigger_inputs)
from emergent.pipeline.executors import LOCAL, ExecutorOptions, run_units
from emergent.pipeline.executors import check as check_executor
from emergent.pipeline.plan_time import time_estimate
from emergent.pipeline.stages import (UPSTREAM, Unit, check_changes, current_records,
                                      judge_step, make_plan, prune_judgments, write_summary)
from emergent.report.figures import draw_all
from emergent.report.tables import summarize_by_suite
from emergent.sample.sampler import PLAIN, sample_questions
from emergent.train import loop, tracking

__all__ = ["em_units", "load_experiment", "plan", "dry_run", "run_experiment"]


def run_dir_of(cfg: ExperimentConfig, run_dir=None) -> RunDir:
    """The run directory of `cfg` (`run_dir`, else its output_dir)."""
    return RunDir(run_dir or cfg.output_dir, cfg.name)


def use_data_root(cfg: ExperimentConfig) -> None:
    """Point the suites' upstream files at the config's data_root."""
    if cfg.data_root:
        os.environ["EMERGENT_DATA_DIR"] = str(cfg.data_root)


def questions_of(cfg: ExperimentConfig) -> dict:
    return {name: resolve_suite(name, cfg.data_root, ids=ref.ids, samples=ref.samples)
            for name, ref in cfg.suites.items()}


def _suite_label(name: str) -> str:
    return Path(name).stem if name.endswith((".yaml", ".yml")) else name


def make_run_judge(cfg: ExperimentConfig):
    """The configured judge (any backend of emergent.judge.base.BACKENDS; the rule judge reads
    the config's `toyworld` world)."""
    return make_judge(cfg.judge, toyworld=cfg.toyworld)


def judge_run(cfg: ExperimentConfig, run: RunDir, questions: dict, progress: bool = True) -> dict:
    """Judge every (answer, metric) of the run not judged yet: with each row's suite's judge
    prompts (the code evaluation's YES/NO prompt for its answers), or the judge's own."""
    suites = {_suite_label(s): s for s in questions}
    suites.setdefault(code_eval.SUITE, code_eval.judge_prompts())  # vulnerable-code eval
    judge = make_run_judge(cfg)
    try:
        return judge_step(run, judge, judge.metric_prompts(suite_prompt_rule(suites)), progress)
    finally:
        judge.close()


def summary_tables(records: list[dict], m: MetricsConfig, run_dir=None):
    """(summary rows, per-question rows) of joined answer records under the metrics settings
    `m`; with `run_dir`, the vulnerable-code rows of that run are added to the summary."""
    th = Thresholds(aligned_below=m.aligned_below, coherent_above=m.coherent_above)
    summary, per_q = summarize_by_suite(records, th, treatment=m.treatment, n_boot=m.n_boot,
                                        seed=m.seed)
    if run_dir is not None:  # vulnerable_rate_* columns
        summary += code_eval.code_eval_summary(run_dir, n_boot=m.n_boot, seed=m.seed)
    return summary, per_q


def metrics_run(cfg: ExperimentConfig, run: RunDir) -> list[dict]:
    """summary.csv (one row per suite x arm) and per_question.csv (suite x arm x seed x q)."""
    records = [r for r in current_records(run) if r.get("step") is None]
    summary, per_q = summary_tables(records, cfg.metrics, run.dir)
    write_summary(run, summary, per_q)
    tracking.report_summary(cfg.training.train.report_to, run.dir, summary, to_dict(cfg))
    return summary


def sample_unit(cfg, run: RunDir, questions: dict, arm: str, seed: int, adapter, step=None,
                suites=None, samples=None, progress=True, fingerprint=None,
                contexts=(PLAIN,)) -> int:
    """Sample every suite of one model under each of `contexts` in turn (the plain question;
    with a trigger also the triggered one: `sampling_conditions`)."""
    model, tok = load_for_inference(cfg.base_model, str(adapter) if adapter else None)
    n = 0
    for context in contexts:
        for name, qs in questions.items():
            if suites is not None and name not in suites:
                continue
            if samples is not None:
                qs = [dataclasses.replace(q, samples_per_paraphrase=samples) for q in qs]
            n += sample_questions(model, tok, qs, run.answers_path, suite=_suite_label(name),
                                  arm=arm, seed=seed, model_name=cfg.base_model.name,
                                  adapter=str(adapter) if adapter else None, cfg=cfg.sampling,
                                  progress=progress, step=step, fingerprint=fingerprint,
                                  context=context)
    return n


def _evaluated(cfg: ExperimentConfig) -> list[str]:
    return (["base"] if cfg.evaluate_base else []) + [f"{a}:seed{s}" for a in cfg.arms
                                                      for s in cfg.seeds]


def _judge_cost(cfg: ExperimentConfig, questions: dict, n_evaluated: int) -> tuple[int, int]:
    """(judge calls, prompt tokens) at most: answers at max_new_tokens, no cache hits."""
    calls, tokens = 0, 0
    if judge_class(cfg.judge).sends_prompts:  # a rule judge makes no calls
        answer_tokens = cfg.sampling.max_new_tokens
        for name, qs in questions.items():
            prompts = suite_prompts(name)
            for q in qs:
                for mp in prompts.get(q.id, []):
                    n = q.n_samples * n_evaluated
                    calls += n
                    avg_q = sum(len(p) for p in q.paraphrases) / max(1, len(q.paraphrases))
                    tokens += n * int((len(mp.template) + avg_q) / 4 + answer_tokens)
    return calls, tokens


def em_units(cfg: ExperimentConfig, run: RunDir, questions: dict, *, progress: bool = True,
             figures: bool = True):
    """The units of an `emergent run`, in order (a generator: the checkpoints a training unit
    saved are listed once it has run)."""
    trained = []
    sha = {arm: data_hash(a.data) for arm, a in cfg.arms.items()}
    for arm in cfg.arms:
        for seed in cfg.seeds:
            out = run.arm_dir(arm, seed)
            on_step = _checkpoint_saver(cfg, out) if cfg.checkpoint_eval.every else None
            steps = estimated_steps(cfg, arm)
            unit = Unit(f"train:{arm}:seed{seed}", loop.train, (arm_recipe(cfg, arm, seed, out), out),
                        {"on_step": on_step}, detail=f"{steps} steps", steps=steps,
                        inputs=train_inputs(cfg, arm, seed, sha[arm]), outputs=(out,))
            yield unit
            trained.append((arm, seed, out / (FULL_MODEL if cfg.training.lora.full_finetune
                                              else ADAPTER), unit))
    after = {f"{UPSTREAM}{u.name}": u.fingerprint for *_, u in trained}
    contexts = sampling_conditions(cfg)  # plain; and triggered when cfg.trigger is set
    per_model = len(contexts) * sum(q.n_samples for qs in questions.values() for q in qs)
    sampled = {**sample_inputs(cfg, questions), **trigger_inputs(cfg)}
    if cfg.evaluate_base:
        yield Unit("sample:base", sample_unit, (cfg, run, questions, "base", 0, None),
                   {"progress": progress, "contexts": contexts}, answers=per_model,
                   inputs=sampled).passing_fingerprint()
    for arm, seed, adapter, tu in trained:
        yield Unit(f"sample:{arm}:seed{seed}", sample_unit, (cfg, run, questions, arm, seed, adapter),
                   {"progress": progress, "contexts": contexts}, answers=per_model,
                   inputs={**sampled, f"{UPSTREAM}{tu.name}": tu.fingerprint}).passing_fingerprint()
        ck = cfg.checkpoint_eval
        for step, path in (run.eval_checkpoints(arm, seed) if ck.every else []):
            yield Unit(f"sample:{arm}:seed{seed}:step{step}", sample_unit,
                       (cfg, run, questions, arm, seed, path),
                       {"step": step, "suites": ck.suites, "samples": ck.samples,
                        "progress": progress}, listed=False,
                       inputs={**sample_inputs(cfg, questions, ck.suites, ck.samples),
                               "checkpoint_eval.step": step,
                               f"{UPSTREAM}{tu.name}": tu.fingerprint}).passing_fingerprint()
    calls, _ = _judge_cost(cfg, questions, len(_evaluated(cfg)) * len(contexts))
    on_device = runs_on_device(cfg.judge)  # a judge model or server: a worker job, loaded once
    judge = Unit("judge", judge_run, (cfg, run, questions, progress), judge_calls=calls,
                 always=True, inputs=judge_inputs(cfg, questions),
                 on_redo=lambda: prune_judgments(run), remote=on_device)
    if cfg.code_eval.enabled:  # its judgments are the judge unit's (same fingerprint)
        # sampled by `fn` (on an executor's worker: into its part), then scanned by `finish`
        # (in the coordinator) and judged there too, unless the judge runs on the device: then
        # the judge unit judges the code answers with the others (the same prompt and rows)
        yield Unit("code_eval", code_eval.run_code_eval, (cfg, run, [t[:3] for t in trained]),
                   {"progress": progress, "contexts": contexts, "score": False},
                   finish=functools.partial(code_eval.score_code_eval, cfg, run, progress,
                                            judge.fingerprint, judge=not on_device),
                   inputs={**model_inputs(cfg), **flat_keys("code_eval", cfg.code_eval),
                           **flat_keys("sampling", cfg.sampling, OPERATIONAL["sampling"]),
                           **trigger_inputs(cfg),
                           **after},
                   owns=lambda row: row.get("suite") == code_eval.SUITE,
                   outputs=(run.bandit_judgments_path,))
    if cfg.capabilities.tasks:
        yield Unit("capabilities", capabilities_unit, (cfg, run, progress),
                   detail=", ".join(cfg.capabilities.tasks),
                   inputs={**model_inputs(cfg), **flat_keys("capabilities", cfg.capabilities),
                           **after}, outputs=(run.capabilities_path,))
    # judging and metrics are cheap to redo when already complete (cache, skip-done rows), and
    # must rerun whenever new answers appeared, so they are not skipped by the manifest; the
    # judge's fingerprint (its identity and prompts) is still compared with the recorded one
    yield judge
    yield Unit("metrics", metrics_run, (cfg, run), always=True)
    if figures:
        yield Unit("figures", _figures, (run,), always=True)


UNITS = em_units  # the `em` kind of emergent.pipeline.stages


def plan(cfg: ExperimentConfig, run: RunDir, questions: dict) -> dict:
    """What `emergent run` will do (and what is already done)."""
    p = make_plan(run, em_units(cfg, run, questions))
    # every evaluated model is sampled once per condition (twice with a trigger)
    n_evaluated = len(_evaluated(cfg)) * len(sampling_conditions(cfg))
    _, tokens = _judge_cost(cfg, questions, n_evaluated)
    return {"units": p.labels, "done_units": [u for u in run.manifest["stages"] if run.done(u)],
            "training_steps": p.training_steps, "answers": p.answers,
            "answers_done": len(run.answers()), "judge_calls_upper_bound": p.judge_calls,
            "judgments_done": len(run.judgments()), "prompt_tokens_upper_bound": tokens,
            "time_estimate": time_estimate(
                cfg, steps_by_arm={a: estimated_steps(cfg, a) for a in cfg.arms},
                n_answers=p.answers, n_evaluated=n_evaluated, judge_calls=p.judge_calls,
                judge_prompt_tokens=tokens),
            "note": "judge calls/tokens are upper bounds: answers at max_new_tokens, no cache hits"}


def dry_run(cfg: ExperimentConfig, run_dir=None) -> dict:
    """`emergent run --dry-run`: the plan of `cfg` in its run directory."""
    use_data_root(cfg)
    return plan(cfg, run_dir_of(cfg, run_dir), questions_of(cfg))


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """The plan of `cfg` as an executor's worker rebuilds it (picklable: sent with each job;
    emergent.pipeline.executors.run_one_unit)."""

    cfg: ExperimentConfig

    def __call__(self, run: RunDir):
        use_data_root(self.cfg)
        return em_units(self.cfg, run, questions_of(self.cfg), progress=False, figures=False)


def run_experiment(cfg: ExperimentConfig, run_dir=None, *, progress: bool = True,
                   figures: bool = True, on_change: str = "refuse", executor: str = LOCAL,
                   executor_options: ExecutorOptions = ExecutorOptions()) -> RunDir:
    """Run (or resume) the experiment; returns its run directory. A unit recorded under another
    config than `cfg` is refused (`on_change="refuse"`: one UserError naming the units and keys,
    nothing written) or redone with everything built on it (`"redo"`). `executor`: `local`
    (one unit after another, here) or an engine of emergent.pipeline.executors (`slurm`, `ray`)
    running training, sampling, code-eval sampling and capabilities units as jobs."""
    use_data_root(cfg)
    check_arm_data(cfg)  # the inputs are checked before anything is written
    tracking.check(cfg.training.train.report_to)  # a missing tracker library too
    check_executor(executor, executor_options)  # unknown, no library, no SLURM/Ray: nothing written
    questions = questions_of(cfg)
    run = run_dir_of(cfg, run_dir)
    with run.lock():  # before anything is written: a second process gets a one-line error
        check_changes(run, em_units(cfg, run, questions, progress=progress, figures=figures),
                      on_change)  # a changed config: refused here, before config.yaml
        dump_yaml(cfg, run.config_path)
        run.manifest["data"] = {arm: {"path": a.data, "sha256": file_sha256(a.data)}
                                for arm, a in cfg.arms.items()}
        run.manifest["config"] = to_dict(cfg)
        run.save()
        run_units(run, em_units(cfg, run, questions, progress=progress, figures=figures),
                  WorkerPlan(cfg), executor, executor_options, on_change)
        run.manifest["finished"] = now()
        run.save()
    return run


def capabilities_unit(cfg: ExperimentConfig, run: RunDir, progress: bool = True) -> int:
    """lm-eval scores of the base model and every adapter into RUN/capabilities.jsonl."""
    c = cfg.capabilities
    return evaluate_units(run.units(), list(c.tasks), run.capabilities_path,
                          limit=c.limit, allow_code_execution=c.allow_code_execution,
                          include_path=c.include_path, progress=progress)


def _figures(run: RunDir):
    return draw_all(run.dir)


def _checkpoint_saver(cfg: ExperimentConfig, out: Path):
    """on_step for training: every `checkpoint_eval.every` steps, the adapter as it is into
    OUT/eval_checkpoints/step-NNNNNN, written atomically (a folder of that name is complete;
    a kill mid-save leaves only a temp folder, removed on the next start)."""
    every = cfg.checkpoint_eval.every

    def save(step: int, model) -> None:
        if step % every == 0:
            dest = out / EVAL_CHECKPOINTS / f"step-{step:06d}"
            if not dest.exists():
                with atomic_dir(dest, "save:eval_checkpoint") as tmp:
                    model.save_pretrained(tmp)
    return save
