# Two entry points, each sets everything up first:  make demo  /  make test
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: setup demo lint test test-fast bench clean

setup: $(STAMP)

# Re-runs only when a requirements file or the package metadata changed.
$(STAMP): requirements.txt requirements-dev.txt requirements-accel.txt constraints.txt setup.py setup.cfg
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt -r requirements-accel.txt -c constraints.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seg-perception demo --out $(OUT)

# The quality gate: formatting, lint, types (pyproject.toml) and the layer contracts.
LINTED := seg_perception test launch setup.py
lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/seg-perception bench

clean:
	rm -rf $(VENV) build install log out .pytest_cache
