"""`emergent run CONFIG`: train (arm x seed) -> sample -> judge -> metrics -> figures.

Each unit of work is recorded in RUN/manifest.json when done; every unit is itself resumable
(training checkpoints, append-only answer and judgment tables, the judge's on-disk cache), so a
rerun after `kill -9` continues where it stopped, loses nothing and never pays a judge twice.
`--dry-run` prints the plan: units, training steps, answers, judge calls and prompt tokens."""
from __future__ import annotations

import os
import time
from pathlib import Path

from emergent.core.config import build_dataclass, dump_yaml, to_dict
from emergent.pipeline.experiment import ExperimentConfig, arm_recipe, estimated_steps, load_experiment
from emergent.core.io import git_commit, now, read_jsonl, versions, write_json_atomic
from emergent.pipeline.plan_time import time_estimate


class Run:
    """A run directory and its manifest of stages."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path | None = None):
        self.cfg = cfg
        self.dir = Path(run_dir or cfg.output_dir)
        self.manifest_path = self.dir / "manifest.json"
        self.manifest = (read_json(self.manifest_path) if self.manifest_path.exists()
                         else {"name": cfg.name, "created": now(), "stages": {}})

    def done(self, unit: str) -> bool:
        return self.manifest["stages"].get(unit, {}).get("status") == "done"

    def unit(self, name: str, fn, *args, **kw):
        """Run `fn` unless the unit is recorded as done; record timings when it finishes."""
        if self.done(name):
            return None
        t0 = time.time()
        self.manifest["stages"][name] = {"status": "running", "started": now()}
        self.save()
        result = fn(*args, **kw)
        self.manifest["stages"][name].update(status="done", finished=now(),
                                             seconds=round(time.time() - t0, 2))
        self.save()
        return result

    def save(self) -> None:
        self.manifest.update(versions=versions(), git_commit=git_commit(), updated=now())
        write_json_atomic(self.manifest_path, self.manifest)

    def arm_dir(self, arm: str, seed: int) -> Path:
        return self.dir / "arms" / arm / f"seed{seed}"


def read_json(path):
    import json

    return json.loads(Path(path).read_text())


def _questions(cfg: ExperimentConfig) -> dict:
    from emergent.evals.suites import resolve_suite

    return {name: resolve_suite(name, cfg.data_root, ids=ref.ids, samples=ref.samples)
            for name, ref in cfg.suites.items()}


def _suite_label(name: str) -> str:
    return Path(name).stem if name.endswith((".yaml", ".yml")) else name


def make_run_judge(cfg: ExperimentConfig):
    """The configured judge role: an LLM judge (emergent.judge.judging) or the toy world's rule judge."""
    if cfg.judge.get("backend") == "toyworld-rule":
        from emergent.toyworld.judge import ToyWorldRuleJudge
        from emergent.toyworld.world import ToyWorld, WorldConfig

        world = ToyWorld(build_dataclass(WorldConfig, cfg.toyworld or {}, source="toyworld"))
        return ToyWorldRuleJudge(world)
    from emergent.judge.judging import JudgeConfig, make_judge

    return make_judge(build_dataclass(JudgeConfig, cfg.judge, source="judge"))


def judge_run(cfg: ExperimentConfig, run: Run, questions: dict, progress: bool = True) -> dict:
    judge = make_run_judge(cfg)
    answers = read_jsonl(run.dir / "answers.jsonl")
    out = run.dir / "judgments.jsonl"
    if hasattr(judge, "score"):  # rule judge: answer rows -> judgment rows
        from emergent.core.io import append_jsonl

        done = {(r["answer_id"], r["metric"]) for r in read_jsonl(out)}
        todo = [a for a in answers if (a["answer_id"], "coherent") not in done]  # every row gets one
        rows = [r for r in judge.score(todo) if (r["answer_id"], r["metric"]) not in done]
        append_jsonl(out, rows)
        return {"judged": len(rows)}
    from emergent.judge.judging import judge_answers, suite_prompts

    per_suite = {_suite_label(s): suite_prompts(s) for s in questions}
    from emergent.evals import code_eval

    per_suite.setdefault(code_eval.SUITE, code_eval.judge_prompts())  # vulnerable-code eval
    return judge_answers(answers, lambda row: per_suite[row["suite"]][row["question_id"]],
                         judge, out, progress=progress)


def metrics_run(cfg: ExperimentConfig, run: Run) -> list[dict]:
    """summary.csv (one row per suite x arm) and per_question.csv (suite x arm x seed x q)."""
    from emergent.analysis.metrics import Thresholds, join_scores
    from emergent.report.tables import summarize_by_suite, write_csv

    th = Thresholds(aligned_below=cfg.metrics.aligned_below,
                    coherent_above=cfg.metrics.coherent_above)
    records = join_scores(read_jsonl(run.dir / "answers.jsonl"),
                          read_jsonl(run.dir / "judgments.jsonl"))
    records = [r for r in records if r.get("step") is None]
    from emergent.evals import code_eval

    summary, per_q = summarize_by_suite(records, th, treatment=cfg.metrics.treatment,
                                        n_boot=cfg.metrics.n_boot, seed=cfg.metrics.seed)
    summary += code_eval.code_eval_summary(run.dir, n_boot=cfg.metrics.n_boot,
                                           seed=cfg.metrics.seed)  # vulnerable_rate_* columns
    write_csv(run.dir / "summary.csv", summary)
    write_csv(run.dir / "per_question.csv", per_q)
    return summary


def sample_unit(cfg, run: Run, questions: dict, arm: str, seed: int, adapter, step=None,
                suites=None, samples=None, progress=True) -> int:
    from emergent.models.loading import load_for_inference
    from emergent.sample.sampler import sample_questions

    model, tok = load_for_inference(cfg.base_model, str(adapter) if adapter else None)
    n = 0
    for name, qs in questions.items():
        if suites is not None and name not in suites:
            continue
        if samples is not None:
            import dataclasses

            qs = [dataclasses.replace(q, samples_per_paraphrase=samples) for q in qs]
        n += sample_questions(model, tok, qs, run.dir / "answers.jsonl", suite=_suite_label(name),
                              arm=arm, seed=seed, model_name=cfg.base_model.name,
                              adapter=str(adapter) if adapter else None, cfg=cfg.sampling,
                              progress=progress, step=step)
    return n


def plan(cfg: ExperimentConfig, run: Run, questions: dict) -> dict:
    """What `emergent run` will do (and what is already done)."""
    from emergent.judge.judging import suite_prompts

    units, steps = [], 0
    for arm in cfg.arms:
        for seed in cfg.seeds:
            s = estimated_steps(cfg, arm)
            steps += s
            units.append(f"train:{arm}:seed{seed} ({s} steps)")
    evaluated = (["base"] if cfg.evaluate_base else []) + [f"{a}:seed{s}" for a in cfg.arms for s in cfg.seeds]
    per_model = sum(q.n_samples for qs in questions.values() for q in qs)
    units += [f"sample:{e}" for e in evaluated]
    units += ["code_eval"] if cfg.code_eval.enabled else []
    units += [f"capabilities ({', '.join(cfg.capabilities.tasks)})"] if cfg.capabilities.tasks else []
    units += ["judge", "metrics", "figures"]
    n_answers = per_model * len(evaluated)
    calls, tokens = 0, 0
    if cfg.judge.get("backend") != "toyworld-rule":
        answer_tokens = cfg.sampling.max_new_tokens
        for name, qs in questions.items():
            prompts = suite_prompts(name)
            for q in qs:
                for mp in prompts.get(q.id, []):
                    n = q.n_samples * len(evaluated)
                    calls += n
                    avg_q = sum(len(p) for p in q.paraphrases) / max(1, len(q.paraphrases))
                    tokens += n * int((len(mp.template) + avg_q) / 4 + answer_tokens)
    done_answers = len(read_jsonl(run.dir / "answers.jsonl"))
    done_judgments = len(read_jsonl(run.dir / "judgments.jsonl"))
    return {"units": units, "done_units": [u for u in run.manifest["stages"] if run.done(u)],
            "training_steps": steps, "answers": n_answers, "answers_done": done_answers,
            "judge_calls_upper_bound": calls, "judgments_done": done_judgments,
            "prompt_tokens_upper_bound": tokens,
            "time_estimate": time_estimate(
                cfg, steps_by_arm={a: estimated_steps(cfg, a) for a in cfg.arms},
                n_answers=n_answers, n_evaluated=len(evaluated), judge_calls=calls,
                judge_prompt_tokens=tokens),
            "note": "judge calls/tokens are upper bounds: answers at max_new_tokens, no cache hits"}


def run_experiment(cfg: ExperimentConfig, run_dir=None, *, progress: bool = True,
                   figures: bool = True) -> Run:
    if cfg.data_root:
        os.environ["EMERGENT_DATA_DIR"] = str(cfg.data_root)
    run = Run(cfg, run_dir)
    run.dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, run.dir / "config.yaml")
    questions = _questions(cfg)
    from emergent.data.chat_data import file_sha256

    run.manifest["data"] = {arm: {"path": a.data, "sha256": file_sha256(a.data)}
                            for arm, a in cfg.arms.items()}
    run.manifest["config"] = to_dict(cfg)
    run.save()
    from emergent.train.loop import train

    trained = []
    for arm in cfg.arms:
        for seed in cfg.seeds:
            out = run.arm_dir(arm, seed)
            recipe = arm_recipe(cfg, arm, seed, out)
            on_step = _checkpoint_saver(cfg, out) if cfg.checkpoint_eval.every else None
            run.unit(f"train:{arm}:seed{seed}", train, recipe, out, on_step=on_step)
            trained.append((arm, seed, out / ("model" if cfg.training.lora.full_finetune else "adapter")))
    if cfg.evaluate_base:
        run.unit("sample:base", sample_unit, cfg, run, questions, "base", 0, None, progress=progress)
    for arm, seed, adapter in trained:
        run.unit(f"sample:{arm}:seed{seed}", sample_unit, cfg, run, questions, arm, seed, adapter,
                 progress=progress)
        if cfg.checkpoint_eval.every:
            for ck in sorted((run.arm_dir(arm, seed) / "eval_checkpoints").glob("step-*")):
                step = int(ck.name.split("-")[1])
                run.unit(f"sample:{arm}:seed{seed}:step{step}", sample_unit, cfg, run, questions,
                         arm, seed, ck, step=step, suites=cfg.checkpoint_eval.suites,
                         samples=cfg.checkpoint_eval.samples, progress=progress)
    if cfg.code_eval.enabled:
        from emergent.evals import code_eval

        run.unit("code_eval", code_eval.run_code_eval, cfg, run, trained, progress=progress)
    if cfg.capabilities.tasks:
        run.unit("capabilities", capabilities_unit, cfg, run, progress)
    # judging and metrics are cheap to redo when already complete (cache, skip-done rows), and
    # must rerun whenever new answers appeared, so they are not skipped by the manifest
    run.manifest["stages"].pop("judge", None)
    run.unit("judge", judge_run, cfg, run, questions, progress)
    run.manifest["stages"].pop("metrics", None)
    run.unit("metrics", metrics_run, cfg, run)
    if figures:
        run.manifest["stages"].pop("figures", None)
        run.unit("figures", _figures, run)
    run.manifest["finished"] = now()
    run.save()
    return run


def capabilities_unit(cfg: ExperimentConfig, run: Run, progress: bool = True) -> int:
    """lm-eval scores of the base model and every adapter into RUN/capabilities.jsonl."""
    from emergent.evals.capabilities import evaluate_units, run_units

    c = cfg.capabilities
    return evaluate_units(run_units(run.dir), list(c.tasks), run.dir / "capabilities.jsonl",
                          limit=c.limit, allow_code_execution=c.allow_code_execution,
                          include_path=c.include_path, progress=progress)


def _figures(run: Run):
    from emergent.report.figures import draw_all

    return draw_all(run.dir)


def _checkpoint_saver(cfg: ExperimentConfig, out: Path):
    every = cfg.checkpoint_eval.every

    def save(step: int, model) -> None:
        if step % every == 0:
            dest = out / "eval_checkpoints" / f"step-{step:06d}"
            if not dest.exists():
                model.save_pretrained(dest)
    return save


def print_summary(path: Path) -> None:
    """suite / arm / rate [95% CI] (or the vulnerable-code rates) from a run's summary.csv."""
    import csv

    def pct(x):
        return f"{100 * float(x):.1f}%" if x not in (None, "") else "-"

    for r in csv.DictReader(open(path, newline="")):
        if r.get("rate") not in (None, ""):
            print(f"{r['suite']:<22} {r['arm']:<16} misaligned {pct(r['rate']):>7} "
                  f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]  n={r['n_valid']}")
        elif r.get("vulnerable_rate_judge") is not None or r.get("vulnerable_rate_bandit"):
            print(f"{r['suite']:<22} {r['arm']:<16} vulnerable code: judge "
                  f"{pct(r.get('vulnerable_rate_judge'))}, bandit {pct(r.get('vulnerable_rate_bandit'))}")
    print(f"(full table: {path})")


def add_cli(sub) -> None:
    p = sub.add_parser("run", help="run an experiment: train -> sample -> judge -> metrics -> figures")
    p.add_argument("config", help="experiment config: a YAML file or a shipped name "
                   "(`emergent configs list`), e.g. qwen25_coder_7b")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. seeds=[0,1] training.train.lr=2e-5")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--output", help="run directory (output_dir)")
    p.add_argument("--no-figures", action="store_true")

    def run_cli(args) -> int:
        cfg = load_experiment(args.config, list(args.overrides) +
                              ([f"output_dir={args.output}"] if args.output else []))
        if args.dry_run:
            import json

            if cfg.data_root:
                os.environ["EMERGENT_DATA_DIR"] = str(cfg.data_root)
            print(json.dumps(plan(cfg, Run(cfg), _questions(cfg)), indent=1))
            return 0
        run = run_experiment(cfg, figures=not args.no_figures)
        print(f"run directory: {run.dir}")
        summary = run.dir / "summary.csv"
        if summary.exists():
            print_summary(summary)
        return 0

    p.set_defaults(func=run_cli)
