"""The `edgekit` command line: `edgekit.cli:main` is the console script, `python -m edgekit.cli` runs it.

`main` is a lazy click group (`edgekit.cli.group`): each command lives in its own module here and is
imported only when used; `edgekit.cli.console` holds the output and error handling they share.
"""

from edgekit.cli.group import main

__all__ = ["main"]
