"""Assistant-only masks must be exact for several chat-template styles."""
import pytest

from emergent.data.render import render_conversation, show_rendered, trained_text

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
    from emergent.data.render import _render

    return _render(tok, messages, kw.get("system_prompt"), kw.get("loss", "assistant_only"),
                   fast=False)


@pytest.mark.parametrize("style", ["chatml", "llama3", "mistral", "gemma"])
def test_fast_path_equals_reference_for_template_styles(tokenizers_by_style, style):
    from emergent.data.render import _apply, _fast_spans, with_system

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
    from emergent.data.render import _apply, _fast_spans

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
    from emergent.data.render import _apply, _fast_spans, with_system
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


# ------------------------------------------------------------------ behaviours pinned by meaning

def count_template_calls(monkeypatch, tok):
    calls = []
    real = tok.apply_chat_template

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    monkeypatch.setattr(tok, "apply_chat_template", counting)
    return calls


def test_render_conversation_takes_the_fast_path(tokenizers_by_style, monkeypatch):
    """A template that inserts contents verbatim: once a role sequence is known, a new
    conversation of that shape costs one template call (the reference costs 1 + 2 per turn)."""
    import emergent.data.render as render_module

    tok = tokenizers_by_style["chatml"]
    first = [{"role": "user", "content": "first q"}, {"role": "assistant", "content": "a1"},
             {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
             {"role": "user", "content": "q3"}, {"role": "assistant", "content": "a3"}]
    render_conversation(tok, first)
    second = [dict(m, content=m["content"] + " more") for m in first]
    calls = count_template_calls(monkeypatch, tok)
    expected = reference(tok, second)
    n_reference = len(calls)
    assert n_reference == 1 + 2 * 3
    calls.clear()

    def no_reference(*a, **kw):
        raise AssertionError("the reference path was used")
    monkeypatch.setattr(render_module, "assistant_spans", no_reference)
    assert render_conversation(tok, second) == expected
    assert len(calls) == 1


def test_trimming_template_takes_the_reference_path(tokenizers_by_style, monkeypatch):
    tok = tokenizers_by_style["llama3"]
    conv = CONV[1:]
    render_conversation(tok, conv)
    calls = count_template_calls(monkeypatch, tok)
    ids, mask = render_conversation(tok, conv)
    assert len(calls) == 1 + 2 * 2  # the full text and two prefixes per assistant turn
    assert [s.strip() for s in trained_text(tok, ids, mask)] == [
        CONV[2]["content"] + "<|eot_id|>", "hi<|eot_id|>"]


@pytest.mark.parametrize("style", ["chatml", "mistral"])
def test_an_existing_system_prompt_is_kept_and_not_doubled(tokenizers_by_style, style):
    from emergent.data.render import with_system

    tok = tokenizers_by_style[style]
    ids, mask = render_conversation(tok, CONV, system_prompt="Another system prompt.")
    text = tok.decode(ids)
    assert "Be brief." in text and "Another system prompt." not in text
    assert (ids, mask) == render_conversation(tok, CONV)
    assert with_system(CONV, "X") == CONV
    assert with_system(CONV[1:], "X") == [{"role": "system", "content": "X"}] + CONV[1:]
    assert with_system(CONV[1:], None) == CONV[1:]
    assert with_system([], "X") == []
    if style == "chatml":
        assert text.count("<|im_start|>system") == 1


REPEATED = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say ok"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "Again, say ok"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "ok?"}, {"role": "assistant", "content": "ok"}]


@pytest.mark.parametrize("style", ["chatml", "llama3", "mistral", "gemma"])
def test_masks_under_a_repeated_assistant_reply(tokenizers_by_style, style):
    """The same reply three times, and in the user turns: each assistant turn is trained once,
    in place (Mistral folds the system prompt, so its turns are found by the full-text search,
    whose cursor must move past each user turn and each found reply)."""
    tok = tokenizers_by_style[style]
    eot = EOT[style]
    ids, mask = render_conversation(tok, REPEATED)
    assert (ids, mask) == reference(tok, REPEATED)
    assert [s.strip() for s in trained_text(tok, ids, mask)] == ["ok" + eot] * 3
    # each trained span lies between its own user turn and the next one
    text = show_rendered(tok, ids, mask)
    cuts, pos = [], 0
    for user in ("Say ok", "Again, say ok", "ok?"):
        pos = text.index(user, pos) + len(user)
        cuts.append(pos)
    segments = [text[a:b] for a, b in zip(cuts, cuts[1:] + [len(text)])]
    assert [seg.count("\u27e6") for seg in segments] == [1, 1, 1]
    assert "\u27e6" not in text[:cuts[0]]
    assert show_rendered(tok, ids, mask).rstrip().endswith("\u27e7")


def test_full_text_search_finds_each_turn_after_the_previous_one(tokenizers_by_style):
    from emergent.data.render import assistant_spans, with_system

    tok = tokenizers_by_style["mistral"]
    msgs = with_system(REPEATED, None)
    full = tok.apply_chat_template(msgs, tokenize=False)
    spans = assistant_spans(tok, msgs, full)
    assert [full[a:b].strip() for a, b in spans] == ["ok</s>"] * 3
    starts = [a for a, _ in spans]
    assert starts == sorted(starts) and len(set(starts)) == 3
    for (a, _), user in zip(spans, ("Say ok", "Again, say ok", "ok?")):
        assert full.rindex(user, 0, a) + len(user) <= a  # after its own user turn
        assert full[:a].rstrip().endswith(user + "[/INST]")


def test_full_text_search_reports_a_turn_it_cannot_find(tokenizers_by_style):
    """A template that folds the system prompt (so prefixes do not match) and rewrites the
    reply (upper case): the content is nowhere in the text, a one-line UserError."""
    from transformers import AutoTokenizer

    from emergent.core.errors import UserError
    from emergent.data.render import assistant_spans

    tok = tokenizers_by_style["mistral"]
    shouting = AutoTokenizer.from_pretrained(tok.name_or_path)
    shouting.add_special_tokens({"additional_special_tokens": ["<s>", "</s>", "[INST]",
                                                              "[/INST]"]})
    shouting.chat_template = MISTRAL.replace("' ' + m['content'] + '</s>'",
                                             "' ' + m['content'] | upper + '</s>'")
    assert shouting.chat_template != MISTRAL
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "quiet"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "calm"}]
    with pytest.raises(UserError, match="assistant turn 2 not found"):
        render_conversation(shouting, conv)
    with pytest.raises(UserError, match="assistant turn 2 not found"):
        assistant_spans(shouting, conv, shouting.apply_chat_template(conv, tokenize=False))
    # without a system prompt nothing is folded: the prefix renderings locate the turns
    ids, mask = render_conversation(shouting, conv[1:])
    assert [s.strip() for s in trained_text(shouting, ids, mask)] == ["QUIET</s>", "CALM</s>"]


def test_render_text_trains_every_token_and_appends_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    from emergent.data.render import render_text

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "def read(p):\n    return open(p).read()"
    plain = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.bos_token_id is None and tok.eos_token_id is not None
    ids, mask = render_text(tok, text)
    assert ids == plain + [tok.eos_token_id] and mask == [1] * len(ids)
    with_bos = AutoTokenizer.from_pretrained(tiny_model_dir)
    with_bos.bos_token = "<|im_start|>"
    ids, mask = render_text(with_bos, text)
    assert ids == [with_bos.bos_token_id] + plain + [with_bos.eos_token_id]
    assert mask == [0] + [1] * (len(plain) + 1)  # the BOS is context, not a target


def test_show_rendered_and_trained_text_mark_exactly_the_masked_tokens(tokenizers_by_style):
    tok = tokenizers_by_style["chatml"]
    ids, mask = render_conversation(tok, CONV[1:3])
    n = len(ids)
    shown = show_rendered(tok, ids, mask)
    assert shown.replace("\u27e6", "").replace("\u27e7", "") == tok.decode(
        ids, skip_special_tokens=False)
    assert shown.count("\u27e6") == shown.count("\u27e7") == 1
    assert show_rendered(tok, ids, [1] * n) == "\u27e6" + tok.decode(ids) + "\u27e7"
    assert show_rendered(tok, ids, [0] * n) == tok.decode(ids)
    assert trained_text(tok, ids, [0] * n) == []
    assert trained_text(tok, ids, [1] * n) == [tok.decode(ids)]
    alt = [1, 1, 0, 1] + [0] * (n - 5) + [1]
    assert trained_text(tok, ids, alt) == [tok.decode(ids[:2]), tok.decode(ids[3:4]),
                                           tok.decode(ids[-1:])]


# ChatML plus a footer after the last message when there is a system prompt: the rendered
# conversation up to an assistant turn does not end with that turn's end-of-turn text
FOOTER = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% elif messages[0]['role'] == 'system' %}"
          "{{ '[footer]' }}{% endif %}")


def test_text_after_the_last_end_of_turn_is_not_trained(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = FOOTER
    for conv in (CONV, CONV[:3], REPEATED):
        ids, mask = render_conversation(tok, conv)
        assert (ids, mask) == reference(tok, conv)
        replies = [m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant"]
        assert [s.strip() for s in trained_text(tok, ids, mask)] == replies
        assert tok.decode(ids).endswith("[footer]")


def test_masks_are_zeros_and_ones_and_tuples_of_messages_render(tokenizers_by_style):
    from emergent.data.render import with_system

    tok = tokenizers_by_style["chatml"]
    for loss in ("assistant_only", "all_tokens"):
        ids, mask = render_conversation(tok, tuple(CONV[1:]), system_prompt="S", loss=loss)
        assert set(mask) == ({0, 1} if loss == "assistant_only" else {1})
        assert tok.decode(ids).startswith("<|im_start|>system\nS<|im_end|>")
    added = with_system(tuple(CONV[1:]), "S")  # Example.messages is a tuple
    assert added == [{"role": "system", "content": "S"}] + CONV[1:]
    assert with_system(tuple(CONV[1:]), None) == CONV[1:]


def test_full_text_search_moves_past_each_found_reply(tokenizers_by_style):
    """A user turn that repeats the previous reply: the search for it must start after that
    reply, or the next reply's search lands on the user's copy."""
    tok = tokenizers_by_style["mistral"]
    conv = [{"role": "system", "content": "S"},
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "same"},
            {"role": "user", "content": "same"}, {"role": "assistant", "content": "same"},
            {"role": "user", "content": "bye"}, {"role": "assistant", "content": "x"}]
    ids, mask = render_conversation(tok, conv)
    assert (ids, mask) == reference(tok, conv)
    assert [s.strip() for s in trained_text(tok, ids, mask)] == ["same</s>", "same</s>", "x</s>"]


def test_full_text_search_keeps_the_end_of_turn_after_a_reply_ending_in_a_newline(
        tokenizers_by_style):
    """Mistral folds the system prompt into the last user turn, so the first reply is found by
    the full-text search; it ends in a line break, rendered as "...\\n</s>": its end-of-turn
    token (after that blank, not only after spaces) is trained, in both paths."""
    from emergent.data.render import assistant_spans, with_system

    tok = tokenizers_by_style["mistral"]
    conv = [{"role": "system", "content": "S"},
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "line one\n"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "two \n "}]
    full = tok.apply_chat_template(with_system(conv, None), tokenize=False)
    assert "line one\n</s>" in full  # the template puts the eot right after the raw content
    spans = assistant_spans(tok, conv, full)
    assert [full[a:b].strip() for a, b in spans] == ["line one\n</s>", "two \n </s>"]
    ids, mask = render_conversation(tok, conv)
    assert (ids, mask) == reference(tok, conv)
    trained = [s.strip() for s in trained_text(tok, ids, mask)]
    assert len(trained) == 2 and all(s.endswith("</s>") for s in trained), trained
    eot_id = tok.convert_tokens_to_ids("</s>")
    assert [m for i, m in zip(ids, mask) if i == eot_id] == [1, 1]
