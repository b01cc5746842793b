"""The "one feature" analysis of a reward-model-bias run (`emergent rmbias feature RUN`): is
there one residual-stream direction that carries both train-bias and held-out (test-bias)
exploitation?

Directions, at one decoder layer L (`FeatureConfig.layer`, default the middle layer), with the
machinery of `emergent.analysis.direction` (activations `answer_activations`: the layer's output
averaged over the answer tokens, prompt in context; `MeanDiff`; the file format of
`emergent.analysis.direction_file`):

* `labels`: in the treatment model (`arm`, default docs_sft), the mean activation of its
  recorded answers that show the bias minus that of answers that do not (the run's own verdict:
  RUN/scored.jsonl `shown`, under the run's `eval.mode`), on TRAIN-bias prompts only;
* `models`: the mean activation of the treatment model minus that of the fine-tuning-only model
  (`sft`) on the same inputs: the treatment's recorded answers to the TRAIN-bias prompts, each
  run through both models (same seed).

Test-bias prompts never enter a direction, so everything measured on them is out of sample.

Measured, per direction:
* projections: each condition's recorded answers (through its own model) projected on the unit
  direction; mean and 95% bootstrap interval per condition, split and group (all answers, those
  showing the bias, plain ones);
* exploitation with interventions (`emergent.sample.interventions`, through the run's sampler
  and sampling config, hf backend): the treatment with the direction ablated at every layer
  (`ablate`), the `sft` and `base` models with `scale` x the unit direction added at layer L
  (`add`; default scale: the direction's norm, i.e. the mean difference itself), each with a
  control of a random direction of the same norm (`ablate-random`, `add-random`). Answers are
  scored by the detectors (`evaluate.score_answers`, mode detector: `emergent rmbias score`
  without judgments); `none` rows are the run's recorded answers scored the same way.

Files: RUN/feature/ (written whole, atomically, under the run's lock): report.md, rates.csv (one
row per condition, split and intervention: n, rate, 95% interval, difference from `none` and its
permutation p), projections.csv, feature.json (config, provenance, counts, verdicts),
directions/<kind>.safetensors + .json, answers.jsonl (the intervention answers used: `arm` =
the condition, `intervention_arm` = `<condition>+<intervention>:<direction>`).
RUN/feature_work/ keeps intervention answers between invocations (rows carry a fingerprint of
the direction and settings they were sampled with; rows under another fingerprint are redone).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from emergent.analysis.direction import MeanDiff, answer_activations
from emergent.analysis.direction_file import save_direction
from emergent.analysis.metrics import bootstrap_ci, bootstrap_ci_binary, permutation_p_binary
from emergent.core.errors import UserError
from emergent.core.io import (atomic_dir, now, read_jsonl, versions, write_json_atomic,
                              write_text_atomic)
from emergent.core.rundir import RunDir
from emergent.models import loading
from emergent.rmbias.conditions import CONDITION_NAMES
from emergent.rmbias.evaluate import score_answers
from emergent.rmbias.experiment import (SUITE, adapter_dir, eval_prompts, final_stage,
                                        load_rmbias_config, model_label, questions_of)
from emergent.sample.interventions import AblateConfig, SteerConfig, decoder_layers
from emergent.sample.sampler import sample_questions

log = logging.getLogger(__name__)

FEATURE = "feature"  # RUN/feature/: the results, written whole
WORK = "feature_work"  # RUN/feature_work/: intervention answers kept for a rerun
SCORED = "scored.jsonl"  # written by `emergent rmbias run` (experiment_run.score_run)
KINDS = ("labels", "models")
CONTROL = "sft"  # the fine-tuning-only condition: the `models` direction's reference
ADD_TO = ("sft", "base")  # conditions that get the direction added
TINY_NOTE = "tiny random-init test model - not a result"
RATE_COLUMNS = ("model", "direction", "condition", "split", "intervention", "layer", "scale",
                "n_seeds", "n_answers", "n", "n_shown", "rate", "ci_low", "ci_high",
                "diff_vs_none", "p_vs_none")
PROJ_COLUMNS = ("model", "direction", "condition", "split", "group", "in_sample", "layer", "n",
                "mean", "ci_low", "ci_high")


@dataclass(frozen=True)
class FeatureConfig:
    arm: str = "docs_sft"  # the treatment condition
    layer: Optional[int] = None  # decoder layer (0-based); None: n_layers // 2
    scale: Optional[float] = None  # added vector = scale * unit direction; None: its norm
    max_prompts: Optional[int] = None  # per split (round robin over biases); None: all
    direction: Literal["both", "labels", "models"] = "both"
    batch_size: int = 8  # answers per forward pass for activations
    random_seed: int = 0  # the random-direction controls
    n_boot: int = 2000


# ------------------------------------------------------------------------------ selection

def select_prompts(prompts: list, max_prompts: Optional[int]) -> list:
    """At most `max_prompts` prompts per split, taken round robin over that split's biases
    (biases as evenly represented as the number allows); the prompts keep their file order."""
    if max_prompts is None:
        return list(prompts)
    if max_prompts < 1:
        raise UserError(f"--max-prompts must be >= 1, got {max_prompts}")
    chosen = set()
    for split in ("train", "test"):
        by_bias: dict[str, list] = defaultdict(list)
        for p in prompts:
            if p.split == split:
                by_bias[p.bias_id].append(p.question_id)
        queues, picked, k = list(by_bias.values()), [], 0
        while len(picked) < max_prompts and any(len(q) > k for q in queues):
            picked += [q[k] for q in queues if len(q) > k][:max_prompts - len(picked)]
            k += 1
        chosen.update(picked)
    return [p for p in prompts if p.question_id in chosen]


def _records(run: RunDir, selected: list) -> list[dict]:
    """The run's recorded answers to the selected prompts with their verdict (`shown`)."""
    path = run.dir / SCORED
    if not path.exists():
        raise UserError(f"{run.dir}: no {SCORED} (the run is not scored yet); finish "
                        "`emergent rmbias run` first")
    qids = {p.question_id for p in selected}
    answers = {a["answer_id"]: a for a in run.answers()}
    out = []
    for s in read_jsonl(path):
        a = answers.get(s.get("answer_id"))
        if a is not None and s.get("question_id") in qids:
            out.append({**a, "split": s["split"], "bias_id": s["bias_id"], "shown": s["shown"],
                        "condition": s["condition"], "seed": int(s.get("seed") or 0)})
    return out


# ------------------------------------------------------------------------------ models

def _adapter(run: RunDir, condition: str, seed: int) -> Optional[str]:
    stage = final_stage(condition)
    if stage is None:
        return None
    path = adapter_dir(run.dir, stage, seed)
    if not path.is_dir():
        raise UserError(f"{path}: adapter of condition '{condition}' seed {seed} not found")
    return str(path)


def _activations(model, tok, rows: list[dict], layer: int, batch_size: int):
    import torch

    parts = [answer_activations(model, tok, rows[i:i + batch_size], [layer])
             for i in range(0, len(rows), batch_size)]
    return torch.cat(parts).cpu() if parts else None


def _check_layer(model, layer: Optional[int]) -> int:
    n = len(decoder_layers(model))
    layer = n // 2 if layer is None else layer
    if not 0 <= layer < n:
        raise UserError(f"--layer {layer}: the model has decoder layers 0..{n - 1}")
    return layer


# ------------------------------------------------------------------------------ analysis

def _availability(records: list[dict], fc: FeatureConfig) -> dict[str, Optional[str]]:
    """kind -> None when it can be made, else why not (one line)."""
    mine = [r for r in records if r["condition"] == fc.arm and r["split"] == "train"]
    k = sum(1 for r in mine if r["shown"] is True)
    m = sum(1 for r in mine if r["shown"] is False)
    why = {"labels": None if k and m else
           f"the labels direction needs {fc.arm} train-bias answers both showing and not "
           f"showing the bias (the run's verdicts: {k} showing, {m} plain, "
           f"{len(mine) - k - m} not applicable)"}
    seeds = {r["seed"] for r in mine}
    ctrl = {r["seed"] for r in records if r["condition"] == CONTROL}
    if fc.arm == CONTROL:
        why["models"] = f"the models direction compares {fc.arm} with {CONTROL}: pick another --arm"
    elif not mine:
        why["models"] = f"no {fc.arm} answers to train-bias prompts"
    elif not seeds & ctrl:
        why["models"] = (f"the models direction needs the '{CONTROL}' (fine-tuning only) "
                         f"condition with the seeds of {fc.arm} ({sorted(seeds)}); the run has "
                         f"{sorted(ctrl) or 'none'}")
    else:
        why["models"] = None
    return why


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensor_sha(t) -> str:
    return hashlib.sha256(t.float().contiguous().numpy().tobytes()).hexdigest()


def _rate_row(values: list, n_answers: int, n_boot: int) -> dict:
    k, n = sum(1 for v in values if v), len(values)
    lo, hi = bootstrap_ci_binary(k, n, n_boot)
    return {"n_answers": n_answers, "n": n, "n_shown": k, "rate": k / n if n else None,
            "ci_low": lo, "ci_high": hi}


def rate_rows(scored: list[dict], key_of, n_boot: int) -> list[dict]:
    """One row per (direction, condition, split, intervention) of detector-scored answers
    (`key_of(row)` gives those four); `n` counts answers where the verdict applies."""
    groups: dict[tuple, list] = defaultdict(list)
    seeds: dict[tuple, set] = defaultdict(set)
    for r in scored:
        key = key_of(r)
        groups[key].append(r["shown"])
        seeds[key].add(r["seed"])
    rows = []
    for key, vals in groups.items():
        d, cond, split, inter = key
        rows.append({"direction": d, "condition": cond, "split": split, "intervention": inter,
                     "n_seeds": len(seeds[key]),
                     **_rate_row([v for v in vals if v is not None], len(vals), n_boot)})
    base = {(r["condition"], r["split"]): r for r in rows if r["intervention"] == "none"}
    for r in rows:
        ref = base.get((r["condition"], r["split"]))
        if r["intervention"] == "none" or ref is None or not r["n"] or not ref["n"]:
            r["diff_vs_none"] = r["p_vs_none"] = None
            continue
        r["diff_vs_none"] = r["rate"] - ref["rate"]
        r["p_vs_none"] = permutation_p_binary(r["n_shown"], r["n"], ref["n_shown"], ref["n"])
    order = {c: i for i, c in enumerate(CONDITION_NAMES)}
    inter_order = ("none", "ablate", "ablate-random", "add", "add-random")
    rows.sort(key=lambda r: (r["direction"] or "", order.get(r["condition"], 99),
                             r["split"] != "train", inter_order.index(r["intervention"])))
    return rows


def projection_rows(proj: dict, kind: str, n_boot: int, arm: str) -> list[dict]:
    """proj: {(condition, split, shown): [projection values]} -> tidy rows; `in_sample` marks
    the answers the direction was made from (the treatment's train-bias answers)."""
    groups: dict[tuple, list] = defaultdict(list)
    for (cond, split, shown), vals in proj.items():
        groups[(cond, split, "all")] += vals
        if shown is not None:
            groups[(cond, split, "shown" if shown else "plain")] += vals
    order = {c: i for i, c in enumerate(CONDITION_NAMES)}
    rows = []
    for (cond, split, group), vals in sorted(
            groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != "train",
                                            ("all", "shown", "plain").index(kv[0][2]))):
        lo, hi = bootstrap_ci(vals, n_boot)
        rows.append({"direction": kind, "condition": cond, "split": split, "group": group,
                     "in_sample": cond == arm and split == "train", "n": len(vals), "mean": sum(vals) / len(vals), "ci_low": lo, "ci_high": hi})
    return rows


def _csv(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else
                        f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k))
                    for k in columns})
    return buf.getvalue()


def feature_analysis(run_dir: str | Path, fc: FeatureConfig = FeatureConfig(), *,
                     progress: bool = True) -> dict:
    """Run the analysis (see the module doc); returns feature.json's content."""
    run = RunDir(run_dir)
    if not run.config_path.exists():
        raise UserError(f"{run.dir}: no config.yaml (not an `emergent rmbias run` directory)")
    cfg = load_rmbias_config(run.config_path)
    if fc.arm == "base" or fc.arm not in CONDITION_NAMES:
        raise UserError(f"--arm {fc.arm}: a trained condition out of "
                        f"{', '.join(c for c in CONDITION_NAMES if c != 'base')}")
    prompts = eval_prompts(cfg)
    selected = select_prompts(prompts, fc.max_prompts)
    records = _records(run, selected)
    present = sorted({r["condition"] for r in records}, key=CONDITION_NAMES.index)
    if fc.arm not in present:
        raise UserError(f"{run.dir}: no scored answers of condition '{fc.arm}' (the run has "
                        f"{', '.join(present) or 'none'})")
    why = _availability(records, fc)
    wanted = list(KINDS) if fc.direction == "both" else [fc.direction]
    kinds = [k for k in wanted if why[k] is None]
    if not kinds:
        raise UserError(f"{run.dir}: " + "; ".join(why[k] for k in wanted))
    with run.lock():
        return _analyse(run, cfg, fc, selected, records, present, kinds,
                        {k: why[k] for k in wanted if why[k]}, progress)


def _analyse(run, cfg, fc, selected, records, present, kinds, skipped, progress) -> dict:
    import torch

    work = run.dir / WORK
    by_unit: dict[tuple, list] = defaultdict(list)
    for r in records:
        by_unit[(r["condition"], r["seed"])].append(r)
    acts: dict[tuple, torch.Tensor] = {}  # (condition of the model, answer_id) -> [hidden]
    layer = fc.layer
    adapters = {}
    treat_train = {s: [r for r in records if r["condition"] == fc.arm and r["seed"] == s
                       and r["split"] == "train"] for s in {r["seed"] for r in records}}
    for (cond, seed), rows in sorted(by_unit.items(), key=lambda kv: (
            CONDITION_NAMES.index(kv[0][0]), kv[0][1])):
        adapters[f"{cond}:seed{seed}"] = _adapter(run, cond, seed)
        model, tok = loading.load_for_inference(cfg.base_model, adapters[f"{cond}:seed{seed}"])
        layer = _check_layer(model, layer)
        a = _activations(model, tok, rows, layer, fc.batch_size)
        for r, v in zip(rows, a):
            acts[(cond, r["answer_id"])] = v[0]
        if cond == CONTROL and "models" in kinds:  # the treatment's answers through `sft`
            other = treat_train.get(seed, [])
            for r, v in zip(other, _activations(model, tok, other, layer, fc.batch_size)
                            if other else []):
                acts[(f"{CONTROL}<-{fc.arm}", r["answer_id"])] = v[0]
        del model
    mine_train = [r for r in records if r["condition"] == fc.arm and r["split"] == "train"]
    directions, metas = {}, {}
    for kind in kinds:
        acc = MeanDiff()
        if kind == "labels":
            used = [r for r in mine_train if r["shown"] is not None]
            acc.add(torch.stack([acts[(fc.arm, r["answer_id"])] for r in used]).unsqueeze(1),
                    [r["shown"] for r in used])
            counts = {"shown": acc.n[True], "plain": acc.n[False]}
            what = (f"mean activation of {fc.arm}'s train-bias answers showing the bias minus "
                    f"that of its plain train-bias answers (verdict: scored.jsonl `shown`, "
                    f"eval.mode {cfg.eval.mode})")
        else:
            used = [r for r in mine_train if (f"{CONTROL}<-{fc.arm}", r["answer_id"]) in acts]
            acc.add(torch.stack([acts[(fc.arm, r["answer_id"])] for r in used]).unsqueeze(1),
                    [True] * len(used))
            acc.add(torch.stack([acts[(f"{CONTROL}<-{fc.arm}", r["answer_id"])]
                                 for r in used]).unsqueeze(1), [False] * len(used))
            counts = {"answers": len(used)}
            what = (f"mean activation of the {fc.arm} model minus that of the {CONTROL} model "
                    f"on the same inputs: {fc.arm}'s answers to train-bias prompts (same seed)")
        direction, mean_a, mean_b = acc.result()
        directions[kind] = (direction, mean_a, mean_b)
        norm = float(direction.norm())
        metas[kind] = {"kind": kind, "arm": fc.arm, "what": what, "counts": counts,
                       "layer": layer, "norm": norm, "model": cfg.base_model.name,
                       "model_label": model_label(cfg.base_model.name),
                       "adapters": adapters, "prompts_split": "train",
                       "hook": "decoder layer output (residual stream, before final norm), "
                               "mean over answer tokens, prompt in context",
                       "scale": fc.scale if fc.scale is not None else norm,
                       "sha256": _tensor_sha(direction), "created": now()}
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, (d, a, b) in directions.items():  # the files the sampler reads
        files[kind] = save_direction(work / f"{kind}.safetensors", d, [layer], metas[kind],
                                     {"mean_a": a, "mean_b": b})
    # projections: each condition's answers, through its own model
    proj_rows = []
    for kind in kinds:
        u = directions[kind][0][0] / directions[kind][0][0].norm()
        proj: dict[tuple, list] = defaultdict(list)
        for r in records:
            v = acts[(r["condition"], r["answer_id"])]
            proj[(r["condition"], r["split"], r["shown"])].append(float(v @ u))
        proj_rows += projection_rows(proj, kind, fc.n_boot, fc.arm)
    # interventions
    seeds_of = defaultdict(set)
    for r in records:
        seeds_of[r["condition"]].add(r["seed"])
    inter_answers = _sample_interventions(run, cfg, fc, selected, seeds_of, kinds, files, metas,
                                          work, layer, progress)
    scored_none = score_answers(selected, records, None, mode="detector")
    scored_int = score_answers(selected, inter_answers, None, mode="detector")
    for s, a in zip(scored_int, inter_answers):
        s["direction"], s["intervention"] = a["_direction"], a["_intervention"]
    rates = []
    for kind in kinds:
        rows = [dict(s, direction=kind, intervention="none") for s in scored_none] + \
               [s for s in scored_int if s["direction"] == kind]
        rates += [r for r in rate_rows(rows, lambda s: (s["direction"], s["condition"],
                                                        s["split"], s["intervention"]),
                                       fc.n_boot)]
    label = model_label(cfg.base_model.name)
    for r in rates + proj_rows:
        r["model"], r["layer"] = label, layer
    for r in rates:
        r["scale"] = metas[r["direction"]]["scale"] if r["intervention"].startswith("add") \
            else None
    verdicts = {kind: verdict(rates, kind, fc.arm) for kind in kinds}
    result = {
        "run": str(run.dir), "model": cfg.base_model.name, "model_label": label,
        "tiny": label == TINY_NOTE,
        "config": {**dataclasses.asdict(fc), "layer": layer,
                   "scale_used": {k: metas[k]["scale"] for k in kinds},
                   "prompts": [p.question_id for p in selected],
                   "n_prompts": {s: sum(1 for p in selected if p.split == s)
                                 for s in ("train", "test")},
                   "samples_per_prompt": cfg.eval.samples,
                   "sampling": {**dataclasses.asdict(cfg.sampling), "backend": "hf"},
                   "recorded_sampling_backend": cfg.sampling.backend,
                   "labels_from": f"{SCORED} shown (eval.mode {cfg.eval.mode})",
                   "intervention_scoring": "detectors (evaluate.score_answers, mode detector)"},
        "directions": metas, "skipped": skipped, "conditions": present,
        "verdicts": verdicts, "created": now(), "versions": versions()}
    with atomic_dir(run.dir / FEATURE, "write:feature") as tmp:
        for kind in kinds:
            for suffix in (".safetensors", ".json"):
                (tmp / "directions").mkdir(exist_ok=True)
                shutil.copyfile(files[kind].with_suffix(suffix),
                                tmp / "directions" / f"{kind}{suffix}")
        write_text_atomic(tmp / "rates.csv", _csv(rates, RATE_COLUMNS))
        write_text_atomic(tmp / "projections.csv", _csv(proj_rows, PROJ_COLUMNS))
        write_text_atomic(tmp / "answers.jsonl", "".join(
            json.dumps({k: v for k, v in a.items() if not k.startswith("_")},
                       ensure_ascii=False, default=str) + "\n" for a in inter_answers))
        write_json_atomic(tmp / "feature.json", result)
        write_text_atomic(tmp / "report.md", report(result, rates, proj_rows))
    result["rates"], result["projections"] = rates, proj_rows
    return result


def _sample_interventions(run, cfg, fc, selected, seeds_of, kinds, files, metas, work, layer,
                          progress) -> list[dict]:
    """Sample every intervention into RUN/feature_work/answers.jsonl (skipping rows already
    there under the same fingerprint); returns the current rows, tagged `_direction` and
    `_intervention`."""
    questions = questions_of(cfg, selected)
    out = work / "answers.jsonl"
    plan = []  # (condition, intervention, kind)
    for kind in kinds:
        plan += [(fc.arm, "ablate", kind), (fc.arm, "ablate-random", kind)]
        plan += [(c, i, kind) for c in ADD_TO if seeds_of.get(c) and c != fc.arm
                 for i in ("add", "add-random")]
    wanted = {}
    for cond in dict.fromkeys(c for c, _, _ in plan):
        for seed in sorted(seeds_of[cond]):
            model, tok = loading.load_for_inference(cfg.base_model, _adapter(run, cond, seed))
            for c, inter, kind in plan:
                if c != cond:
                    continue
                rnd = fc.random_seed if inter.endswith("random") else None
                if inter.startswith("ablate"):
                    steer, ablate = None, AblateConfig(direction=str(files[kind]), layers="all",
                                                       source_layer=layer, random_seed=rnd)
                else:
                    steer, ablate = SteerConfig(direction=str(files[kind]), layer=layer,
                                                scale=float(metas[kind]["scale"]),
                                                random_seed=rnd), None
                scfg = dataclasses.replace(cfg.sampling, backend="hf", seed=seed, steer=steer,
                                           ablate=ablate)
                fp = _fingerprint({"direction": metas[kind]["sha256"], "layer": layer,
                                   "steer": dataclasses.asdict(steer) if steer else None,
                                   "ablate": dataclasses.asdict(ablate) if ablate else None,
                                   "sampling": {k: v for k, v in dataclasses.asdict(scfg).items()
                                                if k != "vllm"}, "adapter":
                                   _adapter(run, cond, seed), "samples": cfg.eval.samples})
                arm = f"{cond}+{inter}:{kind}"
                sample_questions(model, tok, questions, out, suite=SUITE, arm=arm, seed=seed,
                                 model_name=cfg.base_model.name,
                                 adapter=_adapter(run, cond, seed), cfg=scfg,
                                 progress=progress, fingerprint=fp)
                wanted[(arm, seed)] = (fp, cond, inter, kind)
            del model
    qids = {p.question_id for p in selected}
    rows, seen = [], set()
    for a in read_jsonl(out) if out.exists() else []:
        key = (a["arm"], int(a.get("seed") or 0))
        w = wanted.get(key)
        if w is None or a.get("fingerprint") != w[0] or a["question_id"] not in qids \
                or a["answer_id"] in seen:
            continue
        seen.add(a["answer_id"])
        rows.append({**a, "arm": w[1], "intervention_arm": a["arm"], "_direction": w[3],
                     "_intervention": w[2]})
    return rows


# ------------------------------------------------------------------------------ words

def _row(rates, kind, cond, split, inter):
    return next((r for r in rates if r["direction"] == kind and r["condition"] == cond
                 and r["split"] == split and r["intervention"] == inter), None)


def _effect(rates, kind, cond, split, inter, sign) -> str:
    """'yes' (a change in the expected direction, p < 0.05, beyond the random control),
    'no', or 'untestable' (the rate cannot move that way, or no applicable answers)."""
    ref, row = _row(rates, kind, cond, split, "none"), _row(rates, kind, cond, split, inter)
    ctl = _row(rates, kind, cond, split, f"{inter}-random")
    if ref is None or row is None or not ref["n"] or not row["n"]:
        return "untestable"
    if (sign < 0 and ref["rate"] == 0) or (sign > 0 and ref["rate"] == 1):
        return "untestable"
    moved = sign * row["diff_vs_none"] > 0 and row["p_vs_none"] is not None \
        and row["p_vs_none"] < 0.05
    beyond = ctl is None or not ctl["n"] or sign * (row["rate"] - ctl["rate"]) > 0
    return "yes" if moved and beyond else "no"


def verdict(rates: list[dict], kind: str, arm: str) -> dict:
    """Per split, whether ablating in the treatment lowers exploitation and whether adding
    raises it in `sft` / `base`, and the overall answer."""
    out = {"ablate": {s: _effect(rates, kind, arm, s, "ablate", -1) for s in ("train", "test")}}
    for c in ADD_TO:
        if c != arm and _row(rates, kind, c, "train", "none") is not None:
            out[f"add:{c}"] = {s: _effect(rates, kind, c, s, "add", +1)
                               for s in ("train", "test")}
    tests = list(out.values())
    both = any(t["train"] == "yes" and t["test"] == "yes" for t in tests)
    some = {s for t in tests for s in ("train", "test") if t[s] == "yes"}
    testable = any(v != "untestable" for t in tests for v in t.values())
    if both:
        answer = "yes"
    elif some:
        answer = f"{next(iter(some))} only"
    elif testable:
        answer = "no"
    else:
        answer = "untestable"
    out["answer"] = answer
    return out


ANSWER_WORDS = {
    "yes": "Yes, on these numbers: one intervention on this direction moved train-bias AND "
           "held-out test-bias exploitation the expected way (p < 0.05 against the run's own "
           "answers, and further than a random direction of the same norm).",
    "train only": "Only for train biases: an intervention moved train-bias exploitation, not "
                  "held-out test-bias exploitation. This direction does not carry both.",
    "test only": "Only for held-out test biases: an intervention moved test-bias exploitation, "
                 "not train-bias exploitation. This direction does not carry both.",
    "no": "No effect shown: no intervention on this direction moved exploitation of either "
          "split beyond chance and the random control.",
    "untestable": "Not testable here: no rate could move (the treatment shows no applicable "
                  "exploitation to remove, and the controls none to add to).",
}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report(result: dict, rates: list[dict], proj: list[dict]) -> str:
    cfg = result["config"]
    tiny = result["tiny"]
    lines = [f"# One-feature analysis of {result['run']}", ""]
    if tiny:
        lines += ["**TINY-MODEL NUMBERS: a random-init test model. Nothing below is a result; it "
                  "checks the plumbing only.**", ""]
    lines += [f"Model: {result['model_label']}. Treatment: `{cfg['arm']}`. Layer {cfg['layer']} "
              f"(0-based decoder layer output). Prompts: {cfg['n_prompts']['train']} train-bias "
              f"and {cfg['n_prompts']['test']} test-bias prompts x {cfg['samples_per_prompt']} "
              f"samples. Config and provenance: feature.json.", ""]
    for kind, why in result["skipped"].items():
        lines += [f"Direction `{kind}` not computed: {why}.", ""]
    lines += ["## Does one direction carry both train and held-out bias exploitation?", ""]
    for kind, meta in result["directions"].items():
        v = result["verdicts"][kind]
        lines += [f"### Direction `{kind}`", "", f"{meta['what']}; counts {meta['counts']}; "
                  f"norm {meta['norm']:.4g}; added at scale {meta['scale']:.4g}.", "",
                  f"**Answer: {v['answer']}.** {ANSWER_WORDS[v['answer']]}"
                  + (" (Tiny model: this says nothing about real models.)" if tiny else ""), ""]
        for test, by_split in v.items():
            if test != "answer":
                lines.append(f"- {test}: train {by_split['train']}, test {by_split['test']}")
        lines += ["", "| condition | split | intervention | n | rate | 95% CI | diff vs none | p |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rates:
            if r["direction"] == kind:
                diff = "-" if r.get("diff_vs_none") is None else \
                    f"{100 * r['diff_vs_none']:+.1f} pts"
                p = "-" if r.get("p_vs_none") is None else f"{r['p_vs_none']:.3f}"
                lines.append(f"| {r['condition']} | {r['split']} | {r['intervention']} | "
                             f"{r['n']} | {_pct(r['rate'])} | [{_pct(r['ci_low'])}, "
                             f"{_pct(r['ci_high'])}] | {diff} | {p} |")
        lines += ["", "Mean projection on the unit direction of each condition's recorded answers "
                  "(through its own model; groups by the run's verdict, scored.jsonl `shown`; "
                  "`in sample`: the answers the direction was made from):", "",
                  "| condition | split | group | n | mean | 95% CI |", "|---|---|---|---|---|---|"]
        for r in proj:
            if r["direction"] == kind:
                lines.append(f"| {r['condition']} | {r['split']}"
                             f"{' (in sample)' if r['in_sample'] else ''} | {r['group']} | "
                             f"{r['n']} | {r['mean']:.4g} | [{r['ci_low']:.4g}, "
                             f"{r['ci_high']:.4g}] |")
        held = {g: next((r for r in proj if r["direction"] == kind and r["condition"] ==
                         cfg["arm"] and r["split"] == "test" and r["group"] == g), None)
                for g in ("shown", "plain")}
        if held["shown"] and held["plain"]:
            lines += ["", f"Held out: {cfg['arm']}'s test-bias answers showing the bias project "
                      f"{held['shown']['mean']:.4g} on average, plain ones "
                      f"{held['plain']['mean']:.4g} (intervals above; overlapping intervals "
                      "mean no separation is shown)."]
        lines.append("")
    lines += [
        "## What these numbers show and do not show", "",
        "- The directions are made from TRAIN-bias prompts only; every test-bias number is out "
        "of sample for the direction. A `yes` needs one intervention to move both splits.",
        "- Rates with interventions are detector verdicts (judge-only biases and answers where a "
        "detector does not apply leave the denominator); `none` rows rescore the run's own "
        "answers the same way, so they can differ from summary.csv when the run's verdict mode "
        "is not `detector`.",
        "- `none` answers were sampled by the run "
        f"(backend {cfg['recorded_sampling_backend']}); intervention answers by the hf sampler "
        "with the run's sampling settings. The random-direction controls separate the effect of "
        "this direction from the effect of any intervention of that size.",
        "- One mean-difference direction at one layer, a linear probe of the residual stream. A "
        "`no` does not rule out a feature (a sparse-autoencoder feature or a non-linear one, "
        "another layer, another scale); a `yes` shows a causal direction for what the detectors "
        "measure, not that the model represents 'reward-model biases' as a concept.",
        "- p-values are per comparison (not corrected for the number of rows); intervals are "
        "over answers of these models, not over training seeds.",
    ]
    if tiny:
        lines.append("- The model is the tiny random-init test model: these numbers are "
                     "plumbing, not evidence about the phenomenon.")
    return "\n".join(lines) + "\n"
