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
