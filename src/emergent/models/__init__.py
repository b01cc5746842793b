"""Loading base models and adapters; the tiny random model; GGUF import."""
