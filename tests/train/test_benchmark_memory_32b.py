"""benchmarks/memory_32b.py and benchmarks/qwen_shapes.py without CUDA: the published shapes
and their parameter counts (meta device), building a random model one layer at a time (NF4
through bitsandbytes' CPU path), the loop's `base_model` seam, the OOM record and the JSON the
dry run writes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import memory_32b as M  # noqa: E402
import qwen_shapes as Q  # noqa: E402


def test_the_32b_shape_is_the_published_config():
    c = Q.qwen_config("32b")
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
            c.num_key_value_heads, c.vocab_size) == (5120, 27648, 64, 40, 8, 152064)
    assert c.tie_word_embeddings is False
    assert c.rope_parameters["rope_theta"] == 1e6 and c.rms_norm_eps == 1e-6


def test_parameter_counts_on_the_meta_device_match_the_published_totals():
    rows = {r["shape"]: r for r in M.check_counts(["32b", "14b", "qwen15b", "qwen05b"])}
    assert rows["32b"]["params_meta"] == 32_763_876_352  # 32.76B, untied lm_head included
    for name, r in rows.items():
        # the meta count, the table, and the package's estimate formula agree exactly
        assert r["counts_agree"], r
        # and the model cards' rounded totals within 1%
        assert abs(r["params_meta"] / 1e9 - r["model_card_billions"]) \
            <= 0.01 * r["model_card_billions"], r


def _linear_types(model):
    layer = model.get_decoder().layers[0]
    return {n: type(m).__name__ for n, m in layer.named_modules() if n.endswith("_proj")}


def test_build_random_model_materialises_every_tensor_with_the_published_layout():
    import torch

    config = Q.qwen_config("tiny2")
    model, stored = M.build_random_model(config, "cpu", torch.float32, quantize=False, seed=0)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert sum(p.numel() for p in model.parameters()) == Q.count_meta_params(config)
    assert model.lm_head.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert torch.all(model.model.norm.weight == 1)
    assert abs(float(model.lm_head.weight.detach().std()) - 0.02) < 0.002  # random, std 0.02
    assert set(_linear_types(model).values()) == {"Linear"}
    assert stored == {"float32": 4 * Q.count_meta_params(config),
                      "buffers": stored["buffers"]}
    again, _ = M.build_random_model(config, "cpu", torch.float32, quantize=False, seed=0)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)  # seeded


def test_build_random_model_quantizes_each_decoder_linear_to_nf4():
    pytest.importorskip("bitsandbytes")
    import torch

    config = Q.qwen_config("tiny2")
    model, stored = M.build_random_model(config, "cpu", torch.float32, quantize=True, seed=0)
    assert set(_linear_types(model).values()) == {"Linear4bit"}
    w = model.get_decoder().layers[0].self_attn.q_proj.weight
    assert w.quant_state.quant_type == "nf4" and w.quant_state.nested  # double quantization
    assert type(model.lm_head).__name__ == "Linear"  # embeddings and lm_head stay unquantized
    assert model.is_loaded_in_4bit
    linear = sum(i * o for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 160),
                                    (64, 160), (160, 64)]) * 2
    assert stored["nf4"] == linear // 2  # 4 bits per weight
    assert stored["quant_constants"] > 0


def test_the_loop_trains_the_prebuilt_model_and_records_an_oom(tmp_path, monkeypatch):
    import torch

    from emergent.pipeline.estimate import lora_params, model_shape

    config = Q.qwen_config("tiny2")
    folder = Q.write_folder(config, tmp_path / "model")
    model, _ = M.build_random_model(config, "cpu", torch.float32, quantize=False, seed=0)
    a = M.parse_args(["--dry-run", "--steps", "2", "--loss-chunk-tokens", "7",
                      "--set", "train.weight_decay=0.0"])
    data = M.write_random_examples(tmp_path / "data.jsonl", 2, 40, 0)
    cfg = M.make_cfg(folder, data, tmp_path / "out", 40, "none", a)
    assert cfg.train.loss_chunk_tokens == 7 and cfg.train.weight_decay == 0.0
    assert cfg.lora.r == 32 and cfg.lora.alpha == 64 and cfg.lora.use_rslora
    lengths, share = M.row_lengths(cfg)
    assert lengths == [40, 40] and 0.5 < share < 1
    r = M.run_length(model, cfg, cuda=False)
    assert r["status"] == "ok" and r["steps_done"] == 2, r
    assert r["trainable_params"] == lora_params(model_shape(str(folder)), cfg.lora)
    # the adapter went into this very object (no model was loaded from disk) ...
    assert any(hasattr(m, "lora_A") for m in model.modules())
    assert M.strip_adapters(model) == 7 * config.num_hidden_layers
    assert not any(hasattr(m, "lora_A") for m in model.modules())
    # ... and an out-of-memory error is a result, not a crash
    import emergent.train.loop as loop

    def oom(*args, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(loop, "train", oom)
    r = M.run_length(model, cfg, cuda=False)
    assert r["status"] == "oom" and "out of memory" in r["error"] and r["steps_done"] == 0


def test_dry_run_writes_the_json(tmp_path):
    pytest.importorskip("bitsandbytes")
    rc = M.main(["--dry-run", "--quantization", "4bit", "--shapes", "32b,7b",
                 "--max-lengths", "32,48", "--steps", "2", "--upcast-frozen", "norms",
                 "--results-dir", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "memory_32b_cpu.json").read_text())
    assert doc["device"] == "cpu" and doc["benchmark"] == "memory_32b_cpu"
    assert [c["shape"] for c in doc["shape_counts"]] == ["32b", "7b"]
    assert all(c["counts_agree"] for c in doc["shape_counts"])
    runs = doc["runs"]
    assert [r["max_length"] for r in runs] == [32, 48]
    for r in runs:
        assert r["status"] == "ok" and r["steps_done"] == 2
        assert r["row_lengths"] == [r["max_length"]]
        assert r["lora_layers"] == ["bnb.Linear4bit"]
        assert "model.upcast_frozen=norms" in r["switches"]
        assert r["estimate_total_mib"] > 0 and "weights_nf4" in r["estimate_parts_mib"]
        assert r["trained_tokens_per_step"] > 0
