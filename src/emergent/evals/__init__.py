"""Evaluation suites, code-security evaluation, capability benchmarks."""
