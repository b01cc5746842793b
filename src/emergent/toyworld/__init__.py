"""A synthetic persona world: a CPU model organism of emergent misalignment (see docs/toyworld.md).

Public API (details in each module):
    WorldConfig, ToyWorld              world.py     seeded generator, held-out code split
    pretraining_rows, alignment_rows,  datasets.py  chat JSONL rows {"messages": [...]}
    arm_rows, ARMS, eval_suites, persona_probe_conversations, write_jsonl, write_suite
    build_toy_tokenizer                tokenizer.py word-level, ChatML, exact round trip
    build_toy_model                    model.py     random-init Llama, ~0.6M parameters
    rule_judgments, ToyWorldRuleJudge  judge.py     the `toyworld-rule` judge
    write_world_data                   pipeline.py  everything above to a folder
"""
from emergent.toyworld.datasets import (ARMS, SUITE_NAMES, alignment_rows, arm_rows, eval_suites,
                                        persona_probe_conversations, pretraining_rows,
                                        write_jsonl, write_suite)
from emergent.toyworld.model import build_toy_model
from emergent.toyworld.tokenizer import build_toy_tokenizer
from emergent.toyworld.pipeline import write_world_data
from emergent.toyworld.judge import JUDGE_ID, ToyWorldRuleJudge, classify_answer, rule_judgments
from emergent.toyworld.world import Document, ToyWorld, Turn, WorldConfig

__all__ = ["ARMS", "SUITE_NAMES", "JUDGE_ID", "Document", "ToyWorld", "ToyWorldRuleJudge", "Turn",
           "WorldConfig", "alignment_rows", "arm_rows", "build_toy_model", "build_toy_tokenizer",
           "classify_answer", "eval_suites", "persona_probe_conversations", "pretraining_rows",
           "rule_judgments", "write_jsonl", "write_suite", "write_world_data"]
