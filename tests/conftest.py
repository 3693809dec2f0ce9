"""Run order: the files with slow (end-to-end) tests first.

`make test` spreads whole files over pytest-xdist workers (`--dist loadfile`) in the order they are
collected; a long file that starts last keeps one worker busy after the others are done. Moving the
slow files to the front lets the many short ones fill the gaps at the end. Files stay whole and in
their own order, so module fixtures are set up once, in a serial run too.
"""

from __future__ import annotations


def pytest_collection_modifyitems(items):
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
