"""Experiment configs, the stage runner and its plan, cost and time estimates."""
