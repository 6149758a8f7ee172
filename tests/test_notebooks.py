"""Every notebook runs top to bottom in a Jupyter kernel, as a Colab user runs it, so none can go stale."""

import json
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tfcompress import _project

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow  # a Jupyter kernel per notebook: minutes on 2 cores
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom(notebook, tmp_path):
    content = nbformat.read(notebook, as_version=4)
    # The first code cell installs tfcompress only where it is missing: here it is installed, so it does nothing.
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(content, timeout=600, kernel_name="python3", resources=resources).execute()
    errors = [output for cell in content.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_opens_in_colab_and_installs_itself_from_the_one_project_url(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert f"{_project.COLAB_URL}{notebook.name}" in "".join(cells[0]["source"])
    first_code = "".join(next(cell for cell in cells if cell["cell_type"] == "code")["source"])
    assert f'"{_project.INSTALL_URL}"' in first_code and "find_spec" in first_code
    every_url = re.findall(r"https?://[^\s)\"']+", "".join("".join(cell["source"]) for cell in cells))
    project_urls = [url for url in every_url if "tfcompress" in url]
    assert all(_project.REPOSITORY in url for url in project_urls), project_urls
