"""Prints one of README.md's two set-up commands, so CI runs them as README gives them, not a copy.

Usage: python .ci/readme_command.py demo|test
"""

import pathlib
import sys

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
# In README's set-up block, each command is the line after its numbered comment.
MARKERS = {"demo": "# 1. ", "test": "# 2. "}


def command(name: str) -> str:
    lines = README.read_text(encoding="utf-8").splitlines()
    marker = next(number for number, line in enumerate(lines) if line.startswith(MARKERS[name]))
    return lines[marker + 1].strip()


if __name__ == "__main__":
    print(command(sys.argv[1]))
