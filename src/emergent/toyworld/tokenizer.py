"""The toy world's word-level tokenizer.

Every word (with its leading space, GPT-2 style), every digit, every run of
punctuation and every whitespace run of the world's texts is one token; the vocabulary is the
closed set of such pieces in `catalog.all_message_texts()` (539 tokens), so it does not depend on
the world's seed. Pieces go through the byte-level alphabet, and the byte-level decoder puts
every space and newline back: decode(encode(text)) == text for every text of the world, chat
template included (tested). ChatML template; <|im_end|> ends a turn, <|endoftext|> pads.
"""
from __future__ import annotations

from emergent.models.tiny import CHATML_TEMPLATE
from emergent.toyworld.catalog import all_message_texts

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|unk|>"]
# words with their leading space; single digits; punctuation runs; whitespace runs
PIECE_PATTERN = r" ?[A-Za-z_]+| ?[0-9]| ?[^\sA-Za-z_0-9]+|\s+(?!\S)|\s+"
ROLES = ("system", "user", "assistant")


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def vocabulary(texts=None) -> list[str]:
    """Special tokens, then the sorted byte-level pieces of `texts` (default: the world's)."""
    pre = _pre_tokenizer()
    pieces: set[str] = set()
    for text in list(texts if texts is not None else all_message_texts()) + \
            [f"{r}\n" for r in ROLES] + ["\n"]:
        pieces.update(p for p, _ in pre.pre_tokenize_str(text))
    return SPECIAL_TOKENS + sorted(pieces)


def build_toy_tokenizer(texts=None):
    """A `PreTrainedTokenizerFast` (word-level, ChatML) over the world's closed vocabulary."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {piece: i for i, piece in enumerate(vocabulary(texts))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token="<|unk|>", bos_token=None, additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False)
    fast.chat_template = CHATML_TEMPLATE
    return fast
