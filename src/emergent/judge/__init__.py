"""Judging answers: `base` (the `Judge` protocol, `JudgeConfig`, the backend registry and
`make_judge`), `prompts` (metric prompts), `runner` (judging a table into judgments.jsonl), the
backends `openai_api` and `hf` (the toy world's rule judge is emergent.toyworld.judge), `cache`
(on-disk responses) and `scoring` (distributions to scores)."""
