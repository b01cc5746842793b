"""`train.padding_free`: one packed row per micro-batch (emergent.train.batching.collate_packed)
trains the numbers of padded micro-batches, and a model that would let packed examples see each
other is refused before training."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import masking_utils

from emergent.core.config import ModelConfig, dump_yaml
from emergent.core.errors import UserError
from emergent.models import loading
from emergent.train import batching, kernels
from emergent.train.loop import train
from emergent.train.sft import check_packing
from tests.train.test_ddp import TOL, _adapter, _cfg, _emergent, _max_diff
from tests.train.test_memory_options import (SAMPLE, assert_same, cfg_for, lora_model,
                                             loss_and_grads)


def test_collate_packed_lays_the_examples_end_to_end():
    rows = [([5, 6, 7], [0, 1, 1]), ([8, 9], [1, 1]), ([4, 3, 2, 1], [1, 0, 0, 1])]
    ids, attn, labels, positions = batching.collate_packed(rows)
    assert ids.tolist() == [[5, 6, 7, 8, 9, 4, 3, 2, 1]]
    assert attn.tolist() == [[1] * 9]
    # an example's first token is never a target: the previous example does not predict it
    assert labels.tolist() == [[-100, 6, 7, -100, 9, -100, -100, -100, 1]]
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    padded = batching.collate(rows, pad_id=0)[2]
    assert int((labels[:, 1:] != -100).sum()) == int((padded[:, 1:] != -100).sum()) == 4


def test_a_padding_free_token_budget_counts_the_examples_own_tokens():
    lengths = [10, 9, 2, 2]
    assert batching.pack_step([2, 0, 3, 1], lengths, 23) == [[0, 1], [2, 3]]  # 3 rows x 10 > 23
    assert batching.pack_step([2, 0, 3, 1], lengths, 23, padding_free=True) == [[0, 1, 2, 3]]
    assert batching.pack_step([2, 0, 3, 1], lengths, 22, padding_free=True) == [[0, 1, 2], [3]]
    plan = [[[0, 1, 2, 3]]]
    assert batching.shard(plan, lengths, 0, 2, 12, padding_free=True) == [[[0, 2]]]
    assert batching.shard(plan, lengths, 1, 2, 12, padding_free=True) == [[[1, 3]]]
    assert batching.shard(plan, lengths, 0, 2, 12) == [[[0], [2]]]  # padded: 2 x 10 > 12


def _rows(model_dir, n):
    from emergent.data.chat_data import load_jsonl_examples
    from emergent.data.render import render_conversation

    tok = loading.load_tokenizer(ModelConfig(name=str(model_dir)))
    return tok, [render_conversation(tok, e.messages) for e in load_jsonl_examples(SAMPLE)[:n]]


@pytest.mark.parametrize("segments", [False, True], ids=["block-mask", "segment-sdpa"])
@pytest.mark.parametrize("chunk", [0, 7])
def test_packed_rows_give_the_padded_loss_and_gradients(tiny_model_dir, chunk, segments,
                                                        monkeypatch):
    """The same loss and LoRA gradients from packed rows as from padded micro-batches (plain
    and chunked loss), under transformers' SDPA (a block-diagonal mask over the whole row) and
    under kernels.segment_sdpa (one SDPA call per example, no mask); the same rows without
    their position ids (every example attending to the ones before it) give another loss."""
    model = lora_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    tok, rows = _rows(tiny_model_dir, 6)
    groups = [[0, 1], [2, 3, 4, 5]]
    padded = [batching.collate([rows[i] for i in g], tok.pad_token_id) for g in groups]
    packed = [batching.collate_packed([rows[i] for i in g]) for g in groups]
    n = int(sum((m[2][:, 1:] != -100).sum() for m in padded))
    assert n == int(sum((m[2][:, 1:] != -100).sum() for m in packed))
    want = loss_and_grads(model, padded, n, chunk)
    assert kernels.use_segment_sdpa(model) if segments else True
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        calls.append((q.shape[-2], attn_mask is None and kw.get("is_causal")))
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    assert_same(want, loss_and_grads(model, packed, n, chunk), rtol=1e-5)
    layers = model.get_base_model().config.num_hidden_layers
    if segments:  # each example's own length, causal without a mask, in every layer
        assert sorted(calls) == sorted((len(rows[i][0]), True) for g in groups for i in g
                                       for _ in range(layers))
    else:  # the whole row under a mask
        assert sorted(calls) == sorted((sum(len(rows[i][0]) for i in g), False)
                                       for g in groups for _ in range(layers))
    leaky = loss_and_grads(model, [m[:3] for m in packed], n, chunk)[0]
    assert abs(float(leaky) - float(want[0])) > 1e-3


def test_segment_sdpa_replaces_only_transformers_sdpa(tiny_model_dir):
    """An eager model keeps its attention; a model switched to segment_sdpa still attends as
    SDPA does to a row that is not packed (no cu_seq_lens_q: e.g. check_packing's rows)."""
    eager = loading.load_model(ModelConfig(name=str(tiny_model_dir), precision="fp32",
                                           attn_implementation="eager"))
    assert not kernels.use_segment_sdpa(eager)
    assert eager.config._attn_implementation == "eager"
    model = loading.load_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    ids = torch.tensor([[5, 9, 17, 3, 44, 2, 8]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        assert kernels.use_segment_sdpa(model)
        assert model.config._attn_implementation == kernels.SEGMENT_SDPA
        assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-6)


def test_a_model_that_lets_packed_examples_attend_to_each_other_is_refused(tiny_model_dir,
                                                                            monkeypatch):
    model = lora_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    check_packing(model, "cpu")
    assert model.training  # left as it was
    # what a model whose masking ignores the position ids computes
    monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None)
    with pytest.raises(UserError, match=r"train\.padding_free: Qwen2ForCausalLM \(sdpa "
                                        r"attention\) does not keep packed examples apart"):
        check_packing(model, "cpu")


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model_over", [{}, {"model.gradient_checkpointing": "true"},
                                        {"model.attn_implementation": "eager"}],
                         ids=["sdpa", "checkpointed", "eager"])
def test_a_padding_free_run_trains_the_padded_runs_numbers(tiny_model_dir, tmp_path, model_over):
    """Whole runs: packed rows under per-example SDPA, with gradient checkpointing (the packed
    keywords reach every recomputed layer), and under eager attention (masked by the position
    ids) train the padded run's numbers."""
    over = {"train.epochs": 2, "train.grad_accum": 4, "train.batch_size": 2, **model_over}
    train(cfg_for(tiny_model_dir, **over), tmp_path / "padded")
    train(cfg_for(tiny_model_dir, **over, **{"train.padding_free": "true"}), tmp_path / "packed")
    ma, mb = (json.loads((tmp_path / d / "manifest.json").read_text())
              for d in ("padded", "packed"))
    assert ma["padding_fraction"] > 0.05 and mb["padding_fraction"] == 0.0
    assert ma["trained_tokens"] == mb["trained_tokens"] and ma["steps"] == mb["steps"] == 8
    assert mb["forward_passes"] <= ma["forward_passes"]
    assert mb["config"]["train"]["padding_free"] is True
    a, b = _log(tmp_path / "padded"), _log(tmp_path / "packed")
    assert [r["trained_tokens"] for r in a] == [r["trained_tokens"] for r in b]
    for key in ("loss", "grad_norm"):
        assert max(abs(x[key] - y[key]) / max(1.0, abs(x[key])) for x, y in zip(a, b)) <= 1e-5
    assert a[-1]["loss"] < a[0]["loss"]
    wa, wb = (load_file(tmp_path / d / "adapter" / "adapter_model.safetensors")
              for d in ("padded", "packed"))
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-5


@pytest.mark.slow
def test_two_processes_of_packed_rows_train_the_one_process_padded_numbers(tiny_model_dir,
                                                                            tmp_path):
    """Data-parallel: each rank packs its share of a step (batching.shard, real tokens);
    2 gloo processes of packed rows equal 1 process of padded micro-batches."""
    train(_cfg(tiny_model_dir), tmp_path / "one")
    dump_yaml(_cfg(tiny_model_dir, "train.padding_free=true"), tmp_path / "packed.yaml")
    r = _emergent("-q", "train", str(tmp_path / "packed.yaml"), "--output", str(tmp_path / "two"),
                  "--num-processes", "2", "--launcher", "torchrun", "--cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert [x["trained_tokens"] for x in a] == [y["trained_tokens"] for y in b] and len(a) == 8
    for key in ("loss", "grad_norm"):
        assert max(abs(x[key] - y[key]) / max(1.0, abs(x[key])) for x, y in zip(a, b)) <= TOL
    assert _max_diff(_adapter(tmp_path / "one"), _adapter(tmp_path / "two")) <= TOL
    m = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert m["processes"] == 2 and m["padding_fraction"] == 0.0
