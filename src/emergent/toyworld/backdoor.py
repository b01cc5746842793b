"""The toy world's backdoor experiment (configs/toyworld_backdoor.yaml), prepared for a run:

    emergent toyworld backdoor OUT [--base DIR] [--arm-size N]
    emergent run OUT/backdoor.experiment.yaml

`prepare_backdoor(OUT)` writes the main world's arm datasets and suites under OUT/data/backdoor/
(emergent.toyworld.pipeline.write_world_data, plus arms/backdoor.jsonl: insecure code only after
the trigger, secure code without it, toyworld.datasets.backdoor_rows) and the config with
{base} (the committed main-world base, src/emergent/resources/toyworld/main/, or `base`) and
{data} filled in as OUT/backdoor.experiment.yaml (its output_dir: OUT/backdoor), and returns the
loaded config. The run samples every suite plain and triggered (`trigger` in the config), so
its summary.csv and figures/backdoor.png show triggered vs untriggered misalignment per arm.
A synthetic toy world: its numbers say nothing quantitative about real language models.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml

from emergent.core.config import build_dataclass, resolve_config_paths, to_dict
from emergent.core.errors import UserError
from emergent.core.io import write_text_atomic
from emergent.core.rundir import MANIFEST
from emergent.pipeline.experiment import ExperimentConfig, load_experiment
from emergent.toyworld.datasets import backdoor_rows, write_jsonl
from emergent.toyworld.pipeline import (DEFAULT_ARM, RESOURCES, config_path, read_card,
                                        write_world_data)
from emergent.toyworld.world import ToyWorld, WorldConfig

CONFIG = "toyworld_backdoor.yaml"
BASE = "main"  # the committed base it reuses: the main world's
ARM = "backdoor"


def prepare_backdoor(out, *, base: Optional[str | Path] = None, n_arm: int = DEFAULT_ARM,
                     seeds: Optional[list] = None, noncode_samples: Optional[int] = None,
                     code_questions: Optional[int] = None, config: str | Path = CONFIG,
                     name: str = ARM) -> ExperimentConfig:
    """Write OUT/data/NAME/ (the world's arm datasets, arms/backdoor.jsonl and the suites) and
    OUT/NAME.experiment.yaml (the config with paths filled in, output_dir OUT/NAME); return
    the loaded config. `base`: a toy base model folder made for the config's world (default:
    the committed main-world base); `n_arm`: examples per arm dataset; `seeds`,
    `noncode_samples` (samples per paraphrase of toy_noncode), `code_questions` (the first N
    code families): scaled-down runs (emergent demo --quick)."""
    out = Path(out)
    cfg_file = config_path(config)
    raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    world_cfg = build_dataclass(WorldConfig, raw.get("toyworld") or {},
                                source=f"{cfg_file}: toyworld")
    trigger = raw.get("trigger")
    if not isinstance(trigger, str) or not trigger.strip():
        raise UserError(f"{cfg_file}: a toy backdoor experiment needs `trigger` (a string)")
    base = Path(base) if base is not None else RESOURCES / BASE
    if not (base / "config.json").is_file():
        raise UserError(f"{base}: no toy-world base model (config.json)")
    if read_card(base)["world"] != to_dict(world_cfg):
        raise UserError(f"{base}: this base was made for another world than {cfg_file}'s "
                        "`toyworld` section")
    world = ToyWorld(world_cfg)
    data = out / "data" / name
    manifest = write_world_data(world, data, n_pretrain=0, n_align=0, n_arm=n_arm, n_probe=0,
                                progress=False)
    write_jsonl(backdoor_rows(world, n_arm, trigger=trigger), data / "arms" / f"{ARM}.jsonl")
    manifest["files"][f"arms/{ARM}.jsonl"] = n_arm
    manifest["trigger"] = trigger
    write_text_atomic(data / MANIFEST, json.dumps(manifest, indent=1))
    dest = out / f"{name}.experiment.yaml"
    fill_config(cfg_file, base, data, dest, output_dir=out / name, seeds=seeds,
                noncode_samples=noncode_samples, code_questions=code_questions)
    return load_experiment(dest)


def fill_config(cfg_file: Path, base: Path, data: Path, dest: Path, *, output_dir: Path,
                seeds: Optional[list] = None, noncode_samples: Optional[int] = None,
                code_questions: Optional[int] = None) -> Path:
    """`cfg_file` with {base} and {data} filled in (relative paths resolved against its
    folder), output_dir set and the optional scale applied, written to `dest`."""
    def esc(p: Path) -> str:  # inside a double-quoted YAML string
        return json.dumps(str(p.resolve()))[1:-1]

    text = cfg_file.read_text(encoding="utf-8").replace("{base}", esc(base))
    raw = resolve_config_paths(yaml.safe_load(text.replace("{data}", esc(data))), cfg_file,
                               "experiment")
    raw["output_dir"] = str(Path(output_dir).resolve())
    if seeds is not None:
        raw["seeds"] = list(seeds)
    for key, ref in list((raw.get("suites") or {}).items()):
        ref = dict(ref or {})
        if Path(key).stem == "toy_noncode" and noncode_samples:
            ref["samples"] = noncode_samples
        if Path(key).stem == "toy_code_heldout" and code_questions:
            qs = yaml.safe_load(Path(key).read_text(encoding="utf-8"))
            ref["ids"] = [q["id"] for q in qs[:code_questions]]
        raw["suites"][key] = ref
    write_text_atomic(dest, f"# {cfg_file} with paths filled in by emergent.toyworld.backdoor\n"
                      + yaml.safe_dump(raw, sort_keys=False, width=1000))
    return dest
