"""Fails unless README.md's two set-up commands are lines of .ci/run, as README writes them.

CI runs them from .ci/run, so a README command that changes without CI (or the other way
round) stops CI here, before anything is installed.

Usage: python .ci/readme_command.py
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# In README's set-up block, each command is the line after its numbered comment.
MARKERS = {"demo": "# 1. ", "test": "# 2. "}


def readme_commands() -> dict:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    found = {}
    for name, marker in MARKERS.items():
        number = next((number for number, line in enumerate(lines) if line.startswith(marker)), None)
        found[name] = lines[number + 1].strip() if number is not None else None
    return found


if __name__ == "__main__":
    run_lines = {line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()}
    missing = {name: command for name, command in readme_commands().items() if command not in run_lines}
    for name, command in missing.items():
        print(f"README's {name} command is not a line of .ci/run: {command!r}", file=sys.stderr)
    sys.exit(1 if missing else 0)
