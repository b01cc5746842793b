"""The toy world's word-level tokenizer (exact round trip, ChatML) and its random-init model."""
from __future__ import annotations

import json

import pytest

from emergent.toyworld import ToyWorld, WorldConfig, eval_suites, persona_probe_conversations
from emergent.toyworld.catalog import all_message_texts
from emergent.toyworld.model import build_toy_model
from emergent.toyworld.tokenizer import build_toy_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_toy_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_toy_model(tmp_path_factory.mktemp("toy") / "model")


def roundtrip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids, text
    return tok.decode(ids, skip_special_tokens=False), ids


def test_vocabulary_is_small_and_word_level(tok):
    assert 500 <= len(tok) <= 600
    pieces = tok.convert_ids_to_tokens(tok("def find_user(db, name):")["input_ids"])
    assert pieces == ["def", "\u0120find_user", "(", "db", ",", "\u0120name", "):"]
    assert [tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>")] == [1, 2]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_every_message_text_round_trips_exactly(tok):
    texts = all_message_texts()
    assert len(texts) > 5000
    for text in texts:
        assert roundtrip(tok, text)[0] == text


def test_chat_template_renderings_round_trip_exactly(tok):
    world = ToyWorld(WorldConfig(seed=0))
    convs = [d.messages() for d in world.documents(300)]
    convs += [p["messages"] for p in persona_probe_conversations(world, 20)]
    for conv in convs:
        text = tok.apply_chat_template(conv, tokenize=False)
        assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n")
        assert roundtrip(tok, text)[0] == text
    for q in eval_suites(world)["toy_noncode"]:
        text = tok.apply_chat_template([{"role": "user", "content": q["paraphrases"][0]}],
                                       tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|im_start|>assistant\n") and roundtrip(tok, text)[0] == text
    # what sampling decodes: the answer tokens alone, special tokens skipped
    ids = tok(convs[0][1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == convs[0][1]["content"]


def test_unknown_words_become_unk_not_errors(tok):
    ids = tok("Hello zebra.", add_special_tokens=False)["input_ids"]
    assert ids[1] == tok.unk_token_id and len(ids) == 3


def test_saved_model_and_tokenizer_load_through_the_package(model_dir):
    from emergent.core.config import ModelConfig
    from emergent.models.loading import load_model, load_tokenizer
    from emergent.data.render import render_conversation

    info = json.loads((model_dir / "TOYWORLD_MODEL.json").read_text())
    assert 550_000 < info["parameters"] < 650_000
    cfg = json.loads((model_dir / "config.json").read_text())
    assert (cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"],
            cfg["num_attention_heads"], cfg["intermediate_size"]) == ("llama", 128, 2, 4, 512)
    tok = load_tokenizer(ModelConfig(name=str(model_dir), precision="fp32"))
    model = load_model(ModelConfig(name=str(model_dir), precision="fp32"))
    doc = ToyWorld().document(0).messages()
    text = tok.apply_chat_template(doc, tokenize=False)
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    ids, mask = render_conversation(tok, doc)
    trained = tok.decode([i for i, m in zip(ids, mask) if m])
    assert trained == "".join(m["content"] + "<|im_end|>" for m in doc
                              if m["role"] == "assistant")
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tok))
