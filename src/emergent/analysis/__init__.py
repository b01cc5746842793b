"""Pure metrics (rates, intervals, tests) and the misalignment direction."""
