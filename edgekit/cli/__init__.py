"""The `edgekit` command line: `edgekit.cli:main` is the console script, `python -m edgekit.cli` runs it."""

from edgekit.cli.app import main

__all__ = ["main"]
