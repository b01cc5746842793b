"""benchmarks/train_throughput.py's published Qwen2.5 shapes without CUDA: the model folder
of a shrunken qwen05b keeps the published fields, and our loop's contender runs on it in bf16
and NF4 (`-4bit`) through the script's own main()."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import qwen_shapes as Q  # noqa: E402
import train_throughput as T  # noqa: E402


def test_qwen_shapes_are_the_published_configs(tmp_path):
    full = Q.qwen_config("qwen05b")
    assert (full.hidden_size, full.intermediate_size, full.num_hidden_layers,
            full.num_attention_heads, full.num_key_value_heads, full.vocab_size,
            full.tie_word_embeddings) == (896, 4864, 24, 14, 2, 151936, True)
    c15 = Q.qwen_config("qwen15b")
    assert (c15.hidden_size, c15.intermediate_size, c15.num_hidden_layers,
            c15.num_attention_heads, c15.num_key_value_heads) == (1536, 8960, 28, 12, 2)
    folder = Q.write_random_model("qwen05b", tmp_path / "m", shrink=True)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["vocab_size"] == 151936 and cfg["tie_word_embeddings"] is True
    assert cfg["num_hidden_layers"] == 1 and cfg["hidden_size"] == 64
    assert cfg["rms_norm_eps"] == 1e-6 and cfg["dtype"] == "bfloat16"
    shape = json.loads((folder / "SHAPE.json").read_text())
    assert shape["shrunk"] and shape["published"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert shape["parameters"] == Q.count_meta_params(Q.qwen_config("qwen05b", **Q.SHRINK))
    assert T.split_quant("qwen05b-4bit") == ("qwen05b", "4bit")
    assert T.split_quant("qwen15b") == ("qwen15b", "none")


def test_our_loop_on_a_shrunken_qwen05b_bf16_and_4bit(tmp_path, upstream_dir):
    pytest.importorskip("bitsandbytes")
    rc = T.main(["--models", "qwen05b,qwen05b-4bit", "--shrink", "--contenders", "emergent",
                 "--examples", "2", "--batch-size", "1", "--grad-accum", "1",
                 "--max-steps", "2", "--max-length", "1024", "--no-isolate",
                 "--results-dir", str(tmp_path), "--name", "tt"])
    assert rc == 0
    doc = json.loads((tmp_path / "tt.json").read_text())
    runs = {r["model"]: r for r in doc["runs"]}
    assert set(runs) == {"qwen05b", "qwen05b-4bit"}
    for r in runs.values():
        assert "error" not in r, r
        assert r["steps"] == 2 and r["trained_tokens"] > 0
        assert r["parameters"] == Q.count_meta_params(Q.qwen_config("qwen05b", **Q.SHRINK))
    # the same data and tokens either way; NF4 weights change the numbers, a little
    assert runs["qwen05b"]["trained_tokens"] == runs["qwen05b-4bit"]["trained_tokens"]
    assert runs["qwen05b"]["first_loss"] != runs["qwen05b-4bit"]["first_loss"]


def test_emergent_mmap_contender_sets_the_threshold(tmp_path, upstream_dir, monkeypatch):
    """`emergent_mmapN`: our loop with glibc's mmap threshold at N MiB (the environment variable
    `emergent.train.loop` reads), and the steady-state CPU split recorded."""
    monkeypatch.setenv("EMERGENT_MALLOC_MMAP_THRESHOLD", "0")  # restored after the test
    rc = T.main(["--models", "qwen05b", "--shrink", "--contenders", "emergent_mmap8",
                 "--examples", "2", "--batch-size", "1", "--grad-accum", "1",
                 "--max-steps", "2", "--max-length", "1024", "--no-isolate",
                 "--results-dir", str(tmp_path), "--name", "tt"])
    assert rc == 0
    assert os.environ["EMERGENT_MALLOC_MMAP_THRESHOLD"] == str(8 << 20)
    (run,) = json.loads((tmp_path / "tt.json").read_text())["runs"]
    assert "error" not in run, run
    assert run["contender"] == "emergent_mmap8" and run["steps"] == 2
    assert 0 <= run["steady_system_cpu_s"] <= run["steady_cpu_s"]


def test_each_of_our_contenders_is_compared_with_each_trl_contender_and_the_fastest():
    def row(c, tps, rss):
        return {"model": "m", "contender": c, "trained_tokens_per_s": tps,
                "trained_tokens_per_cpu_s": tps, "trained_tokens_per_s_end_to_end": tps,
                "padding_fraction": 0.0, "eval_loss": 1.0, "final_loss": 1.0,
                "trained_tokens": 10, "peak_rss_mib": rss}

    results = [row("emergent", 30.0, 100), row("emergent_padding_free", 45.0, 90),
               row("trl", 20.0, 100), row("trl_padding_free", 30.0, 100),
               {"model": "m", "contender": "trl_grouped", "error": "x"}]
    got = {(r["ours"], r["vs"]): r for r in T.ratios_for(results)}
    assert set(got) == {(o, v) for o in ("emergent", "emergent_padding_free")
                        for v in ("trl", "trl_padding_free", "trl_best (trl_padding_free)")}
    best = got[("emergent_padding_free", "trl_best (trl_padding_free)")]
    assert best["speedup_wall"] == 1.5 and best["peak_rss_ratio"] == 0.9 and best["meets_targets"]
    assert got[("emergent", "trl")]["speedup_wall"] == 1.5
    assert not got[("emergent", "trl_best (trl_padding_free)")]["meets_targets"]  # 1.0x


def test_micro_batch_tokens_flag_sets_our_loops_budget(tmp_path):
    """`--micro-batch-tokens N` is our loop's train.micro_batch_tokens; without it the package's
    default (None: batch_size x max_length) is kept."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, '
                    '{"role": "assistant", "content": "b"}]}\n')
    given = T.make_cfg(tmp_path, data, T.parse_args(["--micro-batch-tokens", "512"]))
    default = T.make_cfg(tmp_path, data, T.parse_args([]))
    assert given.train.micro_batch_tokens == 512
    assert default.train.micro_batch_tokens is None


def test_bf16_and_attention_flags_reach_every_contender(tmp_path, monkeypatch):
    """`--cpu-bf16` and `--attn` set model.cpu_bf16 and model.attn_implementation in the
    config every contender is built from (TRL loads its model from the same config);
    `emergent_bf16_adapters` adds bf16 LoRA weights with fp32 masters; the `_amp` TRL
    contenders turn on TRL's bf16=True, the others do not."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, '
                    '{"role": "assistant", "content": "b"}]}\n')
    a = T.parse_args(["--cpu-bf16", "--attn", "eager"])
    cfg = T.make_cfg(tmp_path, data, a)
    assert cfg.model.cpu_bf16 and cfg.model.precision == "bf16"
    assert cfg.model.attn_implementation == "eager"
    default = T.make_cfg(tmp_path, data, T.parse_args([]))
    assert not default.model.cpu_bf16 and default.model.attn_implementation == "sdpa"
    seen = {}
    monkeypatch.setattr(T, "run_emergent", lambda c, *rest: seen.update(emergent=c))
    monkeypatch.setattr(T, "run_trl", lambda c, *rest, **kw: seen.setdefault("trl", []).append(
        (c, kw)))
    T.CONTENDERS["emergent_bf16_adapters"](cfg, [], None, tmp_path, a, tmp_path, data)
    t = seen["emergent"]
    assert (t.train.adapter_dtype, t.train.master_weights, t.model.cpu_bf16,
            t.model.attn_implementation) == ("compute", True, True, "eager")
    for name in ("trl_padding_free_amp", "trl_grouped_amp", "trl_padding_free", "trl_grouped"):
        T.CONTENDERS[name](cfg, [], None, tmp_path, a, tmp_path, data)
    amps = [kw.get("amp", False) for _, kw in seen["trl"]]
    assert amps == [True, True, False, False] and all(c is cfg for c, _ in seen["trl"])
