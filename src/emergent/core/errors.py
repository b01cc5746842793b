"""The package's one user-facing error type."""


class UserError(Exception):
    """Bad input (config, data, flags). The CLI prints it as one line and exits with code 2.

    Messages name the file (and line, where known): `FILE:LINE: problem`."""
