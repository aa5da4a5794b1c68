"""The package's layers: every import points down the data flow, and no module imports itself back.

The layers, bottom to top (docs/architecture.md):

    exceptions, _version  <  runtime, config  <  io  <  model  <  report  <  diagnostics
    <  analysis  <  runs  <  render  <  demo, integrations, examples

A module may import its own layer and the layers below it, never one above.
Inside ``diagnostics``, ``diagnostics.estimators`` (pure maths) imports no other
diagnostic. The package's ``__init__`` is the public facade over everything and
is exempt. Every import counts: top-level, inside functions (lazy) and under
``TYPE_CHECKING``; a circle through lazy imports is still a circle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "collapse_diag"

LAYERS: list[tuple[str, ...]] = [
    ("collapse_diag._version", "collapse_diag.exceptions"),
    ("collapse_diag.runtime", "collapse_diag.config"),
    ("collapse_diag.io",),
    ("collapse_diag.model",),
    ("collapse_diag.report",),
    ("collapse_diag.diagnostics",),
    ("collapse_diag.analysis",),
    ("collapse_diag.runs",),
    ("collapse_diag.render",),
    ("collapse_diag.demo", "collapse_diag.integrations", "collapse_diag.examples"),
]
#: The facade: re-exports the public names of every layer, lazily.
FACADE = "collapse_diag"
#: Top-level modules besides the subpackages ("a handful").
TOP_LEVEL_MODULES = {"__init__", "_version", "exceptions", "analysis", "demo"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every collapse_diag module ``path`` imports (``from pkg import mod``: the module)."""
    modules = _all_modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("collapse_diag"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if not base.startswith("collapse_diag"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return found


_MODULES: dict[str, Path] = {}


def _all_modules() -> dict[str, Path]:
    if not _MODULES:
        _MODULES.update({_module_name(p): p for p in PACKAGE.rglob("*.py")})
    return _MODULES


def _layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (tests/test_layers.py)")


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {name: _imports(path, name) - {name} for name, path in _all_modules().items()}


def test_every_module_has_a_layer():
    for name in _all_modules():
        if name != FACADE:
            _layer(name)


@pytest.mark.parametrize("name", sorted(set(_all_modules()) - {FACADE}))
def test_no_import_runs_back_up(name):
    own = _layer(name)
    for target in sorted(_graph()[name]):
        if target == FACADE:
            raise AssertionError(f"{name} imports the facade 'collapse_diag': import the "
                                 "defining module instead")
        assert _layer(target) <= own, (
            f"{name} (layer {own}) imports {target} (layer {_layer(target)}): an import "
            "running back up the data flow")


def test_estimators_import_no_diagnostic():
    for name, targets in _graph().items():
        if name.startswith("collapse_diag.diagnostics.estimators"):
            bad = {t for t in targets if t.startswith("collapse_diag.diagnostics")
                   and not t.startswith("collapse_diag.diagnostics.estimators")}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if state.get(target) is None and target in graph:
                visit(target, stack + [target])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])


def test_top_level_holds_a_handful_of_modules():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= TOP_LEVEL_MODULES, sorted(modules - TOP_LEVEL_MODULES)


def test_public_names_still_import_from_the_package():
    import collapse_diag

    for name in collapse_diag.__all__:
        assert getattr(collapse_diag, name) is not None, name
