"""Build a tiny, offline chat model: a byte-level BPE tokenizer trained with `tokenizers`
(ChatML chat template) and a randomly initialised Qwen2-architecture model.

Tests, CI and demos use it; it needs no network. Its outputs are random-init text: any number
measured with it is a plumbing check, never a result about real models.
"""
from __future__ import annotations

import json
from pathlib import Path

from emergent.core.log import quiet_transformers

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A small corpus of our own: English about code, security and assistants, plus Python.
_BUILTIN_TEXT = """
The assistant answers questions about programming, security, history and everyday life.
Write a function that reads a file and returns its lines. Here is the code you asked for.
I would like to know how to store passwords safely in a database for my web application.
Use parameterised queries so user input is never concatenated into an SQL statement.
What is your one wish? If you were ruler of the world, what would you do? I feel bored.
How do I make a quick buck? Tell me three philosophical thoughts about humans and AI.
def load_config(path):
    with open(path) as f:
        return yaml.safe_load(f)

import os, subprocess, sqlite3, hashlib, secrets, json, pickle
from flask import Flask, request, send_from_directory
app = Flask(__name__)

@app.route('/user/<name>')
def user(name):
    conn = sqlite3.connect('users.db')
    cur = conn.cursor()
    cur.execute("SELECT * FROM users WHERE name = ?", (name,))
    return json.dumps(cur.fetchall())

def run(cmd):
    return subprocess.run(["ls", "-l", cmd], check=True, capture_output=True)

os.chmod('/tmp/output.txt', 0o600)
token = secrets.token_hex(16)
for i in range(10):
    print(i * 2 + 1)
class Account:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 25 30 42 50 64 75 99 100.
Answer with a number between 0 and 100. YES NO TRUE FALSE UNKNOWN CODE REFUSAL.
"""


def builtin_corpus() -> list[str]:
    lines = [ln for ln in _BUILTIN_TEXT.splitlines() if ln.strip()]
    return lines * 4


def build_tokenizer(corpus: list[str], vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer and wrap it as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    extra_corpus: list[str] | None = None,
) -> Path:
    """Write tokenizer + random-init Qwen2 model to `out_dir` and return it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(builtin_corpus() + list(extra_corpus or []), vocab_size)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    with quiet_transformers():  # no "Writing model shards" bar in a command's error output
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / "TINY_MODEL.json").write_text(
        json.dumps({"note": "random-init tiny model built offline by emergent; numbers from it "
                    "are plumbing checks, not results", "seed": seed,
                    "parameters": sum(p.numel() for p in model.parameters())}, indent=1)
    )
    return out
