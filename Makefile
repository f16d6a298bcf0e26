# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: this exact CPU build is on the machine's disk; any
	# other request would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,plots]"
	touch $@

demo: $(STAMP)
	$(PY) examples/plot_digits_pipeline.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 -q

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/digits.py

# Sphinx + numpydoc + sphinx-gallery into .venv (nothing system-level); warnings are
# errors. The gallery examples run on the CPU at reduced settings, DOCS_JOBS at a
# time: a few minutes. Nothing is downloaded (see docs/conf.py).
DOCS_STAMP := $(VENV)/.docs-installed
DOCS_JOBS ?= 2

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(DOCS_STAMP)
	rm -rf docs/gen_modules  # stubs of removed names would fail the build
	$(VENV)/bin/sphinx-build -W --keep-going -j $(DOCS_JOBS) -b html docs docs/_build/html

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/auto_examples docs/gen_modules
