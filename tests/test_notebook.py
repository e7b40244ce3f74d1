"""notebooks/analysis.ipynb runs top to bottom in the venv's own python3 kernel."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis_fixtures import synthetic_run

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
SAMPLE_RUN = REPO / "notebooks" / "sample_run"
CELL_TIMEOUT_S = 120
KERNEL_START_TIMEOUT_S = 60


def _run_dir(tmp_path: Path) -> Path:
    # The committed sample is a real run; until it exists, a synthetic one stands in.
    if (SAMPLE_RUN / "run.json").is_file():
        return SAMPLE_RUN
    return synthetic_run(tmp_path / "synthetic-run", repeats=2)


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _run_dir(tmp_path)
    # The kernel inherits this process's environment.
    monkeypatch.setenv("HARNESS_RUN_DIR", str(run_dir))
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
