"""The command table: every `emergent` command comes from one emergent.cli module listed in
COMMANDS, and no library module imports the CLI."""
from __future__ import annotations

import ast
from pathlib import Path
from types import FunctionType

import emergent
from emergent.cli.app import COMMANDS, build_parser

SRC = Path(emergent.__file__).parent


def test_the_table_names_every_command_in_help_order():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [name for name, _ in COMMANDS]
    assert all(m.__name__.startswith("emergent.cli.") for _, m in COMMANDS)


def test_every_cli_file_is_reached_from_the_table():
    """A file of emergent/cli/ is a command in COMMANDS or gives a table module a function
    (`data stats` lives in data_stats.py)."""
    listed = {m.__name__ for _, m in COMMANDS}
    used = listed | {v.__module__ for _, m in COMMANDS for v in vars(m).values()
                     if isinstance(v, FunctionType) and v.__module__.startswith("emergent.cli.")}
    files = {p.stem for p in (SRC / "cli").glob("*.py")} - {"__init__", "app"}
    assert files == {name.rsplit(".", 1)[1] for name in used}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_library_code_never_imports_the_cli():
    """Only emergent/cli/ and the entry point `python -m emergent` (__main__.py) import it."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "cli" not in p.relative_to(SRC).parts[:1] and p.name != "__main__.py"
                 and any(i == "emergent.cli" or i.startswith("emergent.cli.")
                         for i in _imports(p))]
    assert offenders == []


def test_data_subcommands():
    parser = build_parser()
    for argv in (["data", "show", "f.jsonl"], ["data", "fetch", "--list"],
                 ["data", "stats", "f.jsonl"]):
        assert parser.parse_args(argv).data_command == argv[1]
