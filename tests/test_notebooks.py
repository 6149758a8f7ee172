"""Every notebook runs top to bottom in a Jupyter kernel, as a Colab user runs it, so none can go stale."""

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

# Subprocesses and Jupyter kernels: minutes on 2 cores, run as CI's slow step.
pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/tfcompress/tfcompress/blob/main/notebooks/"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom(notebook, tmp_path):
    content = nbformat.read(notebook, as_version=4)
    # The first code cell installs tfcompress only where it is missing: here it is installed, so it does nothing.
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(content, timeout=600, kernel_name="python3", resources=resources).execute()
    errors = [output for cell in content.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_opens_in_colab_and_installs_itself(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert f"{COLAB}{notebook.name}" in "".join(cells[0]["source"])
    first_code = next(cell for cell in cells if cell["cell_type"] == "code")
    assert "pip" in "".join(first_code["source"]) and "find_spec" in "".join(first_code["source"])


def test_the_five_notebooks_are_there():
    names = {path.stem for path in NOTEBOOKS}
    assert {"quickstart", "distillation", "pruning", "channel_pruning", "qat_and_export"} <= names
