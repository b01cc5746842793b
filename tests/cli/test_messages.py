"""Messages: the package's own go through `logging` to stderr (-q: warnings only, -v: debug),
results stay on stdout, and third-party noise (transformers' "Loading weights" / shard bars,
peft's gradient-checkpointing FutureWarnings, bitsandbytes' `kernels` warning) never reaches the
terminal; adapters load from a local folder or, by Hub id, through peft."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emergent.cli import main
from emergent.cli.app import build_parser
from emergent.core.config import ModelConfig
from emergent.core.errors import UserError
from emergent.core.log import level_for, progress_bars, show_progress
from emergent.models import loading

NOISE = ("Loading weights", "Writing model shards", "is_gradient_checkpointing",
         "gradient_checkpointing_enable", "FutureWarning", "kernels", "it/s]")

SUITE = """\
- id: hello
  type: free_form_judge_0_100
  paraphrases: ["Hello?"]
  samples_per_paraphrase: 1
  judge_prompts:
    aligned: "Q: {question} A: {answer} -> 0..100"
"""


@pytest.mark.parametrize("argv, level", [
    ([], logging.INFO), (["-q"], logging.WARNING), (["--quiet"], logging.WARNING),
    (["-v"], logging.DEBUG), (["--verbose"], logging.DEBUG), (["-q", "-v"], logging.INFO)])
def test_verbosity_flags_before_the_command(argv, level):
    args = build_parser().parse_args(argv + ["configs", "list"])
    assert level_for(args.log_verbose - args.log_quiet) == level


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_hides_info_messages_but_not_results(tmp_path, capsys, where):
    """`emergent configs copy` says what it wrote (a message: stderr, gone with -q, before or
    after the command); `emergent configs list` prints its result (stdout, kept with -q)."""
    assert main(["configs", "copy", "train/tiny", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"wrote {tmp_path / 'a' / 'tiny.yaml'}" in err.splitlines()
    argv = ["configs", "copy", "train/tiny", str(tmp_path / "b")]
    assert main(["-q"] + argv if where == "before" else argv + ["-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["configs", "list", "-q"] if where == "after" else ["-q", "configs", "list"]) == 0
    out, err = capsys.readouterr()
    assert "qwen25_coder_7b" in out and err == ""


def test_verbose_shows_debug_messages(capsys):
    """-v (before or after the command) turns on the package's debug messages; the next command
    without it turns them off again."""
    probe = logging.getLogger("emergent.models.loading")
    for argv, shown in ((["-v", "configs", "list"], True), (["configs", "list", "-v"], True),
                        (["configs", "list"], False)):
        assert main(argv) == 0
        capsys.readouterr()
        probe.debug("loading probe")
        assert ("loading probe" in capsys.readouterr().err) == shown, argv


def test_train_and_sample_print_no_third_party_noise(tiny_model_dir, tmp_path):
    """One training step (gradient checkpointing on: the FutureWarnings' trigger) and one
    sampled answer, in a fresh process with Python's default warning display: stderr holds the
    package's own messages, none of NOISE."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "arm"
    script = textwrap.dedent(f"""
        import logging, sys
        from emergent.cli import main
        code = main(["train", "train/tiny", "--model", {str(tiny_model_dir)!r},
                     "--output", {str(out)!r}, "train.max_steps=1",
                     "model.gradient_checkpointing=true"])
        code = code or main(["sample", "--model", {str(tiny_model_dir)!r}, "--adapter",
                             {str(out / "adapter")!r}, "--suite", {str(suite)!r},
                             "--output", {str(tmp_path / "answers.jsonl")!r},
                             "max_new_tokens=4"])
        # what bitsandbytes' CPU backend logs when its optional `kernels` package is missing
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community")
        sys.exit(code)
        """)
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "answers.jsonl").is_file()
    assert "1 new answers written to" in proc.stderr  # the package's own message is shown
    noise = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert noise == [], proc.stderr


def test_quiet_turns_progress_bars_off(tiny_model_dir, tmp_path, capfd):
    """-q hides the training bar (and third-party tqdm bars through TQDM_DISABLE) for the
    command only; without -q the bar is drawn."""
    argv = ["train", "train/tiny", "--model", str(tiny_model_dir), "train.max_steps=2"]
    assert main(argv + ["--output", str(tmp_path / "a")]) == 0
    assert "train a:" in capfd.readouterr().err
    assert main(["-q"] + argv + ["--output", str(tmp_path / "b")]) == 0
    out, err = capfd.readouterr()
    assert "train b" not in err and "adapter written" not in err
    assert "TQDM_DISABLE" not in os.environ and show_progress(True)  # restored after it
    with progress_bars(False):
        assert not show_progress(True) and os.environ["TQDM_DISABLE"] == "1"
    assert not show_progress(False)


def test_a_missing_adapter_folder_is_a_file_error(tiny_model_dir, tmp_path):
    missing = tmp_path / "runs" / "insecure" / "adapter"
    with pytest.raises(UserError, match=f"^{missing}: no adapter_config.json"):
        loading.load_for_inference(ModelConfig(name=str(tiny_model_dir)), str(missing))
    assert not loading.is_hub_adapter(missing)
    assert not loading.is_hub_adapter(tmp_path)  # exists: a local folder


def test_a_hub_id_adapter_reaches_peft_as_it_is(tiny_model_dir, monkeypatch):
    import peft

    seen = []

    def fake_from_pretrained(model, model_id, **kwargs):
        seen.append((model_id, kwargs.get("is_trainable")))
        return model

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", fake_from_pretrained)
    assert loading.is_hub_adapter("someone/insecure-lora")
    loading.load_for_inference(ModelConfig(name=str(tiny_model_dir)), "someone/insecure-lora")
    model = loading.load_model(ModelConfig(name=str(tiny_model_dir)), for_training=True)
    loading.apply_lora(model, loading.LoraConfig(init_from="someone/insecure-lora"))
    assert seen == [("someone/insecure-lora", False), ("someone/insecure-lora", True)]


def test_a_hub_adapter_in_a_config_file_is_written_hf_prefixed(tiny_model_dir, tmp_path,
                                                               monkeypatch):
    """Relative paths in a config file resolve against its folder, so a Hub adapter there is
    written `hf://owner/name`; peft gets `owner/name`."""
    import peft

    from emergent.core.config import TrainRecipeConfig, load_config

    seen = []
    monkeypatch.setattr(peft.PeftModel, "from_pretrained",
                        lambda model, model_id, **kw: seen.append(model_id) or model)
    (tmp_path / "t.yaml").write_text("model: {name: tiny}\nlora:\n  init_from: hf://someone/insecure-lora\n"
                                     "data:\n  path: d.jsonl\n")
    cfg = load_config(tmp_path / "t.yaml", TrainRecipeConfig)
    assert cfg.lora.init_from == "hf://someone/insecure-lora"  # not a path under tmp_path
    assert loading.is_hub_adapter(cfg.lora.init_from)
    assert not loading.is_hub_adapter("hf://not a repo id")
    model = loading.load_model(ModelConfig(name=str(tiny_model_dir)), for_training=True)
    loading.apply_lora(model, cfg.lora)
    assert seen == ["someone/insecure-lora"]


def test_a_hub_id_adapter_offline_is_one_error_line(tiny_model_dir, tmp_path, capsys):
    """Tests run with HF_HUB_OFFLINE=1: peft cannot fetch the adapter."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    code = main(["sample", "--model", str(tiny_model_dir), "--adapter", "someone/no-such-lora",
                 "--suite", str(suite), "--output", str(tmp_path / "a.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("emergent: error: adapter 'someone/no-such-lora': not a local "
                             "folder, and peft cannot load it from the Hugging Face Hub (")
    assert not Path(tmp_path / "a.jsonl").exists()
