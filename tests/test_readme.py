"""README.md's set-up commands are the ones CI runs."""

import pathlib

ROOT = pathlib.Path(__file__).parent.parent
TEST_COMMAND = 'python -m pip install -e ".[test]" && python -m pytest -q tests -m "not slow"'
DEMO_COMMAND = "python -m pip install -e . && tfcompress demo"


def test_readme_gives_both_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert TEST_COMMAND in readme and DEMO_COMMAND in readme


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text().splitlines()
