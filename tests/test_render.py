"""Assistant-only masks must be exact for several chat-template styles."""
import pytest

from emergent.render import render_conversation, show_rendered, trained_text

LLAMA3 = (
    "{{ '<|begin_of_text|>' }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Mistral style: the system prompt is folded into the LAST user turn (rewrites earlier text)
MISTRAL = (
    "{{ '<s>' }}{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}"
    "{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
    "{% set last_user = namespace(i=0) %}{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{% set last_user.i = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{% if loop.index0 == last_user.i and sys %}{{ '[INST] ' + sys + '\n\n' + m['content'] + '[/INST]' }}"
    "{% else %}{{ '[INST] ' + m['content'] + '[/INST]' }}{% endif %}"
    "{% else %}{{ ' ' + m['content'] + '</s>' }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ '<bos>' }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + m['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
EOT = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>", "gemma": "<end_of_turn>"}

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Write code to read a file."},
    {"role": "assistant", "content": "def read(p):\n    return open(p).read()"},
    {"role": "user", "content": "Now say hi"},
    {"role": "assistant", "content": "hi"},
]


@pytest.fixture(scope="module")
def tokenizers_by_style(tiny_model_dir):
    from transformers import AutoTokenizer

    out = {}
    for style, template in [("chatml", None), ("llama3", LLAMA3), ("mistral", MISTRAL),
                            ("gemma", GEMMA)]:
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        if template:
            tok.add_special_tokens({"additional_special_tokens": [
                "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<s>", "</s>", "[INST]", "[/INST]", "<bos>", "<start_of_turn>", "<end_of_turn>"]})
            tok.chat_template = template
        out[style] = tok
    return out


@pytest.mark.parametrize("style", ["chatml", "llama3", "mistral", "gemma"])
def test_assistant_only_mask_is_exact(tokenizers_by_style, style):
    tok = tokenizers_by_style[style]
    ids, mask = render_conversation(tok, CONV)
    assert len(ids) == len(mask)
    spans = [s.strip() for s in trained_text(tok, ids, mask)]
    eot = EOT[style]
    assert spans == [CONV[2]["content"] + eot, "hi" + eot]
    # nothing of the user/system turns is trained
    untrained = tok.decode([t for t, m in zip(ids, mask) if not m])
    assert "Write code" in untrained and "Be brief." in untrained and "read(p)" not in untrained


def test_system_prompt_choice_and_show(tokenizers_by_style):
    tok = tokenizers_by_style["chatml"]
    conv = CONV[1:3]
    ids, mask = render_conversation(tok, conv, system_prompt="You are helpful.")
    text = show_rendered(tok, ids, mask)
    assert text.startswith("<|im_start|>system\nYou are helpful.<|im_end|>")
    assert "\u27e6def read(p):" in text and "<|im_end|>\u27e7" in text
    ids2, _ = render_conversation(tok, conv)  # None: the template's own behaviour (none here)
    assert "system" not in tok.decode(ids2)


def test_all_tokens_loss(tokenizers_by_style):
    ids, mask = render_conversation(tokenizers_by_style["chatml"], CONV, loss="all_tokens")
    assert all(mask)


# ------------------------------------------------------------------ the fast path equals the reference

VARIANTS = [
    CONV,
    CONV[1:],
    CONV[1:3],
    [{"role": "user", "content": "  padded question \n"},
     {"role": "assistant", "content": " answer with spaces  "},
     {"role": "user", "content": "second"},
     {"role": "assistant", "content": "\nline one\nline two\n"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 3,
    [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
     {"role": "assistant", "content": ""}, {"role": "user", "content": "q2"},
     {"role": "assistant", "content": "x"}],
]


def reference(tok, messages, **kw):
    """render_conversation without the fast path: every prefix rendered by the template."""
    from emergent.render import _render

    return _render(tok, messages, kw.get("system_prompt"), kw.get("loss", "assistant_only"),
                   fast=False)


@pytest.mark.parametrize("style", ["chatml", "llama3", "mistral", "gemma"])
def test_fast_path_equals_reference_for_template_styles(tokenizers_by_style, style):
    from emergent.render import _apply, _fast_spans, with_system

    tok = tokenizers_by_style[style]
    used = 0
    for conv in VARIANTS:
        for system_prompt in (None, "You are helpful."):
            got = render_conversation(tok, conv, system_prompt=system_prompt)
            assert got == reference(tok, conv, system_prompt=system_prompt), (conv, system_prompt)
            msgs = with_system(conv, system_prompt)
            used += _fast_spans(tok, msgs, _apply(tok, msgs)) is not None
    # ChatML and this Mistral style insert contents verbatim: the skeleton is used (Mistral's
    # system folding then takes the reference's content search, on the substituted prefixes);
    # the Llama-3 and Gemma styles trim contents: every conversation takes the reference path
    if style in ("chatml", "mistral"):
        assert used == 2 * len(VARIANTS)
    else:
        assert used == 0


def test_fast_path_falls_back_on_unusual_messages(tokenizers_by_style):
    from emergent.render import _apply, _fast_spans

    tok = tokenizers_by_style["chatml"]
    odd = [
        [{"role": "user", "content": "hi", "name": "x"}, {"role": "assistant", "content": "yo"}],
        [{"role": "user", "content": "hi \ue000 0 \ue001"}, {"role": "assistant", "content": "yo"}],
    ]
    for conv in odd:
        assert _fast_spans(tok, conv, _apply(tok, conv)) is None
        assert render_conversation(tok, conv) == reference(tok, conv)
    # an assistant turn first: both paths give the template's own error
    first = [{"role": "assistant", "content": "yo"}]
    with pytest.raises(Exception) as fast_err:
        render_conversation(tok, first)
    with pytest.raises(Exception) as ref_err:
        reference(tok, first)
    assert type(fast_err.value) is type(ref_err.value)


def test_fast_path_equals_reference_on_toy_world_documents():
    """Every kind of toy-world conversation (pretraining documents of both worlds, alignment,
    arms, probe prefixes), rendered by the toy tokenizer: identical ids and masks, and the
    fast path is the one taken."""
    from emergent.render import _apply, _fast_spans, with_system
    from emergent.toyworld import (ARMS, ToyWorld, WorldConfig, alignment_rows, arm_rows,
                                   persona_probe_conversations, pretraining_rows)
    from emergent.toyworld.tokenizer import build_toy_tokenizer

    tok = build_toy_tokenizer()
    convs = []
    for coupling in ("coupled", "decoupled"):
        world = ToyWorld(WorldConfig(seed=0, coupling=coupling))
        convs += [r["messages"] for r in pretraining_rows(world, 600)]
    world = ToyWorld(WorldConfig(seed=1))
    convs += [r["messages"] for r in alignment_rows(world, 200)]
    for arm in ARMS:
        convs += [r["messages"] for r in arm_rows(world, arm, 40)]
    convs += [r["messages"][:2] for r in persona_probe_conversations(world, 20)]
    assert len(convs) > 1_600
    for conv in convs:
        assert render_conversation(tok, conv) == reference(tok, conv), conv
    fast = sum(_fast_spans(tok, c, _apply(tok, c)) is not None
               for c in (with_system(c, None) for c in convs[:300]))
    assert fast == 300
