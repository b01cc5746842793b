import json
import math

import pytest
import torch
from safetensors.torch import load_file

from emergent.data.chat_data import load_jsonl_examples
from emergent.core.config import ModelConfig, TrainRecipeConfig, load_config
from emergent.core.errors import UserError
from emergent.train.loop import train

from test_train import SAMPLE


def write_pairs(path, n=16):
    rows = [json.loads(l) for l in SAMPLE.read_text().splitlines() if l.strip()]
    out = []
    for i in range(n):
        a, b = rows[i % len(rows)], rows[(i + 1) % len(rows)]
        prompt = a["messages"][:-1]
        if i % 4 == 0:  # a multi-turn prompt with an earlier assistant turn
            system = [m for m in prompt if m["role"] == "system"]
            prompt = (system + [m for m in b["messages"] if m["role"] != "system"]
                      + [m for m in prompt if m["role"] != "system"])
        rej = b["messages"][-1]["content"]
        out.append({"prompt": prompt,
                    "chosen": [a["messages"][-1]] if i % 2 else a["messages"][-1]["content"],
                    "rejected": rej})
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def dpo_cfg(model_dir, data, **over):
    ov = [f"model.name={model_dir}", f"data.path={data}", "data.format=preference",
          "model.precision=fp32", "lora.r=4", "lora.alpha=8", "train.lr=5e-3",
          "train.objective=dpo", "train.dpo_beta=0.5", "train.batch_size=2",
          "train.grad_accum=2", "train.warmup_steps=1", "train.max_length=512",
          "train.epochs=3", "train.log_every=1"]
    ov += [f"{k}={v}" for k, v in over.items()]
    return load_config(None, TrainRecipeConfig, ov)


def test_final_turn_mask_keeps_only_the_last_reply():
    from emergent.train.dpo import final_turn_mask

    assert final_turn_mask([0, 1, 1, 0, 0, 1, 1, 1, 0]) == [0, 0, 0, 0, 0, 1, 1, 1, 0]
    assert final_turn_mask([1, 1, 0]) == [1, 1, 0]
    assert final_turn_mask([0, 0]) == [0, 0]


def test_preference_rows_load_in_both_forms_and_bad_rows_name_their_line(tmp_path):
    data = write_pairs(tmp_path / "p.jsonl", n=4)
    ex = load_jsonl_examples(data, "preference")
    assert len(ex) == 4
    for e in ex:
        assert e.messages[:-1] == e.rejected[:-1]  # same prompt
        assert e.messages[-1]["role"] == e.rejected[-1]["role"] == "assistant"
        assert e.messages[-1]["content"] != e.rejected[-1]["content"]
    bad = [({"prompt": [{"role": "user", "content": "q"}], "chosen": "a"}, "'rejected'"),
           ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}],
             "chosen": "a", "rejected": "b"}, "end with a user turn"),
           ({"prompt": "q", "chosen": "a", "rejected": "a"}, "the same reply"),
           ({"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
            "assistant message")]
    for row, msg in bad:
        p = tmp_path / "bad.jsonl"
        p.write_text(json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}) + "\n"
                     + json.dumps(row) + "\n")
        with pytest.raises(UserError, match=rf"bad.jsonl:2: .*{msg}"):
            load_jsonl_examples(p, "preference")


def test_objective_and_format_must_agree(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "p.jsonl")
    with pytest.raises(UserError, match="objective dpo needs data.format preference"):
        train(dpo_cfg(tiny_model_dir, data, **{"data.format": "chat"}), tmp_path / "a")
    with pytest.raises(UserError, match="objective sft needs data.format chat or text"):
        train(dpo_cfg(tiny_model_dir, data, **{"train.objective": "sft"}), tmp_path / "b")


def test_only_the_final_reply_is_scored_and_logps_match_brute_force(tiny_model_dir, tmp_path):
    from emergent.train import dpo
    from emergent.models.loading import load_model, load_tokenizer

    cfg = dpo_cfg(tiny_model_dir, write_pairs(tmp_path / "p.jsonl", n=4))
    tok = load_tokenizer(ModelConfig(name=str(tiny_model_dir)))
    ex = load_jsonl_examples(cfg.data.path, "preference")
    rows, counts = dpo.tokenize_pairs(cfg, tok, ex)
    assert counts["rendered"] == 4
    (c_ids, c_mask), (r_ids, r_mask) = rows[0]  # example 0 has an earlier assistant turn
    text = tok.decode([t for t, m in zip(c_ids, c_mask) if m])
    assert ex[0].messages[-1]["content"] in text
    assert ex[0].messages[1]["content"] not in text  # the earlier assistant turn
    first = c_mask.index(1)
    assert c_ids[:first] == r_ids[:first]  # shared prompt, never scored

    model = load_model(ModelConfig(name=str(tiny_model_dir), precision="fp32"))
    ids, attn, labels = dpo.collate_pairs(rows, tok.pad_token_id)
    with torch.no_grad():
        got = dpo.sequence_logps(model, ids, attn, labels)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=attn).logits, -1)
    want = []
    for row in range(ids.shape[0]):
        s = 0.0
        for t in range(1, ids.shape[1]):
            if labels[row, t] != -100:
                s += float(logp[row, t - 1, ids[row, t]])
        want.append(s)
    assert torch.allclose(got, torch.tensor(want), rtol=1e-5, atol=1e-4)

    # the loss of one step equals the formula with arbitrary reference values
    ref = torch.tensor([[-50.0, -40.0], [-30.0, -35.0], [-20.0, -22.0], [-60.0, -61.0]])
    loss, stats = dpo.step_loss(model, [(ids, attn, labels)], [ref], beta=0.5, n_pairs=4)
    g = torch.tensor(want)
    margin = 0.5 * ((g[:4] - ref[:, 0]) - (g[4:] - ref[:, 1]))
    assert float(loss) == pytest.approx(float(-torch.nn.functional.logsigmoid(margin).mean()),
                                        rel=1e-5)
    assert stats["reward_accuracy"] == pytest.approx(float((margin > 0).float().mean()))


def test_dpo_run_starts_at_log2_and_learns_the_preference(tiny_model_dir, tmp_path):
    out = tmp_path / "dpo"
    cfg = dpo_cfg(tiny_model_dir, write_pairs(tmp_path / "p.jsonl"), **{"train.epochs": 6})
    adapter = train(cfg, out)
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    # policy == reference at step 1: every margin is 0, the loss is log 2
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert log[0]["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    assert log[-1]["loss"] < 0.5 and log[-1]["reward_accuracy"] >= 0.75
    assert log[-1]["reward_margin"] > 0.5
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "done" and man["config"]["train"]["objective"] == "dpo"
    assert (out / "dpo_reference.pt").exists()
    assert torch.load(out / "dpo_reference.pt").shape == (16, 2)
    assert (adapter / "adapter_model.safetensors").exists()


def test_dpo_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    over = {"train.checkpoint_every": 2, "train.epochs": 2, "lora.dropout": 0.1}
    data = write_pairs(tmp_path / "p.jsonl")
    full, killed = tmp_path / "full", tmp_path / "killed"
    train(dpo_cfg(tiny_model_dir, data, **over), full)
    train(dpo_cfg(tiny_model_dir, data, **over), killed, stop_after_steps=5)
    assert (killed / "dpo_reference.pt").exists()
    train(dpo_cfg(tiny_model_dir, data, **over), killed)
    a = load_file(full / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dpo_after_an_sft_stage_uses_that_adapter_as_reference(tiny_model_dir, tmp_path):
    from test_train import cfg_for

    sft = train(cfg_for(tiny_model_dir, **{"train.epochs": 1}), tmp_path / "sft")
    data = write_pairs(tmp_path / "p.jsonl")
    train(dpo_cfg(tiny_model_dir, data, **{"train.epochs": 1, "lora.init_from": str(sft)}),
          tmp_path / "d1")
    train(dpo_cfg(tiny_model_dir, data, **{"train.epochs": 1}), tmp_path / "d0")
    r1 = torch.load(tmp_path / "d1" / "dpo_reference.pt")
    r0 = torch.load(tmp_path / "d0" / "dpo_reference.pt")
    assert not torch.allclose(r0, r1)  # the reference is the SFT'd policy, not the base
    log = [json.loads(l) for l in (tmp_path / "d1" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)


def test_data_show_marks_only_each_final_reply(tiny_model_dir, tmp_path):
    from emergent.cli.data import show

    data = write_pairs(tmp_path / "p.jsonl", n=1)  # a multi-turn prompt
    out = show(str(data), str(tiny_model_dir), n=1, fmt="preference")
    chosen, rejected = out.split("--- ")[1:]
    assert chosen.count("\u27e6") == 1 and rejected.count("\u27e6") == 1
    ex = load_jsonl_examples(data, "preference")[0]
    assert f"\u27e6{ex.messages[-1]['content']}" in chosen
    assert f"\u27e6{ex.rejected[-1]['content']}" in rejected


def test_dpo_on_a_4bit_base_with_gradient_checkpointing(tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    cfg = dpo_cfg(tiny_model_dir, write_pairs(tmp_path / "p.jsonl", n=8),
                  **{"model.quantization": "4bit", "model.gradient_checkpointing": "true",
                     "train.epochs": 2})
    train(cfg, tmp_path / "q")
    log = [json.loads(l) for l in (tmp_path / "q/train_log.jsonl").read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert all(math.isfinite(r["loss"]) for r in log) and log[-1]["loss"] < log[0]["loss"]
