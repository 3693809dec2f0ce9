"""`python -m edgekit.cli ...`: the same command line as the `edgekit` script."""

from edgekit.cli import run

run()
