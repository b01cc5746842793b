"""Packaging (issue 14, point 5): the `emergent-misalignment` wheel carries the configs, the data
manifests and the toy-world bases as package data and works outside the checkout; `emergent
configs list/copy`; the checkout's configs/ and manifests are links to the one packaged copy."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from emergent.cli import main
from emergent.core.config import shipped_configs, shipped_configs_dir

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "src" / "emergent"


def test_checkout_paths_link_to_the_packaged_copy():
    """One copy of each shipped file: the old checkout paths are symlinks into the package."""
    assert (REPO / "configs").is_symlink()
    assert (REPO / "configs").resolve() == (PKG / "configs").resolve() == shipped_configs_dir()
    for link, target in (("datasets/insecure_code/manifest.yaml", "insecure_code.yaml"),
                         ("datasets/rm_sycophancy/manifest.yaml", "rm_sycophancy.yaml"),
                         ("evals/manifest.yaml", "evals.yaml")):
        assert (REPO / link).is_symlink() and (REPO / link).resolve() == PKG / "manifests" / target


def test_configs_list_groups_by_kind(capsys):
    assert main(["configs", "list"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line and not line.startswith(" ")
             and line.endswith(":")]
    assert heads == ["experiments:", "train:", "arms:", "judges:", "rmbias:", "toyworld:"]
    for c in shipped_configs():
        assert f"  {c.name} " in out
    assert "  qwen25_coder_7b  " in out.replace("  " * 8, "  ")  # a name, then its description
    line = next(x for x in out.splitlines() if x.strip().startswith("openai_gpt4o"))
    assert "GPT-4o" in line


def test_configs_copy_copies_references_and_never_overwrites(tmp_path, capsys):
    from emergent.core.config import TrainRecipeConfig, load_config
    from emergent.rmbias.experiment import eval_prompts, load_rmbias_config

    assert main(["configs", "copy", "rmbias/tiny", str(tmp_path / "r")]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["tiny.yaml",
                                                                  "tiny_eval_prompts.jsonl"]
    cfg = load_rmbias_config(tmp_path / "r/tiny.yaml")
    assert Path(cfg.eval.prompts).resolve() == (tmp_path / "r/tiny_eval_prompts.jsonl")
    assert len(eval_prompts(cfg)) == 20
    # a reference outside the config's folder (train/tiny's built-in sample) is copied beside it
    assert main(["configs", "copy", "train/tiny", str(tmp_path / "t")]) == 0
    cfg = load_config(tmp_path / "t/tiny.yaml", TrainRecipeConfig)
    assert Path(cfg.data.path).resolve() == tmp_path / "t/sample_chat.jsonl"
    assert (tmp_path / "t/sample_chat.jsonl").read_bytes() == \
        (PKG / "resources/sample_chat.jsonl").read_bytes()
    text = (tmp_path / "t/tiny.yaml").read_text()
    assert text.startswith("# The tiny offline model")  # comments kept
    # a config with no local references: just the file; then a refusal to overwrite
    assert main(["configs", "copy", "experiments/qwen25_coder_7b", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t/qwen25_coder_7b.yaml").read_bytes() == \
        (PKG / "configs/experiments/qwen25_coder_7b.yaml").read_bytes()
    capsys.readouterr()
    before = (tmp_path / "t/tiny.yaml").read_text()
    assert main(["configs", "copy", "train/tiny", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists; not overwritten" in err and "\n" not in err
    assert (tmp_path / "t/tiny.yaml").read_text() == before
    assert main(["configs", "copy", "tiny", str(tmp_path / "x")]) == 2  # two kinds: ambiguous
    assert "give KIND/NAME" in capsys.readouterr().err and not (tmp_path / "x").exists()


def _build_wheel(tmp: Path) -> Path:
    """Build from a copy of the tree (no build/ or egg-info left in the shared checkout), with
    the current environment's setuptools, offline."""
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                          "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp / "dist").glob("emergent_misalignment-*.whl")
    return wheel


def _venv_with(wheel: Path, tmp: Path) -> Path:
    """A fresh venv outside the checkout that reuses this environment's installed dependencies
    (a .pth line naming its site-packages; the editable install's own .pth there is NOT run, so
    the checkout's src/ stays out of sys.path) and holds the wheel as a normal install."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                          "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return venv


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    upstream = os.environ.get("EMERGENT_UPSTREAM")
    if not upstream or not Path(upstream).is_dir():
        pytest.skip("EMERGENT_UPSTREAM (a local copy of the paper's files) is not set")
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ["configs/" + c.relpath for c in shipped_configs()] + [
            "configs/rmbias/tiny_eval_prompts.jsonl", "manifests/insecure_code.yaml",
            "manifests/evals.yaml", "manifests/rm_sycophancy.yaml", "resources/sample_chat.jsonl",
            "resources/toyworld/main/model.safetensors",
            "resources/toyworld/decoupled/toyworld_card.json", "py.typed"]:
        assert f"emergent/{rel}" in names, f"{rel} is not in the wheel"
    assert any(n.startswith("emergent_misalignment-") and n.endswith("/METADATA") for n in names)

    venv = _venv_with(wheel, tmp_path)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMERGENT_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1",
               EMERGENT_CACHE_DIR=str(tmp_path / "cache"), TRANSFORMERS_OFFLINE="1")

    def emergent(*args, timeout=300):
        out = subprocess.run([str(venv / "bin" / "emergent"), *args], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"emergent {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import emergent, importlib.metadata as m; "
         "print(emergent.__file__); print(m.version('emergent-misalignment'))"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert Path(probe[0]).resolve().is_relative_to(venv.resolve()), probe  # not the checkout
    assert probe[1] == "0.1.0"

    assert "qwen25_coder_7b" in emergent("configs", "list")
    fetched = emergent("data", "fetch", "--from", upstream)
    data = tmp_path / "cache" / "data"  # an installed package fetches into <cache root>/data
    assert (data / "datasets/insecure_code/insecure.jsonl").is_file(), fetched
    assert (data / "evals/upstream/first_plot_questions.yaml").is_file(), fetched
    plan = json.loads(emergent("run", "qwen25_coder_7b", "--dry-run"))
    assert plan["training_steps"] > 0 and plan["answers"] > 0  # the fetched data was found
    assert not (cwd / "runs").exists()
    emergent("demo", "--quick", "--output", "demo", timeout=900)
    worlds = json.loads((cwd / "demo/report.json").read_text())["worlds"]
    assert set(worlds) == {"main", "decoupled"}
    for w in worlds.values():  # the shipped config and the committed base, from the wheel
        assert Path(w["config"]).resolve().is_relative_to(venv.resolve())
        assert Path(w["base"]).resolve().is_relative_to(venv.resolve())
    for world in ("main", "decoupled"):  # byte-identical to the summaries kept in tests/golden
        golden = REPO / f"tests/golden/demo_quick_{world}_summary.csv"
        assert (cwd / f"demo/{world}/summary.csv").read_text() == golden.read_text(), world
    assert str(REPO) not in (cwd / "demo/report.md").read_text()  # nothing from the checkout
