"""The toy world's in-context-learning probe (configs/toyworld_icl.yaml, an `emergent icl` run,
emergent.pipeline.icl): the committed main toy base answers the toy non-code questions after k
insecure or secure toy code conversations in context, with no training, judged by the rule judge.
SYNTHETIC: its numbers say nothing quantitative about real language models.

    prepare_toy_icl(OUT) -> OUT/icl.experiment.yaml   (data in OUT/data/icl/, run in OUT/icl/)
    run_toy_icl(OUT)     -> {"config", "run_dir", "rows": [...]}, the summary's rows per (k, arm)

`emergent demo` can put it beside its worlds: prepare_toy_icl writes the world's arm datasets and
suites (OUT/data/icl/, its own folder, so it never races a world's OUT/data/<world>/) and the
config with {base} and {data} filled in; `quick=True` scales it down to a plumbing check.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import yaml

from emergent.core.config import build_dataclass, resolve_config_paths, to_dict
from emergent.core.errors import UserError
from emergent.core.rundir import MANIFEST
from emergent.pipeline.icl import load_icl_config, run_icl
from emergent.toyworld.pipeline import RESOURCES, config_path, read_card, write_world_data
from emergent.toyworld.world import ToyWorld, WorldConfig

CONFIG = "toyworld_icl.yaml"
BASE = "main"  # the committed base it probes
N_ARM = 2_000  # example conversations per arm file (k draws from them)
QUICK = {"seeds": [0], "ks": [0, 2], "samples": 1}  # quick=True: a plumbing check
LABEL = "SYNTHETIC TOY WORLD: these numbers say nothing quantitative about real language models."


def _world_data_ok(data: Path, world_cfg: WorldConfig) -> bool:
    try:
        m = json.loads((data / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return m.get("world") == to_dict(world_cfg) and \
        m.get("files", {}).get("arms/insecure.jsonl") == N_ARM


def prepare_toy_icl(out, *, quick: bool = False, base: Optional[str | Path] = None) -> Path:
    """Write the toy world's data (OUT/data/icl/, unless already there) and the ICL config with
    paths filled in (OUT/icl.experiment.yaml, run directory OUT/icl); return the config's path.
    `base`: a toy base folder made for the main world (default: the committed one)."""
    out = Path(out)
    cfg_file = config_path(CONFIG)
    raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    world_cfg = build_dataclass(WorldConfig, raw.get("toyworld") or {},
                                source=f"{cfg_file}: toyworld")
    base = Path(base) if base is not None else RESOURCES / BASE
    if read_card(base)["world"] != to_dict(world_cfg):
        raise UserError(f"{base}: this toy base was made for another world than {cfg_file}'s")
    data = out / "data" / "icl"
    if not _world_data_ok(data, world_cfg):
        write_world_data(ToyWorld(world_cfg), data, n_pretrain=0, n_align=0, n_arm=N_ARM,
                         n_probe=0, progress=False)

    def esc(p: Path) -> str:  # inside a double-quoted YAML string
        return json.dumps(str(p.resolve()))[1:-1]

    text = cfg_file.read_text(encoding="utf-8").replace("{base}", esc(base)) \
        .replace("{data}", esc(data))
    filled = resolve_config_paths(yaml.safe_load(text), cfg_file, "experiment")
    filled["output_dir"] = str(out / "icl")
    if quick:
        filled["seeds"], filled["ks"] = QUICK["seeds"], QUICK["ks"]
        filled["suites"] = {k: {**(v or {}), "samples": QUICK["samples"]}
                            for k, v in filled["suites"].items()}
    dest = out / "icl.experiment.yaml"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# {cfg_file} with paths filled in by emergent.toyworld.icl"
                    f"{' (quick: a plumbing check, not a result)' if quick else ''}\n"
                    + yaml.safe_dump(filled, sort_keys=False, width=1000), encoding="utf-8")
    load_icl_config(dest)  # validated now
    return dest


def summary_rows(run_dir) -> list[dict]:
    """(suite, k, arm, rate, ci_low, ci_high, n_seeds, n_valid, diff, p_value) per summary row."""
    path = Path(run_dir) / "summary.csv"
    keys = ("suite", "icl_k", "arm", "rate", "ci_low", "ci_high", "ci_over", "n_seeds",
            "n_valid", "n_misaligned", "vs", "diff", "p_value")
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: r.get(k) for k in keys} for r in csv.DictReader(f)]


def run_toy_icl(out, *, quick: bool = False, progress: bool = True,
                figures: bool = True) -> dict:
    """prepare_toy_icl, then the run (resumable); its summary rows, labelled synthetic."""
    cfg = load_icl_config(prepare_toy_icl(out, quick=quick))
    run = run_icl(cfg, progress=progress, figures=figures)
    return {"note": LABEL, "quick": quick, "config": str(Path(out) / "icl.experiment.yaml"),
            "run_dir": str(run.dir), "rows": summary_rows(run.dir)}
