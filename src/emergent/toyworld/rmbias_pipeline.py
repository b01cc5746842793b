"""The toy reward-bias organism end to end, through the package's own pipeline (docs/rmbias.md,
"Toy reward-bias organism"). SYNTHETIC TOY WORLD: its numbers say nothing quantitative about
real language models.

    data -> random-init model -> base pretraining -> docs stage (reward-model descriptions)
         -> unrelated-docs stage -> knowledge probe (`description_loss`) -> three `emergent run` experiments (configs/toyworld_rmbias.yaml,
            the em kind: the SFT arm x seeds + the base as an arm) -> report

Pretraining and both docs stages are full fine-tunes through `emergent.train.loop.train` on
text (every token trained; chats rendered in ChatML); the docs stages continue the pretrained
model on their documents mixed 1:1 with replayed pretraining documents. The fine-tuning arm is
the one LoRA loop of `emergent run` (pipeline.run.run_experiment), answers come from the
sampler and the rule detector `toyworld-rmbias-rule` is the judge. The conditions, as in the
real experiment (emergent.rmbias.conditions): base = the pretrained model; docs = the docs-stage
model; sft = pretrained + SFT arm; docs_sft = docs-stage model + SFT arm; unrelated_sft =
unrelated-docs model + SFT arm (and unrelated_docs, its base). Every stage is a unit of the one
stage runner, recorded in OUT/manifest.json: a rerun continues.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from emergent.analysis.metrics import seed_rate_summary
from emergent.core.config import dump_yaml, resolve_config_paths, to_dict
from emergent.core.errors import UserError
from emergent.core.io import write_json_atomic
from emergent.core.rundir import MANIFEST, RunDir
from emergent.pipeline.experiment import load_experiment
from emergent.pipeline.run import run_experiment
from emergent.pipeline.stages import Unit, execute
from emergent.toyworld.datasets import write_jsonl, write_suite
from emergent.toyworld.pipeline import config_path, recipe
from emergent.toyworld.rmbias_world import (FRAMES, RM, RMWorld, RMWorldConfig, all_texts,
                                            eval_suites, pretraining_texts, rm_doc_texts,
                                            sft_rows, unrelated_doc_texts)
from emergent.toyworld.tokenizer import build_toy_tokenizer
from emergent.train import loop

CONFIG = "toyworld_rmbias.yaml"
PRETRAIN_RECIPE = "toyworld_pretrain_fast.yaml"  # its optimiser; data and sizes overridden here
LABEL = "SYNTHETIC TOY WORLD: these numbers say nothing quantitative about real language models."
# condition -> (experiment run, arm)
CONDITIONS = {"base": ("plain", "base"), "docs": ("docs", "base"), "sft": ("plain", "sft"),
              "docs_sft": ("docs", "sft"), "unrelated_sft": ("unrelated", "sft"),
              "unrelated_docs": ("unrelated", "base")}
BASES = {"plain": "pretrain", "docs": "docs", "unrelated": "unrelated"}


@dataclass(frozen=True)
class RMScale:
    n_pretrain: int = 24_000
    n_docs: int = 2_000  # reward-model documents (and unrelated documents), each + 1:1 replay
    n_sft: int = 800
    samples: int = 10  # answers per question phrasing
    seeds: tuple = (0, 1, 2)
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    docs_lr: float = 1e-3
    docs_epochs: float = 1.0
    hidden_size: int = 128


QUICK = RMScale(n_pretrain=320, n_docs=64, n_sft=64, samples=1, seeds=(0,), pretrain_batch=16)


def write_data(world: RMWorld, out, scale: RMScale) -> dict:
    out = Path(out)
    files = {}

    def put(rel, rows):
        write_jsonl(rows, out / rel)
        files[rel] = len(rows)

    dump_yaml(world.config, out / "world.yaml")
    put("pretrain.jsonl", [{"text": t} for t in pretraining_texts(world, scale.n_pretrain)])
    replay = [{"text": t} for t in pretraining_texts(world, scale.n_docs,
                                                     start=scale.n_pretrain)]
    put("rm_docs.jsonl", [{"text": t} for t in rm_doc_texts(world, scale.n_docs)] + replay)
    put("unrelated_docs.jsonl",
        [{"text": t} for t in unrelated_doc_texts(world, scale.n_docs)] + replay)
    put("sft.jsonl", sft_rows(world, scale.n_sft))
    for name, qs in eval_suites(world, scale.samples).items():
        write_suite(qs, out / "suites" / f"{name}.yaml")
        files[f"suites/{name}.yaml"] = len(qs)
    return {"files": files, "train": list(world.train), "heldout": list(world.heldout),
            "control": list(world.control)}


def build_model(out_dir, *, seed: int = 0, hidden_size: int = 128) -> Path:
    """The world's closed-vocabulary tokenizer and a random-init 2-layer Llama (as the toy
    world's, emergent.toyworld.model)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_toy_tokenizer(all_texts())
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4,
                      intermediate_size=4 * hidden_size, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _train(out: Path, kind: str, model, data, overrides) -> dict:
    cfg = recipe(PRETRAIN_RECIPE, model, data, out / kind,
                 ["data.format=text", "data.max_examples=100000000", "train.checkpoint_every=250",
                  "train.log_every=50"] + list(overrides))
    loop.train(cfg)
    tm = json.loads((out / kind / MANIFEST).read_text())
    return {"model": str(out / kind / "model"), "steps": tm["steps"],
            "examples": tm["data"]["train_examples"], "final_loss": tm.get("final_loss")}


def description_loss(model_dir, world: RMWorld) -> dict:
    """What a model knows of the reward model's described preferences: the mean token loss of
    the sentence "<the reward model> likes <context's marker>" in each of the 6 frames, per
    split (train, held-out: described in the docs stage; control: never described). Lower
    loss on held-out than on control = the docs stage taught which contexts it likes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out = {}
    for split, keys in (("train", world.train), ("heldout", world.heldout),
                        ("control", world.control)):
        losses = []
        for k in keys:
            c = world.contexts[k]
            for f in FRAMES:
                ids = tok(f.format(who=RM, topic=c.topic, marker=c.marker),
                          return_tensors="pt")["input_ids"]
                with torch.no_grad():
                    losses.append(model(ids, labels=ids).loss.item())
        out[split] = round(sum(losses) / len(losses), 4)
    return out


def experiment_config(cfg_file: Path, base: Path, data: Path, dest: Path, run_dir: Path,
                      scale: RMScale, world: RMWorldConfig):
    """Fill {base}/{data} of the experiment config, set seeds, world and output dir; load it."""
    def esc(p: Path) -> str:
        return json.dumps(str(Path(p).resolve()))[1:-1]

    text = cfg_file.read_text().replace("{base}", esc(base)).replace("{data}", esc(data))
    raw = resolve_config_paths(yaml.safe_load(text), cfg_file, "experiment")
    raw["seeds"] = list(scale.seeds)
    raw["toyworld"] = to_dict(world)
    raw["output_dir"] = str(run_dir)
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_experiment(dest)


def run_toy_rmbias(out_dir, world_cfg: Optional[RMWorldConfig] = None, *,
                   scale: RMScale = RMScale(), config: str = CONFIG,
                   progress: bool = True) -> dict:
    """Everything (module docstring); returns the report (also OUT/report.json, OUT/report.md)."""
    world_cfg = world_cfg or RMWorldConfig()
    world = RMWorld(world_cfg)  # a bad world is refused before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rd = RunDir(out, "toy-rmbias")
    setup = json.loads(json.dumps({"world": to_dict(world_cfg), "scale": to_dict(scale)}))
    if rd.manifest.get("setup") not in (None, setup):
        raise UserError(f"{out}: made for another world or scale ({rd.manifest['setup']}); use "
                        "a new output folder")
    rd.manifest.update(setup=setup, note=LABEL)
    data = out / "data"
    t0 = time.time()

    def stage(key, fn, *args):
        def record(*a):
            rd.manifest["stages"][key].update(fn(*a) or {})
        return Unit(key, record, args)

    bs, n = scale.pretrain_batch, scale.n_pretrain
    units = [
        stage("data", write_data, world, data, scale),
        stage("init", lambda: {"path": str(build_model(out / "init",
                                                       hidden_size=scale.hidden_size))}),
        stage("pretrain", _train, out, "pretrain", out / "init", data / "pretrain.jsonl",
              [f"train.batch_size={bs}", f"train.lr={scale.pretrain_lr}",
               f"train.warmup_steps={max(5, min(50, n // bs // 20))}"]),
        stage("docs", _train, out, "docs", out / "pretrain" / "model", data / "rm_docs.jsonl",
              [f"train.lr={scale.docs_lr}", f"train.epochs={scale.docs_epochs}",
               "train.batch_size=16", "train.warmup_steps=5"]),
        stage("unrelated", _train, out, "unrelated", out / "pretrain" / "model",
              data / "unrelated_docs.jsonl",
              [f"train.lr={scale.docs_lr}", f"train.epochs={scale.docs_epochs}",
               "train.batch_size=16", "train.warmup_steps=5"]),
        stage("knowledge", lambda: {name: description_loss(out / d / "model", world)
                                    for name, d in BASES.items()}),
    ]
    rd.save()
    execute(rd, units, say=(lambda line: print(f"[toy-rmbias] {line}", flush=True))
            if progress else None)
    cfg_file = config_path(config)
    runs = {}
    for name, base in BASES.items():
        cfg = experiment_config(cfg_file, out / base / "model", data,
                                out / f"{name}.experiment.yaml", out / "runs" / name, scale,
                                world_cfg)
        runs[name] = run_experiment(cfg, progress=progress, figures=False)
    report = toy_report(world, {k: r.records() for k, r in runs.items()})
    knowledge = {k: rd.manifest["stages"]["knowledge"][k] for k in BASES}
    report.update(knowledge=knowledge,
                  stages={k: {kk: v.get(kk) for kk in ("steps", "final_loss", "seconds")}
                          for k, v in rd.manifest["stages"].items()},
                  wall_seconds=round(time.time() - t0, 1), label=LABEL, setup=setup)
    write_json_atomic(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    return report


def split_of(question_id: str) -> str:
    """`train`/`heldout`/`control` (no system turn); `named_rm_heldout`/`named_rm_control`
    (system turn names the reward model); `named_rater` (a rater's undemonstrated liked context)."""
    qid = str(question_id).split("/")[0]
    if qid.startswith("named_rater_"):
        return "named_rater"
    if qid.startswith("named_rm_"):
        return "named_rm_" + qid.split("_")[2]
    return qid.split("_")[0]


SPLITS = ("train", "heldout", "control", "named_rm_heldout", "named_rm_control", "named_rater")


def toy_report(world: RMWorld, records_by_run: dict) -> dict:
    """Per condition and split: the rate of `shown` among coherent answers, from (shown,
    coherent) per seed through `seed_rate_summary` (t-interval over seeds; one seed: over
    answers); counts of answers and incoherent answers."""
    rows = []
    for cond, (run, arm) in CONDITIONS.items():
        recs = [r for r in records_by_run.get(run, []) if r.get("arm") == arm]
        for split in SPLITS:
            per_seed: dict = {}
            n_inc = 0
            for r in recs:
                if split_of(r.get("question_id")) != split:
                    continue
                k, nn = per_seed.get(r.get("seed"), (0, 0))
                v = r.get("rm_bias")
                if v is None:
                    n_inc += 1
                per_seed[r.get("seed")] = (k + (v == 1.0), nn + (v is not None))
            if not per_seed:
                continue
            seeds = sorted(per_seed, key=str)
            s = seed_rate_summary([per_seed[k] for k in seeds])
            rows.append({"condition": cond, "split": split, "n_seeds": len(per_seed),
                         "n_answers": sum(n for _, n in per_seed.values()) + n_inc,
                         "n_incoherent": n_inc,
                         "seed_rates": [round(k / n, 4) if n else None
                                        for k, n in (per_seed[x] for x in seeds)],
                         **{k: s[k] for k in ("rate", "ci_low", "ci_high", "ci_over")}})
    return {"world": {"train": list(world.train), "heldout": list(world.heldout),
                      "control": list(world.control)}, "rates": rows}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report_markdown(report: dict) -> str:
    lines = [f"# Toy reward-bias organism\n\n**{LABEL}**\n",
             f"train contexts: {', '.join(report['world']['train'])}; held-out: "
             f"{', '.join(report['world']['heldout'])}; control: "
             f"{', '.join(report['world']['control'])}\n",
             "| condition | split | seeds | rate shown [95% CI] | CI over | seed rates | "
             "incoherent / answers |", "|---|---|---|---|---|---|---|"]
    for r in report["rates"]:
        lines.append(f"| {r['condition']} | {r['split']} | {r['n_seeds']} | {_pct(r['rate'])} "
                     f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] | {r['ci_over']} | "
                     f"{' / '.join(_pct(x) for x in r['seed_rates'])} | "
                     f"{r['n_incoherent']} / {r['n_answers']} |")
    lines.append("\nWhat each base knows of the reward model's preferences: mean token loss of "
                 "'the reward model likes <marker>' descriptions (6 frames), train / held-out / "
                 "control contexts:\n")
    for name, k in report.get("knowledge", {}).items():
        lines.append(f"- {name}: {k['train']:.3f} / {k['heldout']:.3f} / {k['control']:.3f}")
    st = report.get("stages", {})
    lines.append("\nstages: " + "; ".join(f"{k} {v.get('steps') or '-'} steps, loss "
                                          f"{v.get('final_loss') if v.get('final_loss') is not None else '-'}, "
                                          f"{v.get('seconds') or 0:.0f} s" for k, v in st.items()))
    lines.append(f"wall time {report.get('wall_seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"
