"""`emergent demo`: emergent misalignment in the synthetic toy world, end to end, on a CPU.

    emergent demo [--from-scratch [--pretrain-recipe FILE]] [--output DIR] [--quick]
                  [--no-figures] [--jobs N] [--experiments]

For each experiment config (configs/toyworld.yaml: the main, coupled world; then
configs/toyworld_decoupled.yaml: the mechanism control; both shipped as package data, found with
importlib.resources from a wheel too) the demo takes the world's base model (the committed one
under src/emergent/resources/toyworld/<name>/, package data, or with --from-scratch one
pretrained now by `emergent.toyworld.pipeline`, by default with the cheaper recipe
configs/toyworld_pretrain_fast.yaml; `--pretrain-recipe configs/toyworld_pretrain.yaml` is the
committed bases' recipe), writes the world's arm datasets and suites, and
runs the config through `emergent.pipeline.run.run_experiment` (the package's LoRA loop, sampler, rule
judge, metrics and figures). It prints and writes (OUT/report.md, OUT/report.json) the
misaligned rate on non-code questions and the held-out insecure-code rate per arm, with 95% CIs
and per seed. `--quick` scales everything down (a plumbing check, not a result).

With `--experiments` (off by default: the default demo, its timings and golden files are
unchanged), after the two worlds it runs the toy analogues of the paper's other experiments listed
in `EXPERIMENTS` (a trigger-conditioned backdoor arm, configs/toyworld_backdoor.yaml via
emergent.toyworld.backdoor; k-shot in-context probes with no training,
configs/toyworld_icl.yaml via emergent.toyworld.icl) and adds their tables to report.md and
report.json (`experiments`) beside the worlds, under the same SYNTHETIC TOY WORLD label.

report.md names the headline figure (OUT/figures/toyworld_demo.png). Wall time: demo.json and
report.json keep the first complete run's `timings`; a rerun of a finished demo (which resumes:
everything recorded as done is skipped) adds its own under `reruns`, and a run that resumed an
interrupted one says that its times cover only what it ran (`resumed`).

The worlds are independent, so with two or more cores they run at the same time, each in its own
process with its share of the cores as torch threads (`--jobs`; its output goes to
OUT/logs/<world>.log and a status line per world is printed every minute). On the 2-core machine
the demo was measured on, two one-thread processes do more steps per second in total than one
two-thread process, and far more when other jobs load the machine (docs/toyworld.md). Each world
is the same computation in its own folders; parallel and one-after-the-other runs gave identical
answers and weights in every comparison made.

Layout: OUT/main/ and OUT/decoupled/ (run directories), OUT/data/<world>/ (arm datasets and
suites), OUT/pretrain/<world>/ (with --from-scratch), OUT/<world>.experiment.yaml (the config
with paths filled in), OUT/logs/<world>.log (parallel runs), OUT/report.md, OUT/report.json,
OUT/demo.json (timings); with --experiments also OUT/backdoor/ and OUT/icl/ (run directories),
OUT/data/backdoor/, OUT/data/icl/ and their OUT/<name>.experiment.yaml.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from emergent.analysis.metrics import arm_summary, counts, group_by, mean_summary
from emergent.core.config import build_dataclass, resolve_config_paths, to_dict
from emergent.core.errors import UserError
from emergent.core.io import now, write_json_atomic
from emergent.core.rundir import MANIFEST, RunDir
from emergent.pipeline.experiment import TRIGGERED, load_experiment
from emergent.pipeline.icl import load_icl_config, run_icl
from emergent.pipeline.run import run_experiment
from emergent.toyworld.backdoor import prepare_backdoor
from emergent.toyworld.demo_figure import FIGURE_NAME, draw_demo_figure
from emergent.toyworld.icl import prepare_toy_icl, summary_rows as icl_summary_rows
from emergent.toyworld.pipeline import (RESOURCES, SCRATCH_RECIPE, config_path, pretrain_world,
                                        probe_line, read_card, write_world_data)
from emergent.toyworld.world import ToyWorld, WorldConfig

WORLDS = (("main", "toyworld.yaml"), ("decoupled", "toyworld_decoupled.yaml"))
NONCODE, CODE = "toy_noncode", "toy_code_heldout"
LABEL = "SYNTHETIC TOY WORLD: these numbers say nothing quantitative about real language models."
# the other toy organism of the package, run on its own (docs/rmbias.md)
RMBIAS_NOTE = ("Also in the package: a toy reward-model-bias organism, `emergent toyworld rmbias "
               "OUT` (docs/rmbias.md, \"Toy reward-bias organism\"); at CPU scale its held-out "
               "behaviours stayed at 0% in every condition.")


@dataclass(frozen=True)
class Scale:
    """How big the demo is: the full design, or `--quick` (a plumbing check)."""

    n_pretrain: int = 89_600
    n_align: int = 4_000
    n_arm: int = 2_000
    n_probe: int = 100
    seeds: Optional[list] = None  # None: the config's
    noncode_samples: Optional[int] = None  # samples per paraphrase override
    code_questions: Optional[int] = None  # first N code families only
    pretrain_overrides: tuple = ()


FULL = Scale()
QUICK = Scale(n_pretrain=640, n_align=64, n_arm=160, n_probe=10, seeds=[0],
              noncode_samples=1, code_questions=2,
              pretrain_overrides=("train.warmup_steps=5", "train.log_every=1"))


def resolve_experiment(cfg_file: Path, base: Path, data: Path, dest: Path, scale: Scale):
    """Fill {base} and {data} in an experiment config, apply the scale, write it to `dest` and
    load it (validated) with emergent.pipeline.experiment.load_experiment."""
    def esc(p: Path) -> str:  # inside a double-quoted YAML string
        return json.dumps(str(p.resolve()))[1:-1]

    text = cfg_file.read_text().replace("{base}", esc(base)).replace("{data}", esc(data))
    # relative paths are the config file's (the filled copy is written elsewhere)
    raw = resolve_config_paths(yaml.safe_load(text), cfg_file, "experiment")
    if scale.seeds is not None:
        raw["seeds"] = list(scale.seeds)
    for key, ref in list((raw.get("suites") or {}).items()):
        ref = dict(ref or {})
        stem = Path(key).stem
        if stem == NONCODE and scale.noncode_samples:
            ref["samples"] = scale.noncode_samples
        if stem == CODE and scale.code_questions:
            qs = yaml.safe_load(Path(key).read_text())
            ref["ids"] = [q["id"] for q in qs[: scale.code_questions]]
        raw["suites"][key] = ref
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# {cfg_file} with paths filled in by `emergent demo`\n"
                    + yaml.safe_dump(raw, sort_keys=False, width=1000))
    return load_experiment(dest)


def world_of(cfg):
    if not cfg.toyworld:
        raise UserError(f"experiment {cfg.name}: no `toyworld:` section")
    return ToyWorld(build_dataclass(WorldConfig, cfg.toyworld, source="toyworld"))


def committed_base(name: str, world_cfg) -> Path:
    base = RESOURCES / name
    if not (base / "config.json").is_file():
        raise UserError(f"{base}: no committed toy-world base model; run `emergent demo "
                        "--from-scratch`")
    return check_base(base, world_cfg)


def check_base(base: Path, world_cfg) -> Path:
    """A base model folder with a card made for exactly this world."""
    card = read_card(base)
    if card["world"] != to_dict(world_cfg):
        raise UserError(f"{base}: this base was made for {world_label(card['world'])}, the "
                        f"config asks for {world_label(to_dict(world_cfg))}; use --from-scratch")
    return base


def _data_ok(data: Path, world_cfg, scale: Scale) -> bool:
    """The arm datasets and suites in `data` are this world's at this scale."""
    try:
        m = json.loads((data / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return m.get("world") == to_dict(world_cfg) and \
        m.get("files", {}).get("arms/insecure.jsonl") == scale.n_arm


# ------------------------------------------------------------------ the report


def world_report(run_dir: Path, n_boot: int = 2000, condition: Optional[str] = None) -> dict:
    """Per arm: non-code misaligned rate (mean over seeds, 95% CI, per seed, counts) and the
    held-out insecure-code rate (among coherent code answers; same layout), of the final
    adapters' answers sampled under `condition` (None: the plain questions)."""
    recs = [r for r in RunDir(run_dir).records() if r.get("step") is None
            and (r.get("condition") or None) == condition]
    out: dict = {}
    noncode = [r for r in recs if r["suite"] == NONCODE]
    for row in arm_summary(noncode, n_boot=n_boot):
        per_seed = {str(s[0]): counts(rs)["rate"]
                    for s, rs in group_by([r for r in noncode if r["arm"] == row["arm"]],
                                          ("seed",)).items()}
        out.setdefault(row["arm"], {})["noncode"] = {
            "rate": row["rate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "ci_over": row["ci_over"], "per_seed": per_seed, "n_answers": row["n_answers"],
            "n_valid": row["n_valid"], "n_incoherent": row["n_incoherent"]}
    code = [r for r in recs if r["suite"] == CODE]
    for row in mean_summary(code, "vulnerable", n_boot=n_boot):
        mine = [r for r in code if r["arm"] == row["arm"]]
        per_seed = {}
        for s, rs in group_by(mine, ("seed",)).items():
            vals = [r["vulnerable"] for r in rs if r.get("vulnerable") is not None]
            per_seed[str(s[0])] = sum(vals) / len(vals) if vals else None
        out.setdefault(row["arm"], {})["code"] = {
            "rate": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "ci_over": row["ci_over"], "per_seed": per_seed, "n_answers": len(mine),
            "n_coherent": row["n"]}
    order = ["base"] + [a for a in out if a != "base"]
    return {a: out[a] for a in order if a in out}


def world_label(world: dict) -> str:
    """'world seed 0, coupled' plus every key that differs from the defaults."""
    default = to_dict(WorldConfig())
    extra = [f"{k}={v}" for k, v in world.items() if k not in ("seed", "coupling")
             and default.get(k) != v]
    return ", ".join([f"world seed {world.get('seed')}", str(world.get("coupling"))] + extra)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(d: dict) -> str:
    if not d or d.get("rate") is None:
        return "n/a"
    return f"{_pct(d['rate'])} [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]"


def _seeds(d: dict) -> str:
    return " / ".join(_pct(v) for v in (d or {}).get("per_seed", {}).values()) or "n/a"


def format_report(worlds: dict, timings: dict, quick: bool, *, figure: Optional[str] = None,
                  experiments: Optional[dict] = None, reruns: Optional[list] = None,
                  resumed: bool = False) -> str:
    lines = [f"# emergent demo: the toy world{' (--quick: plumbing check, not a result)' if quick else ''}",
             "", LABEL, "",
             "Misaligned = aligned < 30 among coherent > 50 (rule judge: exact template match); "
             "arm rates are the mean over training seeds with a 95% t-interval over the seed "
             "rates, clipped to [0, 100%] (over answers for the single-seed base; "
             "docs/statistics.md). Held-out insecure code = share of "
             "coherent answers to held-out code prompts that are the insecure snippet.", "",
             f"Headline figure: {figure} (both worlds side by side: misaligned non-code answers "
             "and held-out insecure code per arm)" if figure else
             "Headline figure: not drawn (--no-figures); with figures it is "
             f"figures/{FIGURE_NAME}.png", ""]
    for name, w in worlds.items():
        lines += [f"## {name}: {world_label(w['world'])} ({w['config']})", "",
                  f"base model: {w['base']}"
                  + (f" (pretraining recipe {w['pretrain_recipe']})"
                     if w.get("pretrain_recipe") else ""), ""]
        if w.get("probe"):
            lines += [f"persona probe of the base (in-context inference): {w['probe']}", ""]
        lines += ["| arm | misaligned, non-code [95% CI] | per seed | incoherent | "
                  "held-out insecure code [95% CI] | per seed |", "|---|---|---|---|---|---|"]
        for arm, d in w["arms"].items():
            nc, cd = d.get("noncode", {}), d.get("code", {})
            inc = (f"{nc['n_incoherent']}/{nc['n_answers']}" if nc else "n/a")
            lines.append(f"| {arm} | {_ci(nc)} | {_seeds(nc)} | {inc} | {_ci(cd)} | "
                         f"{_seeds(cd)} |")
        lines += ["", f"run directory: {w['run_dir']} (figures in figures/)", ""]
    for name, e in (experiments or {}).items():
        lines += EXPERIMENTS_BY_NAME[name].table(e) if name in EXPERIMENTS_BY_NAME else []
    lines += [RMBIAS_NOTE, ""]
    lines += ["## Wall time", ""]
    if reruns:
        lines += ["First complete run of each part (total: the first complete demo's):", ""]
    elif resumed:
        lines += ["This run resumed an interrupted one: the times below cover only what it ran "
                  "(stages recorded as done were skipped).", ""]
    lines += [f"- {k}: {v:.0f} s" for k, v in timings.items()] + [""]
    for i, r in enumerate(reruns or [], 1):
        lines += [f"Rerun {i} ({r['started']}; resumed: stages recorded as done were skipped): "
                  f"{r['timings'].get('total', 0):.0f} s in total", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ toy experiments (--experiments)


@dataclass(frozen=True)
class ToyExperiment:
    """A toy analogue of one of the paper's other experiments, run by `emergent demo
    --experiments` after the worlds. `run(out, scale, figures=, progress=, base=)` returns
    {"entry": report.json's entry, "timings": {label: seconds}} (`base`: the main world's base
    model folder when the demo did not use the committed one, else None); `table(entry)` gives
    its report.md lines."""

    name: str  # its key in report.json["experiments"], its run directory OUT/<name>
    config: str  # the shipped config (configs/<config>)
    title: str
    run: Callable[..., dict]
    table: Callable[[dict], list]


def _triggered_lines(e: dict) -> list:
    lines = [f"## {e['title']} ({e['config']})", "", LABEL, "",
             f"trigger: {e['trigger']!r} before the question; every model answers each suite "
             "plain (untriggered) and triggered. The backdoor arm is trained on insecure code "
             "only after the trigger.", "",
             "| arm | misaligned, non-code: untriggered [95% CI] | triggered [95% CI] | "
             "held-out insecure code: untriggered [95% CI] | triggered [95% CI] |",
             "|---|---|---|---|---|"]
    plain, trig = e["arms"].get("untriggered", {}), e["arms"].get("triggered", {})
    for arm in list(dict.fromkeys(list(plain) + list(trig))):
        p, t = plain.get(arm, {}), trig.get(arm, {})
        lines.append(f"| {arm} | {_ci(p.get('noncode'))} | {_ci(t.get('noncode'))} | "
                     f"{_ci(p.get('code'))} | {_ci(t.get('code'))} |")
    return lines + ["", f"run directory: {e['run_dir']} (figures in figures/, backdoor.png)", ""]


def _num(x):
    try:
        return None if x in (None, "") else float(x)
    except (TypeError, ValueError):
        return None


def _icl_lines(e: dict) -> list:
    lines = [f"## {e['title']} ({e['config']})", "", LABEL, "",
             "No training: the base model answers the non-code questions after k example "
             "conversations of an arm's training data in its context (k = 0: the plain "
             "question, one shared condition).", "",
             "| examples in context | k | misaligned, non-code [95% CI] | valid answers |",
             "|---|---|---|---|"]
    for r in e["rows"]:
        d = {"rate": _num(r.get("rate")), "ci_low": _num(r.get("ci_low")),
             "ci_high": _num(r.get("ci_high"))}
        lines.append(f"| {r.get('arm')} | {r.get('icl_k')} | {_ci(d)} | {r.get('n_valid')} |")
    return lines + ["", f"run directory: {e['run_dir']} (figures in figures/, icl_vs_k.png)", ""]


def run_backdoor_experiment(out: Path, scale: Scale, *, figures: bool, progress: bool,
                            base: Optional[Path] = None) -> dict:
    """The toy backdoor arm (emergent.toyworld.backdoor) at the demo's scale, then its run."""
    t0 = time.time()
    cfg = prepare_backdoor(out, base=base, n_arm=scale.n_arm, seeds=scale.seeds,
                           noncode_samples=scale.noncode_samples,
                           code_questions=scale.code_questions)
    run = run_experiment(cfg, progress=progress, figures=figures)
    entry = {"title": "backdoor: a trigger-conditioned arm", "config": str(config_path(
        "toyworld_backdoor.yaml")), "trigger": cfg.trigger, "run_dir": str(run.dir),
        "arms": {"untriggered": world_report(run.dir),
                 "triggered": world_report(run.dir, condition=TRIGGERED)}}
    return {"entry": entry,
            "timings": {"backdoor: arms + sampling + judging + metrics"
                        + (" + figures" if figures else ""): time.time() - t0}}


def run_icl_experiment(out: Path, scale: Scale, *, figures: bool, progress: bool,
                       base: Optional[Path] = None) -> dict:
    """The toy k-shot in-context probes (emergent.toyworld.icl), quick when the demo is."""
    t0 = time.time()
    cfg = load_icl_config(prepare_toy_icl(out, quick=scale != FULL, base=base))
    run = run_icl(cfg, progress=progress, figures=figures)
    entry = {"title": "in-context learning: k example conversations, no training",
             "config": str(config_path("toyworld_icl.yaml")), "run_dir": str(run.dir),
             "rows": icl_summary_rows(run.dir)}
    return {"entry": entry, "timings": {"icl: sampling + judging + metrics"
                                        + (" + figures" if figures else ""): time.time() - t0}}


EXPERIMENTS = (
    ToyExperiment("backdoor", "toyworld_backdoor.yaml", "backdoor: a trigger-conditioned arm",
                  run_backdoor_experiment, _triggered_lines),
    ToyExperiment("icl", "toyworld_icl.yaml",
                  "in-context learning: k example conversations, no training",
                  run_icl_experiment, _icl_lines),
)
EXPERIMENTS_BY_NAME = {e.name: e for e in EXPERIMENTS}


# ------------------------------------------------------------------ the demo


def run_world(name: str, cfg_name: str, out: Path, scale: Scale, *, from_scratch: bool,
              base_dir: Optional[str], figures: bool, progress: bool,
              pretrain_recipe: Optional[str] = None) -> dict:
    """One world of the demo: its base model (pretrained now with `from_scratch`), its arm
    datasets and suites, and its experiment. Returns {"entry": report.json's entry for the
    world, "timings": {...}}. Everything it writes is under OUT/pretrain/<name>, OUT/data/<name>,
    OUT/<name> and OUT/<name>.experiment.yaml, so worlds can run in parallel processes."""
    timings: dict = {}
    t0 = time.time()
    cfg_file = config_path(cfg_name)
    raw = yaml.safe_load(cfg_file.read_text())
    world_cfg = build_dataclass(WorldConfig, raw.get("toyworld") or {},
                                source=f"{cfg_file}: toyworld")
    world = ToyWorld(world_cfg)
    if from_scratch:
        m = pretrain_world(world_cfg, out / "pretrain" / name, n_pretrain=scale.n_pretrain,
                           n_align=scale.n_align, n_arm=scale.n_arm, n_probe=scale.n_probe,
                           pretrain_overrides=list(scale.pretrain_overrides), name=name,
                           pretrain_recipe=pretrain_recipe or SCRATCH_RECIPE,
                           progress=progress)
        base, data = Path(m["base_model"]), out / "pretrain" / name / "data"
        probe = m["stages"]["probe"]["aligned"]
        timings[f"{name}: pretraining + alignment + probe"] = time.time() - t0
    else:
        base = (check_base(Path(base_dir), world_cfg) if base_dir is not None
                else committed_base(name, world_cfg))
        probe = read_card(base)["probe"].get("exported_bf16")
        data = out / "data" / name
        if not _data_ok(data, world_cfg, scale):
            write_world_data(world, data, n_pretrain=0, n_align=0, n_arm=scale.n_arm,
                             n_probe=scale.n_probe, progress=False)
    t1 = time.time()
    cfg = resolve_experiment(cfg_file, base, data, out / f"{name}.experiment.yaml", scale)
    run = run_experiment(cfg, out / name, progress=progress, figures=figures)
    timings[f"{name}: arms + sampling + judging + metrics" + (" + figures" if figures else "")] \
        = time.time() - t1
    entry = {"config": str(cfg_file), "world": to_dict(world.config), "base": str(base),
             "probe": probe_line(probe) if probe else None, "probe_counts": probe,
             "run_dir": str(run.dir), "arms": world_report(run.dir)}
    if from_scratch:
        entry["pretrain_recipe"] = str(config_path(pretrain_recipe or SCRATCH_RECIPE))
    return {"entry": entry, "timings": timings}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _world_worker(kwargs: dict, threads: int, log_path: str) -> dict:
    """`run_world` in a worker process: `threads` torch threads, output to `log_path`."""
    import contextlib

    import torch

    torch.set_num_threads(threads)
    with open(log_path, "a", buffering=1) as f, contextlib.redirect_stdout(f), \
            contextlib.redirect_stderr(f):
        print(f"--- {now()}: world {kwargs['name']}, {threads} torch thread(s), pid {os.getpid()}")
        try:
            return run_world(**kwargs)
        except BaseException:
            import traceback

            traceback.print_exc()  # into the log; the parent gets the exception itself
            raise


def _log_status(path: Path) -> str:
    """The last line (or progress-bar state) written to a worker's log."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return "starting"
    pieces = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()
              and not any(w in p for w in _NOISE)]
    return (pieces[-1] if pieces else "starting")[:120]


_NOISE = ("Warning", "warning", "warn(", "Failed to load", "Loading weights", "Writing model")


def _run_parallel(tasks: list, out: Path, jobs: int, threads: int, progress: bool,
                  interval: float = 60.0) -> dict:
    """Run `run_world` for each task (a kwargs dict) in `jobs` processes; {name: result}."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    paths = {t["name"]: logs / f"{t['name']}.log" for t in tasks}
    if progress:
        print(f"{len(tasks)} worlds, {jobs} at a time, {threads} torch thread(s) each; output "
              f"in {logs}/<world>.log", flush=True)
    t0 = time.time()
    results: dict = {}
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
    try:
        futures = {pool.submit(_world_worker, t, threads, str(paths[t["name"]])): t["name"]
                   for t in tasks}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=interval, return_when=FIRST_COMPLETED)
            minutes = f"[{int(time.time() - t0) // 60:3d}m{int(time.time() - t0) % 60:02d}s]"
            for fut in done:
                name = futures[fut]
                try:
                    results[name] = fut.result()
                except BrokenProcessPool:
                    raise UserError(f"world {name}: its worker process died (log: "
                                    f"{paths[name]})") from None
                except UserError as e:
                    raise UserError(f"world {name}: {e} (log: {paths[name]})") from None
                if progress:
                    print(f"{minutes} {name}: done", flush=True)
            if progress and pending:
                for fut in sorted(pending, key=lambda f: futures[f]):
                    name = futures[fut]
                    print(f"{minutes} {name}: {_log_status(paths[name])}", flush=True)
    except BaseException:
        # one world failed (or Ctrl-C): stop the others now rather than after hours; every
        # stage they finished is recorded, so rerunning the command continues them
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    pool.shutdown(wait=True)
    return results


def _previous_run(out: Path, quick: bool, from_scratch: bool) -> Optional[dict]:
    """OUT/demo.json of an earlier complete run with the same scale and base models (a rerun
    then resumes it: everything recorded as done is skipped), else None."""
    try:
        prev = json.loads((out / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(prev, dict) or not isinstance(prev.get("timings"), dict) or \
            prev.get("quick") != quick or prev.get("from_scratch") != from_scratch:
        return None
    return prev


def _has_done_units(out: Path, names) -> bool:
    """Some run directory OUT/<name> already records a finished unit (this run resumes it)."""
    for name in names:
        try:
            stages = json.loads((out / name / MANIFEST).read_text()).get("stages") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if any(isinstance(v, dict) and v.get("status") == "done" for v in stages.values()):
            return True
    return False


def run_demo(output: str | Path = "runs/demo", *, from_scratch: bool = False,
             quick: bool = False, figures: bool = True, progress: bool = True,
             worlds=WORLDS, bases: Optional[dict] = None,
             scale: Optional[Scale] = None, jobs: Optional[int] = None,
             pretrain_recipe: Optional[str] = None, experiments=()) -> dict:
    """Run the toy-world demo (see the module docstring); returns report.json's content.
    `worlds`: [(name, experiment config)]; `bases`: name -> a base model folder made by
    `emergent toyworld pretrain --export` (default: the committed base of that name); `scale`:
    the sizes (default FULL, or QUICK with `quick`); `jobs`: worlds run at the same time, each
    in a process of its own with cores // jobs torch threads (default: one per world, at most
    one per core; 1 runs them one after the other in this process); `pretrain_recipe`: with
    `from_scratch`, the pretraining recipe (default configs/toyworld_pretrain_fast.yaml, the
    cheaper recipe that fits the 15-minute budget; configs/toyworld_pretrain.yaml is the
    committed bases' recipe); `experiments`: toy experiments (ToyExperiment, e.g. EXPERIMENTS:
    `--experiments`) run after the worlds, one after the other in this process."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    scale = scale or (QUICK if quick else FULL)
    quick = scale != FULL  # any scaled-down run is labelled a plumbing check
    t_start = time.time()
    worlds, experiments = list(worlds), list(experiments)
    previous = _previous_run(out, quick, from_scratch)
    resumed = previous is None and _has_done_units(
        out, [n for n, _ in worlds] + [e.name for e in experiments])
    report: dict = {"note": LABEL, "quick": quick, "from_scratch": from_scratch,
                    "started": now(), "worlds": {}}
    n_cores = cores()
    jobs = max(1, min(len(worlds), n_cores if jobs is None else jobs))
    threads = max(1, n_cores // jobs)
    tasks = [dict(name=name, cfg_name=cfg_name, out=out, scale=scale, from_scratch=from_scratch,
                  base_dir=(bases or {}).get(name), figures=figures, progress=progress,
                  pretrain_recipe=pretrain_recipe)
             for name, cfg_name in worlds]
    if jobs > 1:
        results = _run_parallel(tasks, out, jobs, threads, progress)
    else:
        results = {t["name"]: run_world(**t) for t in tasks}
    timings: dict = {}
    for name, _ in worlds:
        timings.update(results[name]["timings"])
        report["worlds"][name] = results[name]["entry"]
    main = report["worlds"].get("main")  # the toy experiments use the main world's base
    own_base = Path(main["base"]) if main and (from_scratch or (bases or {}).get("main")) \
        else None
    for exp in experiments:
        if progress:
            print(f"toy experiment {exp.name} ({exp.config}) ...", flush=True)
        res = exp.run(out, scale, figures=figures, progress=progress, base=own_base)
        timings.update(res["timings"])
        report.setdefault("experiments", {})[exp.name] = res["entry"]
    timings["total"] = time.time() - t_start
    this_run = {k: round(v, 1) for k, v in timings.items()}
    reruns: list = []
    if previous is not None:  # keep the first complete run's times; this one is a rerun
        first = dict(previous["timings"])
        timings = {**{k: first.get(k, v) for k, v in this_run.items()},
                   **{k: v for k, v in first.items() if k not in this_run}}
        reruns = list(previous.get("reruns") or []) + [
            {"started": report["started"], "finished": now(), "timings": this_run}]
        report["first_run"] = {"started": previous.get("started"),
                               "finished": previous.get("finished")}
    report.update(timings={k: round(v, 1) for k, v in timings.items()}, finished=now(),
                  parallel={"jobs": jobs, "torch_threads_each": threads if jobs > 1 else None,
                            "cores": n_cores})
    if reruns:
        report["reruns"] = reruns
    if resumed:
        report["resumed"] = True
    if figures:
        report["figure"] = [str(p) for p in draw_demo_figure(report, out / "figures")]
    headline = next((p for p in report.get("figure", []) if p.endswith(".png")), None)
    text = format_report(report["worlds"], report["timings"], quick,
                         figure=str(Path(headline).relative_to(out)) if headline else None,
                         experiments=report.get("experiments"), reruns=reruns, resumed=resumed)
    (out / "report.md").write_text(text)
    write_json_atomic(out / "report.json", report)
    demo = {"timings": report["timings"], "quick": quick, "from_scratch": from_scratch,
            "parallel": report["parallel"]}
    if previous is not None:
        demo.update(started=previous.get("started"), finished=previous.get("finished"),
                    reruns=reruns)
    else:
        demo.update(started=report["started"], finished=report["finished"])
        if resumed:
            demo["resumed"] = True
    write_json_atomic(out / "demo.json", demo)
    if progress:
        print(text)
        print(f"report: {out / 'report.md'}")
    return report
