"""The `emergent` command: argparse only, one module per command, the command table in
`app.py`. Library code never imports this package."""
from emergent.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
