"""emergent: emergent-misalignment and reward-model-bias generalization experiments.

One LoRA/QLoRA training loop for every arm (the only difference between arms is the dataset),
free-form sampling, a judge role, honest statistics and the paper's figures.
"""

__version__ = "0.1.0"
