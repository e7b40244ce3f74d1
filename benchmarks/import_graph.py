"""The import graph of ``harness/``: which module imports which, and the circles in it.

    .venv/bin/python benchmarks/import_graph.py           # the circles (exit status 1 if any)
    .venv/bin/python benchmarks/import_graph.py --edges   # every edge, and where it is written

Read with ``ast``, nothing is imported. Every ``import`` statement counts, wherever it stands:
at module level, under ``if TYPE_CHECKING:``, or inside a function (a lazy import hides a
circle, it does not remove one). Only modules of ``harness/`` are nodes; a package is its
``__init__.py``. An import resolves as Python runs it:

- ``import a.b.c`` and ``from a.b.c import name``: an edge to ``a.b.c``; ``from a.b import c``
  (and ``from . import c``, ``from ..b import c``) to the submodule ``a.b.c`` when there is
  one, else to the package ``a.b`` (``c`` is a name its ``__init__`` defines).
- Importing ``a.b.c`` first runs the ``__init__`` of ``a`` and ``a.b``: an edge to each, except
  to the importer's own packages. Those have begun running before the importer did, and
  reaching a sibling through them needs nothing of them, so ``harness/loadgen/__init__.py``
  importing ``accounting``, which imports ``harness.loadgen.histograms``, is no circle; a
  module that imports a *name* from its own package (``from harness.loadgen import merge``) is
  an edge to that ``__init__``, and a circle if the ``__init__`` imports it.

Names looked up at run time (``importlib.import_module``, the registries' "module:Class"
strings) are not imports here.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "harness"


@dataclass(frozen=True)
class Site:
    """Where an edge is written: the importer's file, its line, and how the import runs."""

    path: Path
    line: int
    where: str  # "module", "type-checking" (never at run time) or "function" (when called)

    def __str__(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line} ({self.where})"


Graph = dict[str, dict[str, list[Site]]]  # importer -> imported -> where


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` (a directory under ``root``) by dotted name."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement of a module, with how it runs."""
    stack: list[tuple[ast.AST, str]] = [(tree, "module")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, where
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner = "function"
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and where == "module":
            stack.extend((statement, "type-checking") for statement in node.body)
            stack.extend((statement, where) for statement in node.orelse)
            continue
        else:
            inner = where
        for child in ast.iter_child_nodes(node):
            stack.append((child, inner))


def _package_of(module: str, path: Path) -> str:
    """The package a relative import of ``module`` starts from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(node: ast.Import | ast.ImportFrom, module: str, path: Path,
             modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ``modules`` an import statement names (see the module's docstring)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield from _with_packages(alias.name, module, modules)
        return
    if node.level:
        base = _package_of(module, path).split(".")
        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    named = False
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        if alias.name != "*" and sub in modules:
            yield from _with_packages(sub, module, modules)
        else:
            named = True
    if named:
        yield from _with_packages(target, module, modules)


def _with_packages(target: str, importer: str, modules: dict[str, Path]) -> Iterator[str]:
    """``target`` and the packages above it whose ``__init__`` importing it runs, less the
    importer's own packages."""
    parts = target.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        own_package = i < len(parts) and importer.startswith(name + ".")
        if name in modules and not own_package:
            yield name


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    """Importer -> imported -> the sites of those imports, over the modules of ``package``."""
    modules = module_files(root, package)
    graph: Graph = {name: {} for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, where in _imports(tree):
            for target in _resolve(node, module, path, modules):
                if target != module:
                    graph[module].setdefault(target, []).append(Site(path, node.lineno, where))
    return graph


def _components(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest circle through the component's first module, as [a, b, ..., a]."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no circle through {start}")  # a component always has one


def cycles(graph: Graph) -> list[list[str]]:
    """One shortest circle per group of modules that import each other, as [a, b, ..., a];
    empty when the graph has none. (Cutting one circle may leave another in its group: run
    again.)"""
    return [_shortest_cycle(graph, component) for component in _components(graph)]


def describe_cycle(graph: Graph, cycle: Sequence[str]) -> str:
    """A circle, edge by edge, with where each import is written."""
    lines = [" -> ".join(cycle)]
    for a, b in itertools.pairwise(cycle):
        sites = ", ".join(str(site) for site in graph[a][b])
        lines.append(f"    {a} -> {b}: {sites}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--edges", action="store_true",
                        help="print every edge and where it is written")
    args = parser.parse_args(argv)
    graph = import_graph()
    if args.edges:
        for importer in sorted(graph):
            for imported in sorted(graph[importer]):
                sites = ", ".join(str(site) for site in graph[importer][imported])
                print(f"{importer} -> {imported}  {sites}")
    found = cycles(graph)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} modules, {edges} edges, {len(found)} circle(s)")
    for cycle in found:
        print(describe_cycle(graph, cycle))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
