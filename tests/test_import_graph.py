"""The package's import graph: no cycles, no upward imports, no private names across modules.

Read from the source with :mod:`ast` (nothing is imported), so the test also covers modules that
need optional dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cloudphys

PACKAGE = Path(cloudphys.__file__).resolve().parent
#: Layers that must never reach up into the ones that use them (at any level, deferred imports too).
LOWER = ("physics", "scope", "data", "encoders", "tokenizer", "inputs", "config", "observables", "errors")
UPPER = ("training", "inference", "cli", "models")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["cloudphys", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, *, module_level: bool) -> list[tuple[str, str | None, int]]:
    """(target module, imported name or None, line) of every cloudphys import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    nodes = tree.body if module_level else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("cloudphys")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cloudphys"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
    return found


def _owner(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_module_level_import_graph_has_no_cycle() -> None:
    graph = {m: {o for t, _, _ in _imports(m, module_level=True) if (o := _owner(t)) and o != m} for m in MODULES}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_lower_layers_never_import_upper_ones() -> None:
    bad = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        if _layer(m) in LOWER
        for t, _, line in _imports(m, module_level=False)
        if _layer(t) in UPPER
    ]
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for m in MODULES:
        for target, name, line in _imports(m, module_level=False):
            if name is not None and name.startswith("_") and not name.startswith("__"):
                bad.append(f"{m}:{line} imports {name} from {target}")
            private_module = target.rpartition(".")[2].startswith("_") and not target.endswith("__init__")
            # a package-private module (scope._grammar) may be used inside its own package only
            if name is None and private_module and not m.startswith(target.rpartition(".")[0] + "."):
                bad.append(f"{m}:{line} imports the private module {target}")
    assert not bad, "\n".join(bad)
