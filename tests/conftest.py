"""Run order: the longest files first, then the other files with slow (end-to-end) tests, then the rest.

`make test` spreads whole files over pytest-xdist workers (`--dist loadfile --no-loadscope-reorder`:
without that flag xdist would reorder the files by their number of tests) in the order they are
collected; a long file that starts last keeps one worker busy after the others are done. The files
below took longest in a clean-clone CI run (seconds of test time, on this 2-core machine), longest
first; the many short files fill the gaps at the end. Files stay whole and in their own
order, so module fixtures are set up once, in a serial run too. A file missing from the list only
runs later than it could.
"""

from __future__ import annotations

from pathlib import Path

LONGEST = (
    "e2e/test_recipes.py",  # 326 s: every example recipe (the runs other files read, tests/e2e/conftest.py)
    "e2e/test_benchmarks_smoke.py",  # 256 s
    "e2e/test_families_cli.py",  # 254 s
    "e2e/test_search.py",  # 393 s with a fresh stage cache for each of its three searches, less now
    "e2e/test_workers.py",  # 187 s
    "e2e/test_search_resume.py",  # 158 s
    "e2e/test_transfer_cli.py",  # 141 s
    "e2e/test_torch.py",  # 125 s
    "contract/test_accuracy_control.py",  # 121 s
    "e2e/test_cache_safety.py",  # 92 s
    "e2e/test_cache.py",  # re-runs the example runs of test_recipes.py against their caches: after it
)
_TESTS = Path(__file__).resolve().parent


def _rank(item, slow_files: set) -> int:
    name = item.path.relative_to(_TESTS).as_posix() if item.path.is_relative_to(_TESTS) else ""
    if name in LONGEST:
        return LONGEST.index(name)
    return len(LONGEST) + (item.path not in slow_files)


def pytest_collection_modifyitems(items):
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _rank(item, slow_files))
