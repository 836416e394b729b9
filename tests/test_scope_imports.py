"""The import graph of ``cloudphys.scope`` has no cycles, and there is one generator-table loader."""

from __future__ import annotations

import ast
from pathlib import Path

import cloudphys.scope as scope_pkg

SCOPE_DIR = Path(scope_pkg.__file__).parent


def _scope_imports(path: Path, module_level_only: bool) -> set[str]:
    """Modules of cloudphys.scope imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:  # "from . import x"
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cloudphys.scope."):
            out.add(node.module.split(".")[2])
    return {m for m in out if (SCOPE_DIR / f"{m}.py").exists()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    modules = [p for p in SCOPE_DIR.glob("*.py") if p.stem != "__init__"]
    return {p.stem: _scope_imports(p, module_level_only) - {p.stem} for p in modules}


def test_scope_import_graph_is_acyclic_module_level() -> None:
    assert _cycle(_graph(True)) is None


def test_scope_import_graph_is_acyclic_including_deferred_imports() -> None:
    # record renders, dialects parses: neither reaches back into the other, not even inside a function
    graph = _graph(False)
    assert _cycle(graph) is None, _cycle(graph)
    assert "dialects" not in graph["record"]


def test_one_generator_table_loader() -> None:
    from cloudphys.scope import dialects, generators, load_generator_table

    assert load_generator_table is generators.load_generator_table
    assert dialects.load_generator_table is generators.load_generator_table  # re-exported, not redefined
    package = SCOPE_DIR.parent.rglob("*.py")
    defined = [p.name for p in package if "def load_generator_table" in p.read_text(encoding="utf-8")]
    assert defined == ["generators.py"]


def test_generator_table_cached_and_reread_after_edit(tmp_path: Path) -> None:
    import json
    import os

    from cloudphys.scope import load_generator_table

    path = tmp_path / "generator.json"
    path.write_text(json.dumps({"1": "000", "2": "100"}), encoding="utf-8")
    first = load_generator_table(path)
    assert load_generator_table(str(path)) is first  # read once
    path.write_text(json.dumps({"1": "000", "2": "100", "3": "01bOOO0"}), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_generator_table(path)
    assert again is not first and 3 in again
