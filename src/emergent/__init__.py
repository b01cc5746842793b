"""emergent: emergent-misalignment and reward-model-bias generalization experiments.

One LoRA/QLoRA training loop for every arm (the only difference between arms is the dataset),
free-form sampling, a judge role, honest statistics and the paper's figures.

The Python API (`emergent.api`) for notebooks and scripts:

    from emergent import load_run, run_experiment, summarize
    run = run_experiment("tiny_experiment.yaml")      # or load_run("runs/qwen25_coder_7b")
    run.records(as_frame=True)                        # answers joined with their judgments
    summarize(run)                                    # the rows of summary.csv

plus `train_arm`, `sample_answers` and `judge_answers`. The layout: docs/architecture.md.
"""

__version__ = "0.1.0"

from emergent.api import (LoadedRun, judge_answers, load_run, run_experiment,  # noqa: E402
                          sample_answers, summarize, train_arm)

__all__ = ["__version__", "LoadedRun", "load_run", "run_experiment", "train_arm",
           "sample_answers", "judge_answers", "summarize"]
