"""The package structure: no import circles, `hypermodels` never imports `search`, private APIs in one module."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "hypermodels")


def _modules() -> dict[str, Path]:
    return {f"{p.parent.name}.{p.stem}": p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports anywhere (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in known:
                out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items() if not name.endswith("__init__")}


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_hypermodels_never_import_search():
    offenders = {
        m: sorted(i)
        for m, i in _graph().items()
        if m.startswith("hypermodels.") and any(x.startswith("search.") for x in i)
    }
    assert not offenders, offenders


def test_private_keras_and_keras_tuner_names_are_used_in_one_module_only():
    """`keras.src`, `keras_tuner.src` imports live in hypermodels/private_api.py alone."""
    offenders = []
    for name, path in _modules().items():
        if name == "hypermodels.private_api":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n.startswith(("keras.src", "keras_tuner.src")) for n in names):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders
