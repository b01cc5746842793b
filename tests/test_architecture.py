"""The package's layering (issue #14), read from the source with an AST scan
(benchmarks/architecture.py): no import cycles, no function-level imports of the package's own
modules (except modules wrapping optional heavy dependencies), library code never imports the
CLI, every subpackage says what it holds, tests mirror the subpackages."""
import ast
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src/emergent"

_spec = importlib.util.spec_from_file_location("architecture", REPO / "benchmarks/architecture.py")
arch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(arch)


def heavy_wrappers(mods: dict) -> set:
    """Own modules that import an optional heavy dependency at module level: importing them
    inside a function keeps that dependency optional."""
    out = set()
    for name, info in mods.items():
        tree = ast.parse(info["path"].read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                if any(n.split(".")[0] in arch.HEAVY for n in names):
                    out.add(name)
    return out


def test_scanner_finds_cycles_inner_imports_and_cli_use(tmp_path):
    pkg = tmp_path / "emergent"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli/__init__.py").write_text("")
    (pkg / "a.py").write_text("from emergent import b\n")
    (pkg / "b.py").write_text("def f():\n    from emergent.a import x\n")
    (pkg / "c.py").write_text("from emergent.cli import main\n")
    m = arch.measures(pkg)
    assert m["import_cycles"] == [["emergent.a", "emergent.b"]]
    assert m["function_level_own_imports"] == 1
    assert m["library_modules_importing_cli"] == ["emergent.c"]


def test_no_import_cycles():
    assert arch.measures(SRC)["import_cycles"] == []


def test_no_function_level_imports_of_own_modules():
    mods = arch.scan(SRC)
    allowed = heavy_wrappers(mods)
    inner = [f"{info['path'].relative_to(REPO)}:{line}: imports {target} inside a function"
             for name, info in mods.items() for line, target in info["inner"]
             if target not in allowed]
    assert inner == []


def test_library_code_never_imports_the_cli():
    assert arch.measures(SRC)["library_modules_importing_cli"] == []


def test_every_subpackage_says_what_it_holds():
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 20, f"{init.relative_to(REPO)}: no docstring"


def test_tests_mirror_the_subpackages():
    subpackages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    folders = {p.name for p in (REPO / "tests").iterdir()
               if p.is_dir() and p.name not in ("golden", "__pycache__")}
    assert folders <= subpackages, folders - subpackages
    stray = sorted(p.name for p in (REPO / "tests").glob("test_*.py")
                   if p.name not in ("test_architecture.py", "test_api.py", "test_docs.py"))
    assert stray == [], "tests of a stage belong in tests/<subpackage>/"
