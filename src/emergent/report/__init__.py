"""Tables and figures drawn from a run's tidy records."""
