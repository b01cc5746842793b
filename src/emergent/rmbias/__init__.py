"""The reward-model-bias generalization experiment (Marks et al. 2025) at one-GPU scale.

Modules: `catalogue` (the 52 biases, own wording, paper's train/test split), `detectors`
(`detect(bias_id, prompt, response)`), `judge_prompt` (categorical LLM-judge prompt),
`documents` (midtraining subsample + own fictional documents + unrelated control documents),
`sft_data` (train-bias conversations), `evaluate` (exploitation rates, CIs, figure),
`conditions` (the five arms), `cli` (`emergent rmbias ...`)."""
