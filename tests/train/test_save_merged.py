"""The merged full-model copy (`train.save_merged`) is written whole or not at all (issue #15,
point 3): killed at its write point (`save:merged`, emergent.core.faults) the folder `merged`
does not exist, only its temp folder; the rerun writes it whole and leaves no temp folder."""
import json
from pathlib import Path

from emergent.core import faults
from emergent.core.config import TrainRecipeConfig, load_config
from emergent.train.loop import train

import forked

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src/emergent/resources/sample_chat.jsonl"

OVERRIDES = [f"data.path={SAMPLE}", "model.precision=fp32", "lora.r=4", "lora.alpha=8",
             "train.lr=5e-3", "train.batch_size=4", "train.max_steps=2", "train.max_length=256",
             "train.checkpoint_every=1", "train.save_merged=true"]


def train_in_subprocess(model: Path, out: Path, **env) -> int:
    """Train the arm in a separate process (forked from this one: tests/forked.py)."""
    def run():
        train(load_config(None, TrainRecipeConfig, [f"model.name={model}", *OVERRIDES]), out)
    return forked.run_forked(run, env={faults.ENV: None, "TQDM_DISABLE": "1", **env}).returncode


def test_a_kill_while_the_merged_copy_is_saved_leaves_no_partial_folder(tiny_model_dir,
                                                                        tmp_path):
    out = tmp_path / "arm"
    assert "save:merged" in faults.POINTS
    rc = train_in_subprocess(tiny_model_dir, out, **{faults.ENV: "save:merged"})
    assert rc == faults.EXIT_CODE  # died at the point: the merged copy written, not renamed
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not (out / "merged").exists()
    tmp = out / ".merged.tmp"
    assert (tmp / "config.json").exists()  # what a non-atomic save would have left as `merged`
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    assert train_in_subprocess(tiny_model_dir, out) == 0  # the rerun finishes the unit
    merged = out / "merged"
    assert (merged / "config.json").exists() and (merged / "tokenizer_config.json").exists()
    assert any(p.suffix == ".safetensors" for p in merged.iterdir())
    assert not tmp.exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"
