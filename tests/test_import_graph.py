"""harness/ imports without a circle (benchmarks/import_graph.py), and the graph sees what it
must: lazy and type-checking imports, ``from . import x``, and the ``__init__`` an import runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "import_graph.py"


def _script() -> ModuleType:
    """benchmarks/import_graph.py, loaded by path (benchmarks/ is a folder of scripts, not a
    package)."""
    if "import_graph" not in sys.modules:
        spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # before running it: its dataclass looks itself up
        spec.loader.exec_module(module)
    return sys.modules["import_graph"]


ig = _script()
import_graph, cycles, describe_cycle = ig.import_graph, ig.cycles, ig.describe_cycle


def test_harness_has_no_import_circle() -> None:
    graph = import_graph()
    assert "harness.loadgen.pool" in graph  # the graph is harness's
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(describe_cycle(graph, c) for c in found)


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_lazy_import_and_a_type_checking_import_count(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "def f() -> None:\n    from pkg import a\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\n",
        "pkg/d.py": "from . import c\nD = 1\n",
    })
    graph = import_graph(root, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.c", "pkg.d", "pkg.c"]]
    assert [s.where for s in graph["pkg.b"]["pkg.a"]] == ["function"]
    assert [s.where for s in graph["pkg.c"]["pkg.d"]] == ["type-checking"]


def test_an_init_importing_its_submodules_is_no_circle_unless_one_imports_its_names(
        tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg.a import A\nNAME = 1\n",
        "pkg/a.py": "from pkg.b import B\nfrom pkg import b\nA = 1\n",
        "pkg/b.py": "B = 1\n",
    }
    graph = import_graph(_package(tmp_path, files), "pkg")
    assert graph["pkg.a"] == {"pkg.b": graph["pkg.a"]["pkg.b"]}  # not pkg's __init__
    assert cycles(graph) == []
    (tmp_path / "pkg/b.py").write_text("from pkg import NAME\nB = 1\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg", "pkg.a", "pkg.b", "pkg"]]


def test_importing_another_packages_submodule_runs_its_init(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/x/__init__.py": "from pkg.x.m import M\n",
        "pkg/x/m.py": "from pkg.y.n import N\nM = N\n",
        "pkg/y/__init__.py": "from ..x import M\n",
        "pkg/y/n.py": "N = 1\n",
    })
    graph = import_graph(root, "pkg")
    assert set(graph["pkg.x.m"]) == {"pkg.y", "pkg.y.n"}
    assert cycles(graph) == [["pkg.x", "pkg.x.m", "pkg.y", "pkg.x"]]
