"""Training: the one loop (loop), objectives behind one interface (objectives: sft, dpo), rows and
the overlong policy (rows), batching and the steps formula (batching), checkpoints, chunked token
log-probabilities (token_logps) and attention-kernel choice (kernels)."""
