"""Errors, config loading with FILE:LINE errors, atomic I/O, provenance, the cache root."""
