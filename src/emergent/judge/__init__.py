"""Judging answers: configs, backends (openai, hf), prompts, the cache and score parsing."""
