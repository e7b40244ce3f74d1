"""notebooks/analysis.ipynb runs top to bottom in the venv's own python3 kernel."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
# the notebook's default: the published reference run, real measurements committed with it
REFERENCE_RUN = REPO / "results" / "reference" / "io_bound"
CELL_TIMEOUT_S = 120
KERNEL_START_TIMEOUT_S = 60

# a Jupyter kernel in a subprocess, then the whole notebook on a real run: out of the fast tier
pytestmark = pytest.mark.e2e


def test_notebook_executes(monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = REFERENCE_RUN
    assert (run_dir / "run.json").is_file(), "the reference run is part of the repository"
    # the kernel inherits this environment: no override, so the notebook's default is tested
    monkeypatch.delenv("HARNESS_RUN_DIR", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            startup_timeout=KERNEL_START_TIMEOUT_S,
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    outputs = [o for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, "plots and the two-server comparison should render"
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    assert run_id in text
    assert "comparing " in text
    assert not [o for o in outputs if o.get("output_type") == "error"]
