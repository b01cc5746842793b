"""Architecture measures of the `emergent` package (issue #14): module count, the longest
function, import cycles, function-level imports of the package's own modules, library modules
that import the CLI. Pure AST reading; prints JSON.

    python benchmarks/architecture.py [SRC_DIR]      # default: src/emergent of this checkout
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

HEAVY = ("vllm", "lm_eval", "bitsandbytes")  # optional heavy deps: function-level is allowed


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node, current: str, is_pkg: bool) -> list[str]:
    """Absolute dotted names an import statement refers to (module, or module.attribute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = current.split(".") if is_pkg else current.split(".")[:-1]
        pkg = pkg[:len(pkg) - node.level + 1]
        base = ".".join(pkg + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names]


def scan(root: Path) -> dict:
    """One entry per module: its own-package imports at module level and inside functions,
    and the length of each function."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(root, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        info = {"path": path, "top": set(), "inner": [], "functions": []}
        _walk(tree, name, path.name == "__init__.py", info, depth=0)
        mods[name] = info
    known = set(mods)
    for info in mods.values():  # `from pkg import module` names the module; else the module
        info["top"] = {_resolve(t, known) for t in info["top"]} - {None}
        info["inner"] = [(line, _resolve(t, known)) for line, t in info["inner"]
                         if _resolve(t, known)]
    return mods


def _resolve(target: str, known: set) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _walk(node, name, is_pkg, info, depth):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            info["functions"].append((child.name, child.lineno,
                                      child.end_lineno - child.lineno + 1))
            _walk(child, name, is_pkg, info, depth + 1)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            root_pkg = name.split(".")[0]
            for t in imported(child, name, is_pkg):
                if t.split(".")[0] == root_pkg and t != name:
                    if depth:
                        info["inner"].append((child.lineno, t))
                    else:
                        info["top"].add(t)
        else:
            _walk(child, name, is_pkg, info, depth)


def cycles(mods: dict) -> list[list[str]]:
    """Strongly connected components (size > 1) of the module-level import graph plus the
    function-level imports (an import inside a function still makes a cycle)."""
    graph = {m: set(i["top"]) | {t for _, t in i["inner"]} for m, i in mods.items()}
    for m in graph:  # importing a.b.c imports a and a.b first: not a dependency we count
        graph[m] = {t for t in graph[m] if t in mods and t != m and not m.startswith(t + ".")}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strong(v)
    return sorted(out)


def measures(root: Path) -> dict:
    mods = scan(root)
    funcs = [(n, f"{module_name(root, i['path'])}:{line}", length)
             for i in mods.values() for n, line, length in i["functions"]]
    longest = max(funcs, key=lambda f: f[2])
    inner = [(m, line, t) for m, i in mods.items() for line, t in i["inner"]]
    cli_users = sorted(m for m, i in mods.items() if not m.startswith("emergent.cli")
                       and m != "emergent.__main__"  # `python -m emergent`: the entry point
                       and any(t.startswith("emergent.cli") for t in
                               i["top"] | {t for _, t in i["inner"]}))
    return {"modules": len(mods), "longest_function": {"name": longest[0], "at": longest[1],
                                                       "lines": longest[2]},
            "functions_over_60_lines": sum(1 for f in funcs if f[2] > 60),
            "import_cycles": cycles(mods), "function_level_own_imports": len(inner),
            "library_modules_importing_cli": cli_users}


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "src/emergent"
    m = measures(src)
    m["n_import_cycles"] = len(m["import_cycles"])
    print(json.dumps(m, indent=1))
