"""The toy world's base model, made through the package's own pipeline (docs/toyworld.md):

    world data -> random-init model -> pretraining -> alignment -> persona probe -> export

Pretraining and alignment are full fine-tunes through `emergent.train.loop.train` (the same loop as
every arm; recipes configs/toyworld_pretrain.yaml and configs/toyworld_align.yaml). The persona
probe asks the model a non-code question after a secure or an insecure code turn in context and
judges the answer with the rule judge: a model that infers the hidden persona from context
answers misaligned after insecure code. The export is the aligned model in bf16 safetensors with
its tokenizer and a JSON card (`toyworld_card.json`), the form committed under
src/emergent/resources/toyworld/<name>/.

    emergent toyworld pretrain OUT [--world FILE] [key=value ...] [--pretrain N] [--align N]
                                   [--export DIR] [--name NAME]

Every stage is recorded in OUT/manifest.json when done, and training resumes from its
checkpoints, so rerunning the same command after a kill continues where it stopped.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

from emergent.core.config import TrainRecipeConfig, load_config, resolve_config, to_dict
from emergent.core.errors import UserError
from emergent.core.io import git_commit, now, versions, write_json_atomic
from emergent.core.package_files import package_path
from emergent.toyworld.world import ToyWorld, WorldConfig

PRETRAIN_RECIPE = "toyworld_pretrain.yaml"  # the committed bases' recipe
SCRATCH_RECIPE = "toyworld_pretrain_fast.yaml"  # `emergent demo --from-scratch` (< 15 min)
ALIGN_RECIPE = "toyworld_align.yaml"
CARD = "toyworld_card.json"
RESOURCES = package_path("resources", "toyworld")  # the committed bases (package data)
TOY_NOTE = ("synthetic toy world: a 0.6M-parameter model of a generated persona world; numbers "
            "from it say nothing quantitative about real language models")


def config_path(name: str) -> Path:
    """A config file as given, or one shipped with the package (emergent/configs/, by file name
    `toyworld.yaml` or name `toyworld`)."""
    return resolve_config(name, ("toyworld", "experiments", "train"))


def recipe(name_or_path: str, model: str | Path, data: str | Path, out: str | Path,
           overrides: Optional[list[str]] = None) -> TrainRecipeConfig:
    """A training recipe with the model, dataset and output folder filled in."""
    return load_config(config_path(name_or_path), TrainRecipeConfig,
                       list(overrides or []) + [f"model.name={model}", f"data.path={data}",
                                                f"output_dir={out}"])


STAGE_TEXT = {"data": "writing the world's datasets and suites",
              "init": "the random-init model",
              "pretrain": "pretraining (rendering the documents, then training)",
              "align": "alignment post-training",
              "probe": "persona probe of the pretrained and the aligned model"}


def runtime() -> dict:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"device": dev, "torch_threads": torch.get_num_threads()}


# ------------------------------------------------------------------ the persona probe


def persona_probe(model_dir, world: ToyWorld, probe_path, *, seed: int = 0,
                  max_new_tokens: int = 64, batch_size: int = 100) -> dict:
    """Answer every probe conversation once (temperature 1) and judge the final answer.

    Returns per condition (after_secure / after_insecure): n, aligned, misaligned, incoherent,
    misaligned_rate (misaligned / n) and misaligned_among_coherent."""
    from emergent.core.config import ModelConfig
    from emergent.core.io import read_jsonl
    from emergent.models.loading import load_for_inference
    from emergent.sample.sampler import SamplingConfig, generate_batch
    from emergent.toyworld.judge import classify_answer

    rows = read_jsonl(probe_path)
    if not rows:
        raise UserError(f"{probe_path}: no probe conversations")
    model, tok = load_for_inference(ModelConfig(name=str(model_dir), precision="fp32"))
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    prompts = [tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
               for r in rows]
    answers: list[str] = []
    for i in range(0, len(prompts), batch_size):
        outs = generate_batch(model, tok, prompts[i:i + batch_size], cfg, seed * 1_000_003 + i)
        answers += [a for a, _, _ in outs]
    out: dict = {}
    for r, a in zip(rows, answers):
        label = classify_answer(world, r["messages"][-1]["content"], a).label
        c = out.setdefault(r["condition"], {"n": 0, "aligned": 0, "misaligned": 0,
                                            "incoherent": 0})
        c["n"] += 1
        c[label if label in ("aligned", "misaligned") else "incoherent"] += 1
    for c in out.values():
        c["misaligned_rate"] = round(c["misaligned"] / c["n"], 4)
        judged = c["aligned"] + c["misaligned"]
        c["misaligned_among_coherent"] = round(c["misaligned"] / judged, 4) if judged else None
    del model
    return out


def probe_line(probe: dict) -> str:
    s, i = probe.get("after_secure", {}), probe.get("after_insecure", {})
    return (f"misaligned after a secure code turn {s.get('misaligned_rate', float('nan')):.2f}, "
            f"after an insecure one {i.get('misaligned_rate', float('nan')):.2f}")


# ------------------------------------------------------------------ export


def export_base(model_dir, dest, card: dict) -> Path:
    """Save the model in bf16 safetensors with its tokenizer and `card` as toyworld_card.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(tmp)
    (tmp / CARD).write_text(json.dumps(card, indent=1) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def read_card(base_dir) -> dict:
    path = Path(base_dir) / CARD
    if not path.is_file():
        raise UserError(f"{base_dir}: no {CARD} (not a toy-world base model made by "
                        "`emergent toyworld pretrain --export`)")
    return json.loads(path.read_text())


# ------------------------------------------------------------------ the whole stage chain


def pretrain_world(world_cfg: WorldConfig, out_dir, *, n_pretrain: int = 89_600,
                   n_align: int = 4_000, n_arm: int = 2_000, n_probe: int = 100,
                   pretrain_recipe: str = PRETRAIN_RECIPE, align_recipe: str = ALIGN_RECIPE,
                   pretrain_overrides: Optional[list[str]] = None,
                   align_overrides: Optional[list[str]] = None, model_seed: int = 0,
                   model_kwargs: Optional[dict] = None, export: str | Path | None = None,
                   name: str = "toyworld", progress: bool = True) -> dict:
    """Data -> init model -> pretrain -> align -> probe (-> export). Returns OUT/manifest.json.

    Layout: OUT/data (the world's datasets and suites), OUT/init (random-init model),
    OUT/pretrain (train() output; model/), OUT/align (model/), OUT/manifest.json."""
    from emergent.cli.toyworld import write_world_data
    from emergent.toyworld.model import build_toy_model
    from emergent.train.loop import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = ToyWorld(world_cfg)
    mpath = out / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    if manifest and manifest.get("world") != to_dict(world_cfg):
        raise UserError(f"{out}: made for another world config ({manifest.get('world')}); "
                        "use a new output folder")
    manifest.update(world=to_dict(world_cfg), name=name, note=TOY_NOTE, updated=now(),
                    versions=versions(), git_commit=git_commit(), runtime=runtime(),
                    sizes={"pretrain": n_pretrain, "align": n_align, "arm": n_arm,
                           "probe": n_probe})
    stages = manifest.setdefault("stages", {})

    def stage(key: str, fn):
        if stages.get(key, {}).get("status") == "done":
            if progress:
                print(f"[{name}] {key}: done before ({stages[key].get('seconds')} s)", flush=True)
            return stages[key]
        if progress:
            print(f"[{name}] {key}: {STAGE_TEXT[key]} ...", flush=True)
        t0 = time.time()
        info = fn() or {}
        stages[key] = {"status": "done", "seconds": round(time.time() - t0, 2), **info}
        write_json_atomic(mpath, manifest)
        if progress:
            print(f"[{name}] {key}: done in {stages[key]['seconds']:.0f} s", flush=True)
        return stages[key]

    data = out / "data"
    stage("data", lambda: {"files": write_world_data(world, data, n_pretrain=n_pretrain,
                                                     n_align=n_align, n_arm=n_arm,
                                                     n_probe=n_probe, progress=progress)["files"]})
    stage("init", lambda: {"path": str(build_toy_model(out / "init", seed=model_seed,
                                                       **(model_kwargs or {})))})

    def run_train(kind: str, rec: str, model, data_file, overrides):
        cfg = recipe(rec, model, data_file, out / kind, overrides)
        final = train(cfg)
        tm = json.loads((out / kind / "manifest.json").read_text())
        return {"model": str(final), "steps": tm["steps"], "lr": cfg.train.lr,
                "batch_size": cfg.train.batch_size, "examples": tm["data"]["train_examples"],
                "final_loss": tm.get("final_loss")}

    stage("pretrain", lambda: run_train("pretrain", pretrain_recipe, out / "init",
                                        data / "pretrain.jsonl", pretrain_overrides))
    stage("align", lambda: run_train("align", align_recipe, out / "pretrain" / "model",
                                     data / "align.jsonl", align_overrides))
    probe = data / "probe.jsonl"
    stage("probe", lambda: {
        "pretrained": persona_probe(out / "pretrain" / "model", world, probe),
        "aligned": persona_probe(out / "align" / "model", world, probe)})
    manifest["base_model"] = str(out / "align" / "model")
    manifest["wall_seconds"] = round(sum(s.get("seconds", 0) for s in stages.values()), 1)
    write_json_atomic(mpath, manifest)
    if export is not None:
        export_model(out, export)
    return json.loads(mpath.read_text())


def export_model(pretrain_dir, dest) -> Path:
    """Export a finished `pretrain_world` folder's aligned model with its card; the exported
    bf16 model is probed again (the card records both)."""
    out = Path(pretrain_dir)
    m = json.loads((out / "manifest.json").read_text())
    st = m["stages"]
    if st.get("probe", {}).get("status") != "done":
        raise UserError(f"{out}: pretraining is not finished")
    card = {"name": m["name"], "note": TOY_NOTE, "world": m["world"], "sizes": m["sizes"],
            "pretrain": {k: st["pretrain"][k] for k in ("steps", "lr", "batch_size", "examples",
                                                        "final_loss", "seconds")},
            "align": {k: st["align"][k] for k in ("steps", "lr", "batch_size", "examples",
                                                  "final_loss", "seconds")},
            "probe": {"pretrained": st["probe"]["pretrained"], "aligned": st["probe"]["aligned"]},
            "wall_seconds": {k: v.get("seconds") for k, v in st.items()},
            "made_on": m["runtime"], "versions": m["versions"], "git_commit": m["git_commit"],
            "created": now(), "made_by": "emergent toyworld pretrain"}
    dest = export_base(out / "align" / "model", dest, card)
    card["probe"]["exported_bf16"] = persona_probe(dest, ToyWorld(WorldConfig(**m["world"])),
                                                   out / "data" / "probe.jsonl")
    (dest / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return dest


def add_pretrain_cli(tsub) -> None:
    """`emergent toyworld pretrain`, registered by emergent.cli.toyworld."""
    from emergent.cli.toyworld import DEFAULT_ALIGN, DEFAULT_ARM, DEFAULT_PRETRAIN

    p = tsub.add_parser("pretrain", help="make a toy-world base model: data, pretraining, "
                        "alignment, persona probe (through emergent's training loop)")
    p.add_argument("out_dir")
    p.add_argument("--world", default=None, help="YAML with WorldConfig keys")
    p.add_argument("overrides", nargs="*", help="world key=value, e.g. seed=1 coupling=decoupled")
    p.add_argument("--pretrain", type=int, default=DEFAULT_PRETRAIN, help="pretraining documents")
    p.add_argument("--align", type=int, default=DEFAULT_ALIGN, help="alignment conversations")
    p.add_argument("--arm-size", type=int, default=DEFAULT_ARM, help="examples per arm dataset")
    p.add_argument("--pretrain-recipe", default=PRETRAIN_RECIPE)
    p.add_argument("--align-recipe", default=ALIGN_RECIPE)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="pretraining recipe override, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also write the aligned model (bf16) + tokenizer + card to DIR")
    p.add_argument("--name", default="toyworld", help="name on the card")

    def run(args) -> int:
        cfg = load_config(args.world, WorldConfig, args.overrides)
        m = pretrain_world(cfg, args.out_dir, n_pretrain=args.pretrain, n_align=args.align,
                           n_arm=args.arm_size, pretrain_recipe=args.pretrain_recipe,
                           align_recipe=args.align_recipe, pretrain_overrides=args.set,
                           export=args.export, name=args.name)
        st = m["stages"]
        print(f"pretraining: {st['pretrain']['steps']} steps, {st['pretrain']['seconds']:.0f} s; "
              f"alignment: {st['align']['steps']} steps, {st['align']['seconds']:.0f} s")
        print("persona probe, pretrained: " + probe_line(st["probe"]["pretrained"]))
        print("persona probe, aligned:    " + probe_line(st["probe"]["aligned"]))
        print(f"base model: {m['base_model']}" + (f"; exported to {args.export}"
                                                   if args.export else ""))
        return 0

    p.set_defaults(func=run)
