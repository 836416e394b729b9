"""The package's import graph: no cycles, no upward imports, no private names across modules.

Read from the source with :mod:`ast` (nothing is imported), so the test also covers modules that
need optional dependencies. Every import counts: module level, inside functions (deferred) and
under ``TYPE_CHECKING``. The layers are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cloudphys

PACKAGE = Path(cloudphys.__file__).resolve().parent
REPO = PACKAGE.parent
#: The layers, top down (a top-level module or package of cloudphys each; "" is the package root, the
#: public API). A module may import its own layer or any layer below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__", "cli", "testing"),
    ("", "models"),
    ("inference", "training"),
    ("modeling",),
    ("config", "data", "encoders"),
    ("plugins", "hookspecs", "physics", "inputs"),
    ("scope", "tokenizer"),
    ("bounds", "params", "observables", "_version", "outputs", "numtext", "errors"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
#: Layers of one rank that still never import each other.
APART = (("inference", "training"),)


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


def test_every_module_is_in_a_layer() -> None:
    assert sorted({_layer(m) for m in MODULES} - set(RANK)) == []


def test_import_graph_has_no_cycle() -> None:
    """No cycle between modules, counting deferred (function-local) imports too."""
    graph = {m: {o for t, _, _ in _imports(m, module_level=False) if (o := _owner(t)) and o != m} for m in MODULES}
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
        for t, _, line in _imports(m, module_level=False)
        if RANK[_layer(_owner(t) or t)] < RANK[_layer(m)]
    ]
    assert not bad, "\n".join(bad)


def test_training_and_inference_never_import_each_other() -> None:
    bad = [
        f"{m}:{line} imports {t}"
        for m in MODULES
        for t, _, line in _imports(m, module_level=False)
        for pair in APART
        if {_layer(m), _layer(_owner(t) or t)} == set(pair)
    ]
    assert not bad, "\n".join(bad)


def _exports(package: str) -> set[str]:
    """The names in ``__all__`` of a cloudphys package (read from its source)."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def test_shipped_plugins_use_only_public_api() -> None:
    """A plugin imports cloudphys names only from a package's ``__init__`` and only names in its
    ``__all__`` (``from cloudphys.physics import PhysicsHead, oscillator_thermo``), as a third-party
    head author would."""
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    bad = []
    sources = [p for p in (REPO / "plugins").glob("*/*/*.py") if p.parent.name != "tests"]
    assert sources, "no plugin sources found"
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                bad += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                        if a.name.startswith("cloudphys.")]
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("cloudphys"):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                if node.module not in packages:
                    bad.append(f"{where} imports from the module {node.module} (not a package's public face)")
                    continue
                public = _exports(node.module)
                bad += [f"{where} imports {a.name} from {node.module}, not in its __all__"
                        for a in node.names if a.name not in public]
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
