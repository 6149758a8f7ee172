"""`python -m tfcompress` runs the command line."""

from tfcompress.cli import run

run()
