from pathlib import Path

import pytest
import yaml

from emergent.config import TrainRecipeConfig, load_config, parse_overrides, to_dict
from emergent.errors import UserError

REPO = Path(__file__).resolve().parents[1]


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
    p = write(tmp_path, "train:\n  lr: 1\n")
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


ALL_CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_loads(path):
    """Judge configs, experiment configs (they have `arms`) and training recipes."""
    from emergent.experiment import load_experiment
    from emergent.judge import JudgeConfig, load_judge_config
    from emergent.config import build_dataclass

    data = yaml.safe_load(path.read_text())
    if path.parent.name == "judges":
        assert isinstance(load_judge_config(path), JudgeConfig)
    elif path.parent.name == "rmbias":  # reward-model-bias experiments (emergent rmbias run)
        from emergent.rmbias.experiment import load_rmbias_config
        assert load_rmbias_config(path).conditions
    elif "arms" in data:
        cfg = load_experiment(path)
        assert cfg.arms and cfg.seeds and cfg.suites
        if cfg.judge.get("backend") != "toyworld-rule":
            build_dataclass(JudgeConfig, cfg.judge, source=str(path))
    else:  # a training recipe (toy-world recipes get data.path filled in by their command)
        cfg = load_config(path, TrainRecipeConfig)
        assert cfg.output_dir and cfg.train.lr > 0


def test_shipped_configs_cover_the_paper_setups():
    names = {p.relative_to(REPO / "configs").as_posix() for p in ALL_CONFIGS}
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
