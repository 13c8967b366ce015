"""The package's import graph has no cycles.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
``hand_pose_refiner`` module, at module level and inside functions alike, relative imports
resolved, and ``from package import name`` counted as an import of the submodule ``name`` when
there is one. Imports under ``if TYPE_CHECKING:`` never run; they name a type for annotations
only and are left out. Importing ``a.b.c`` also runs ``a/__init__.py`` and
``a/b/__init__.py``, so the graph has those edges too, except to the importer's own enclosing
packages, which are loaded before it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "hand_pose_refiner"
PACKAGE_DIR = REPO / PACKAGE


@dataclass(frozen=True)
class OwnImport:
    """One import of a package module: who imports what, where, and whether inside a function."""

    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    """``hand_pose_refiner/a/b.py`` -> ``hand_pose_refiner.a.b``; a package is its ``__init__``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _absolute(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: dict[str, Path]) -> Iterator[str]:
    """The package modules one import statement loads."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in modules)
        return
    source = _absolute(importer, is_package, node.level, node.module)
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in modules:
            yield submodule
        elif source in modules:
            yield source


def _type_checking_only(node: ast.AST) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` block (``typing.TYPE_CHECKING`` too)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports_with_scope(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement in the tree, with whether it sits inside a function."""
    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, inside)
    yield from visit(tree, False)


def own_imports() -> list[OwnImport]:
    """Every import of a package module by a package module."""
    modules = package_modules()
    found = []
    for importer, path in modules.items():
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        for node, in_function in _imports_with_scope(ast.parse(source, filename=str(path))):
            for imported in dict.fromkeys(_targets(node, importer, is_package, modules)):
                if imported != importer:
                    found.append(OwnImport(importer, imported, node.lineno, in_function))
    return found


def _loaded_packages(importer: str, imported: str) -> set[str]:
    """The packages that importing ``imported`` runs first, less the importer's own enclosing ones."""
    parts = imported.split(".")
    packages = {".".join(parts[:end]) for end in range(2, len(parts))}
    return {package for package in packages if not importer.startswith(f"{package}.")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, with the packages those imports run."""
    graph: dict[str, set[str]] = {name: set() for name in package_modules()}
    for item in own_imports():
        graph[item.importer] |= {item.imported} | _loaded_packages(item.importer, item.imported)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle through the component's first module, as the chain of imports that closes it."""
    members = set(component)
    start = component[0]
    path = [start]
    seen = {start}
    while True:
        step = sorted(graph[path[-1]] & members)
        if start in step:
            return [*path, start]
        following = next((target for target in step if target not in seen), None)
        if following is None:
            path.pop()
            if not path:
                return component
            continue
        path.append(following)
        seen.add(following)


def _short(name: str) -> str:
    return name.removeprefix(f"{PACKAGE}.")


def test_the_graph_sees_imports_at_every_level():
    """The reader finds module-level and function-level imports, and packages as importers."""
    imports = own_imports()
    assert any(item.importer == f"{PACKAGE}.filters.pipeline" and not item.in_function
               and item.imported == f"{PACKAGE}.filters.spatial" for item in imports)
    assert any(item.in_function for item in imports)
    # palm_training.py names the detector class for annotations only, under TYPE_CHECKING.
    assert not any(item.importer == f"{PACKAGE}.models.mediapipe.palm_training"
                   and item.imported == f"{PACKAGE}.models.mediapipe.detector" for item in imports)
    graph = import_graph()
    assert f"{PACKAGE}.config" in graph[f"{PACKAGE}.api"]
    assert f"{PACKAGE}.models.mediapipe.detector" in graph[f"{PACKAGE}.models.mediapipe"]
    # replay's filter stage imports filters.pipeline, which runs filters/__init__.py first.
    assert f"{PACKAGE}.filters" in graph[f"{PACKAGE}.refinement.filtering"]
    assert f"{PACKAGE}.filters" not in graph[f"{PACKAGE}.filters.pipeline"]


def test_cycle_finder_names_a_cycle():
    """A three-module loop is found and reported as the chain that closes it."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert cycle_in(["a", "b", "c"], graph) == ["a", "b", "c", "a"]


def test_package_has_no_import_cycles():
    graph = import_graph()
    cycles = [" -> ".join(_short(name) for name in cycle_in(component, graph))
              for component in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)

