"""Browser tests: report.html rendered by headless Chromium (a package, so its module names do not clash with tests/unit)."""
