"""The package structure, read from the code: layers that import one way, no circles, `hypermodels` never
imports `search`, every subpackage says what it owns, and private Keras/KerasTuner names in one module.

The map and the rules are drawn in docs/development.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "hypermodels")
PRIVATE_MODULE = "hypermodels.private_api"

# search's groups, lowest first: a module imports its own group and lower layers only.
LAYERS = (
    ("search.errors",),
    ("search.units", "search.runtime"),
    ("search.data",),  # sources, files, streaming: reads a DataConfig, never imports the config
    ("search.algorithms",),  # the table, the oracles, the budget, rounds and rungs: reads a config, never imports it
    ("search.config",),  # validation (the algorithms' table says which tuner keys apply)
    ("search.models", "search.runs"),  # the configured HyperModel; the run directory
    ("search.distributed",),  # chief and workers
    ("search.engine",),  # the trial loop: tune, tuners, records, sessions, TensorBoard, repair
    ("search.production",),  # export, finalists, finalize, train, serving, costs
    ("search.analysis",),  # plan, report, importance, simulate
    ("search.cli", "search.reference", "search"),  # the commands, the Python API, the docs generator
    ("search.__main__",),  # `python -m search`
)
COMMANDS = ("search.cli", "search.analysis", "search.production", "search.engine.tune")
MAX_TOP_LEVEL_MODULES = 15
PUBLIC_UNDERSCORE = {"_exit", "_asdict", "_replace", "_fields", "_make"}  # the standard library's: os._exit, namedtuple


def _modules() -> dict[str, Path]:
    """{dotted name: file} of every module; a package is named by its `__init__.py`."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines under `if TYPE_CHECKING:`: annotations only, never imported when the code runs."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports when it runs (module level or inside functions).

    `from search.runs import layout` imports `search.runs.layout`; the package itself counts only when a
    name is taken from its `__init__`."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    out = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= submodules
            if node.module in known and len(submodules) < len(node.names):
                out.add(node.module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _group(module: str) -> str:
    """The group a module belongs to: `search.engine.tuners` -> `search.engine`, `search.cli` -> itself."""
    parts = module.split(".")
    if parts[0] == "hypermodels":
        return "hypermodels"
    if len(parts) > 1 and (ROOT / "search" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def _layer(group: str) -> int:
    for i, groups in enumerate(LAYERS):
        if group in groups:
            return i
    raise AssertionError(f"{group} is in no layer of tests/test_layout.py's LAYERS: place it there")


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


def test_every_group_imports_only_its_own_and_lower_layers():
    offenders = []
    for module, imported in _graph().items():
        if module.startswith("hypermodels"):
            continue
        mine = _group(module)
        for other in imported:
            theirs = _group(other)
            if theirs == "hypermodels" or theirs == mine:
                continue
            if _layer(theirs) >= _layer(mine):
                offenders.append(f"{module} -> {other} ({mine} is not above {theirs})")
    assert not offenders, offenders


def test_algorithms_never_import_commands_and_nothing_below_engine_imports_engine():
    """The two rules a newcomer most easily breaks, named (the layers above imply them)."""
    graph = _graph()
    algorithms = {m: i for m, i in graph.items() if _group(m) == "search.algorithms"}
    commands = {m: sorted(i for i in imported if i.startswith(COMMANDS)) for m, imported in algorithms.items()}
    assert not {m: c for m, c in commands.items() if c}, commands
    below = {m: i for m, i in graph.items() if m.startswith("search") and _layer(_group(m)) < _layer("search.engine")}
    into_engine = {m: sorted(x for x in i if _group(x) == "search.engine") for m, i in below.items()}
    assert not {m: e for m, e in into_engine.items() if e}, into_engine


def test_hypermodels_never_import_search():
    offenders = {
        m: sorted(i)
        for m, i in _graph().items()
        if m.startswith("hypermodels") and any(x == "search" or x.startswith("search.") for x in i)
    }
    assert not offenders, offenders


def test_every_subpackage_says_what_it_owns_and_search_keeps_few_top_level_modules():
    packages = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")]
    undocumented = [str(p.relative_to(ROOT)) for p in packages if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not undocumented, undocumented
    for sub in (p.parent for p in packages if p.parent.name not in PACKAGES):
        for module in sub.glob("*.py"):
            assert ast.get_docstring(ast.parse(module.read_text())), f"{module.relative_to(ROOT)} has no docstring"
    top = sorted(p.name for p in (ROOT / "search").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    for name in ("distributed", "algorithms"):
        assert (ROOT / "search" / name / "__init__.py").is_file(), name


def _private_names_defined_by_us() -> set[str]:
    """`_names` ktsearch defines itself (functions, classes, attributes it assigns), outside the private module."""
    defined = set()
    for name, path in _modules().items():
        if name == PRIVATE_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
    return {n for n in defined if n.startswith("_")} | PUBLIC_UNDERSCORE


def test_private_keras_and_keras_tuner_names_are_used_in_one_module_only():
    """`keras.src`, `keras_tuner.src` imports, and `obj._name` for any `_name` ktsearch does not define itself
    (KerasTuner's `_random_values`, Keras's `_trainable_variables`), live in hypermodels/private_api.py alone."""
    ours = _private_names_defined_by_us()
    offenders = []
    for name, path in _modules().items():
        if name == PRIVATE_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n.startswith(("keras.src", "keras_tuner.src")) for n in names):
                offenders.append(f"{name}:{node.lineno} imports {names}")
            attr = node.attr if isinstance(node, ast.Attribute) else ""
            if attr.startswith("_") and not attr.startswith("__") and attr not in ours:
                offenders.append(f"{name}:{node.lineno} uses .{attr}")
    assert not offenders, offenders
