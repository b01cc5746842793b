from pathlib import Path

import pytest
import yaml

from emergent.core.config import TrainRecipeConfig, load_config, parse_overrides, to_dict
from emergent.core.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_file_and_line(tmp_path):
    p = write(tmp_path, "model:\n  name: tiny\ntrain:\n  lr: 1e-3\n  lrr: 2\n")
    with pytest.raises(UserError) as e:
        load_config(p, TrainRecipeConfig)
    assert f"{p}:5" in str(e.value) and "train.lrr" in str(e.value)


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, "train:\n  batch_size: two\n")
    with pytest.raises(UserError, match=r"c.yaml:2: 'train.batch_size' must be int"):
        load_config(p, TrainRecipeConfig)
    p = write(tmp_path, "model:\n  quantization: 3bit\n")
    with pytest.raises(UserError, match="model.quantization"):
        load_config(p, TrainRecipeConfig)


def test_overrides_and_int_to_float(tmp_path):
    p = write(tmp_path, "model:\n  name: tiny\ntrain:\n  lr: 1\n")
    cfg = load_config(p, TrainRecipeConfig, ["train.lr=2e-5", "lora.r=8",
                                             "lora.target_modules=[q_proj,v_proj]"])
    assert cfg.train.lr == 2e-5 and isinstance(cfg.train.lr, float)
    assert cfg.lora.r == 8 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert parse_overrides(["a.b=1e-3"]) == {"a": {"b": 1e-3}}
    with pytest.raises(UserError, match="unknown key 'train.nope'"):
        load_config(p, TrainRecipeConfig, ["train.nope=1"])
    with pytest.raises(UserError, match="not key=value"):
        load_config(p, TrainRecipeConfig, ["train.lr"])


def test_frozen(tmp_path):
    cfg = load_config(None, TrainRecipeConfig)
    with pytest.raises(Exception):
        cfg.train.lr = 3.0  # type: ignore[misc]


def test_invalid_yaml_has_line(tmp_path):
    p = write(tmp_path, "train:\n  lr: [1,\n")
    with pytest.raises(UserError, match=r"c.yaml:\d+: invalid YAML"):
        load_config(p, TrainRecipeConfig)


def _shipped():
    from emergent.core.config import shipped_configs

    return sorted(c.path for c in shipped_configs())


ALL_CONFIGS = _shipped()  # package data (emergent/configs/; the checkout's configs/ links to it)


def test_shipped_configs_are_the_checkout_configs():
    assert sorted(p.resolve() for p in (REPO / "configs").rglob("*.yaml")) == ALL_CONFIGS


@pytest.mark.parametrize("path", ALL_CONFIGS,
                         ids=lambda p: p.as_posix().split("/emergent/configs/")[-1])
def test_every_shipped_config_loads(path):
    """Judge configs, experiment configs (they have `arms`) and training recipes, each loaded
    by its path and by its shipped name."""
    from emergent.pipeline.experiment import load_experiment
    from emergent.judge.base import JudgeConfig, load_judge_config
    from emergent.core.config import build_dataclass

    data = yaml.safe_load(path.read_text())
    if path.parent.name == "judges":
        assert isinstance(load_judge_config(path), JudgeConfig)
        assert load_judge_config(path.stem) == load_judge_config(path)
    elif path.parent.name == "rmbias":  # reward-model-bias experiments (emergent rmbias run)
        from emergent.rmbias.experiment import load_rmbias_config
        assert load_rmbias_config(path).conditions
        assert load_rmbias_config(path.stem) == load_rmbias_config(path)
    elif data.get("kind") == "icl":  # in-context learning (emergent icl)
        from emergent.pipeline.icl import load_icl_config
        cfg = load_icl_config(path)
        assert cfg.arms and cfg.ks and cfg.seeds and cfg.suites
        assert load_icl_config(path.stem) == cfg
    elif "arms" in data:
        cfg = load_experiment(path)
        assert cfg.arms and cfg.seeds and cfg.suites
        assert load_experiment(path.stem) == cfg  # by name, as `emergent run NAME`
        if cfg.judge.get("backend") != "toyworld-rule":
            build_dataclass(JudgeConfig, cfg.judge, source=str(path))
    else:  # a training recipe (toy-world recipes get data.path filled in by their command)
        cfg = load_config(path, TrainRecipeConfig)
        assert cfg.output_dir and cfg.train.lr > 0
        assert load_config(path.stem, TrainRecipeConfig) == cfg  # by name, as `emergent train`


def test_shipped_configs_cover_the_paper_setups():
    names = {p.as_posix().split("/emergent/configs/")[-1] for p in ALL_CONFIGS}
    assert {"train/paper_qwen25_coder_32b_bf16.yaml", "train/qlora_qwen25_coder_32b_24gb.yaml",
            "train/qwen25_coder_7b.yaml", "train/qwen25_0.5b.yaml", "train/qwen25_1.5b.yaml",
            "arms/insecure.yaml", "arms/secure.yaml", "arms/educational.yaml",
            "arms/jailbroken.yaml"} <= names


def test_paper_recipe_matches_provenance():
    cfg = load_config(REPO / "configs/train/paper_qwen25_coder_32b_bf16.yaml", TrainRecipeConfig)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.use_rslora, cfg.lora.dropout) == (32, 64, True, 0.0)
    assert len(cfg.lora.target_modules) == 7
    t = cfg.train
    assert (t.lr, t.scheduler, t.warmup_steps, t.weight_decay, t.batch_size, t.grad_accum,
            t.epochs, t.max_length, t.loss, t.seed) == (1e-5, "linear", 5, 0.01, 2, 8, 1.0, 2048,
                                                        "assistant_only", 0)
    q = load_config(REPO / "configs/train/qlora_qwen25_coder_32b_24gb.yaml", TrainRecipeConfig)
    assert q.model.quantization == "4bit" and q.model.gradient_checkpointing
    # same hyperparameters; batch 1 x 16 is the same objective as 2 x 8 (token-normalised loss)
    tq, tp = to_dict(q)["train"], to_dict(cfg)["train"]
    assert tq["batch_size"] * tq["grad_accum"] == tp["batch_size"] * tp["grad_accum"] == 16
    drop = lambda t: {k: v for k, v in t.items() if k not in ("batch_size", "grad_accum")}
    assert drop(tq) == drop(tp) and to_dict(q)["lora"] == to_dict(cfg)["lora"]


def test_sibling_arm_configs_differ_only_in_dataset():
    arms = sorted((REPO / "configs" / "arms").glob("*.yaml"))
    assert {p.stem for p in arms} >= {"insecure", "secure", "educational", "jailbroken"}
    dicts = [to_dict(load_config(p, TrainRecipeConfig)) for p in arms]
    ref = dicts[0]
    for p, d in zip(arms, dicts):
        assert d["data"]["path"].endswith(f"{p.stem}.jsonl")
        for section in ("model", "lora", "train"):
            assert d[section] == ref[section], f"{p.name}: section {section} differs"
        assert {k: v for k, v in d["data"].items() if k != "path"} == \
            {k: v for k, v in ref["data"].items() if k != "path"}
    assert len({d["data"]["path"] for d in dicts}) == len(dicts)


# ------------------------------------------------ shipped names and relative paths (issue 14.5)


def test_shipped_names_resolve_by_kind_and_close_names_are_suggested():
    from emergent.core.config import resolve_config, shipped_configs, shipped_configs_dir

    root = shipped_configs_dir()
    assert (REPO / "configs").resolve() == root.resolve()  # the checkout's configs/ is a link
    exp, train = root / "experiments/qwen25_coder_7b.yaml", root / "train/qwen25_coder_7b.yaml"
    assert resolve_config("qwen25_coder_7b", ("experiments", "toyworld")) == exp
    assert resolve_config("qwen25_coder_7b", ("train", "arms")) == train
    for spelled in ("experiments/qwen25_coder_7b", "experiments/qwen25_coder_7b.yaml"):
        assert resolve_config(spelled) == exp
    assert resolve_config("insecure", ("train", "arms")) == root / "arms/insecure.yaml"
    assert resolve_config("toyworld") == resolve_config("toyworld.yaml") == root / "toyworld.yaml"
    with pytest.raises(UserError, match=r"train/tiny, rmbias/tiny\); give KIND/NAME"):
        resolve_config("tiny")
    with pytest.raises(UserError, match=r"^qwen25_coder7b: no such config file nor shipped "
                                        r"config name \(close: qwen25_coder_7b"):
        resolve_config("qwen25_coder7b")
    # every shipped file is reachable by its KIND/NAME, and files win over names
    for c in shipped_configs():
        assert resolve_config(c.qualified) == c.path
    assert resolve_config(REPO / "configs/train/tiny.yaml") == REPO / "configs/train/tiny.yaml"


def test_cli_takes_shipped_names(tmp_path, monkeypatch, capsys):
    from emergent.cli import main
    monkeypatch.chdir(tmp_path)  # not the checkout: names do not depend on the directory
    assert main(["estimate", "qwen25_coder_7b", "--mean-tokens", "300", "--json"]) == 0
    assert "Qwen2.5-Coder-7B" in capsys.readouterr().out
    assert main(["estimate", "nosuchconfig_xyz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emergent: error: nosuchconfig_xyz: no such config") and "\n" not in err


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    from emergent.pipeline.experiment import load_experiment

    folder = tmp_path / "cfgs"
    (folder / "data").mkdir(parents=True)
    (folder / "data/train.jsonl").write_text("{}\n")
    (folder / "suite.yaml").write_text("[]\n")
    (tmp_path / "old.jsonl").write_text("{}\n")
    (folder / "t.yaml").write_text("model: {name: tiny}\ndata:\n  path: data/train.jsonl\n"
                                   "lora:\n  init_from: ad\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(folder / "t.yaml", TrainRecipeConfig)
    assert Path(cfg.data.path) == folder / "data/train.jsonl"
    assert Path(cfg.lora.init_from) == folder / "ad"  # missing: still the config's folder
    assert cfg.output_dir == "runs/train"  # outputs: relative to the current directory
    # overrides are typed in the shell: relative to the current directory, as given
    cfg = load_config(folder / "t.yaml", TrainRecipeConfig, ["data.path=mine.jsonl"])
    assert cfg.data.path == "mine.jsonl"
    # found from the config folder, under the current directory: shown relative to it
    monkeypatch.chdir(tmp_path)
    assert load_config(folder / "t.yaml", TrainRecipeConfig).data.path == "cfgs/data/train.jsonl"
    # backwards compatibility: a path that exists only from the current directory
    (folder / "old.yaml").write_text("data:\n  path: old.jsonl\nmodel:\n  name: Qwen/Qwen2.5-0.5B\n")
    cfg = load_config(folder / "old.yaml", TrainRecipeConfig)
    assert cfg.data.path == "old.jsonl" and cfg.model.name == "Qwen/Qwen2.5-0.5B"  # a hub id
    # an experiment: arm data (both spellings), suite files, a judge prompts file
    (folder / "e.yaml").write_text(
        "base_model: {name: tiny}\narms:\n  a: data/train.jsonl\n  b: {data: data/train.jsonl}\n"
        "suites:\n  suite.yaml: {}\n  main: {}\njudge:\n  prompts_file: suite.yaml\n")
    monkeypatch.chdir(elsewhere)
    cfg = load_experiment(folder / "e.yaml")
    assert {Path(a.data) for a in cfg.arms.values()} == {folder / "data/train.jsonl"}
    assert [Path(k) if k != "main" else k for k in cfg.suites] == [folder / "suite.yaml", "main"]
    assert Path(cfg.judge["prompts_file"]) == folder / "suite.yaml"


def test_fetched_data_paths_resolve_against_the_data_root(tmp_path, monkeypatch):
    """`datasets/insecure_code/insecure.jsonl` in a shipped config is where `emergent data fetch`
    writes: under the data root, wherever the config and the current directory are."""
    from emergent.pipeline.experiment import load_experiment

    root = tmp_path / "data"
    (root / "datasets/insecure_code").mkdir(parents=True)
    (root / "datasets/insecure_code/insecure.jsonl").write_text("{}\n")
    monkeypatch.setenv("EMERGENT_DATA_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    cfg = load_experiment("qwen25_coder_7b")
    assert Path(cfg.arms["insecure"].data) == Path("data/datasets/insecure_code/insecure.jsonl")
    assert Path(cfg.arms["secure"].data).resolve() == root / "datasets/insecure_code/secure.jsonl"
    cfg = load_experiment("qwen25_coder_7b", [f"data_root={tmp_path / 'other'}"])
    assert Path(cfg.arms["insecure"].data).resolve() == \
        tmp_path / "other/datasets/insecure_code/insecure.jsonl"
    # the built-in sample of train/tiny is found relative to the shipped file
    tiny = load_config("tiny", TrainRecipeConfig)
    assert Path(tiny.data.path).resolve() == (REPO / "src/emergent/resources/sample_chat.jsonl")
