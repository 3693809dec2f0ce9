# edgekit: `make demo` installs into .venv and runs the offline quickstart; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgekit-installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist; one per core: the tests keep both busy); each takes whole test files, the longest first (tests/conftest.py;
# --no-loadscope-reorder keeps that order instead of ordering the files by their number of tests).
TEST_WORKERS ?= 2

.PHONY: install demo lint test test-fast bench clean

install: $(STAMP)

# Re-installs when the project metadata or the pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "edgekit needs Python 3.11, found " + sys.version.split()[0]'
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[keras,runtimes,torch,search,dev]"
	@touch $(STAMP)

demo: install
	$(VENV)/bin/edgekit compress recipes/quickstart.yaml

# The layer contracts of ARCHITECTURE.md (pyproject.toml [tool.importlinter]).
lint: install
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no test: say so instead of failing obscurely.
test: lint
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; fi; exit $$rc

test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache
