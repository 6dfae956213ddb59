# Two entry points, each sets everything up first:  make demo  /  make test
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# ROS 2 Jazzy (the LTS): a second venv on Jazzy's wheels; make test runs the ROS-layer tests there.
JAZZY_VENV ?= .venv-jazzy
JAZZY_STAMP := $(JAZZY_VENV)/.installed
OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: setup setup-jazzy demo lint test test-kilted test-jazzy test-fast bench gpu-check clean

setup: $(STAMP)
setup-jazzy: $(JAZZY_STAMP)

# Re-runs only when a requirements file or the package metadata changed.
$(STAMP): requirements.txt requirements-base.txt requirements-fleet.txt requirements-dev.txt requirements-accel.txt constraints.txt setup.py setup.cfg
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt -r requirements-accel.txt -c constraints.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(JAZZY_STAMP): requirements-jazzy.txt requirements-base.txt requirements-dev.txt constraints-jazzy.txt setup.py setup.cfg
	test -x $(JAZZY_VENV)/bin/python || python3 -m venv $(JAZZY_VENV)
	$(JAZZY_VENV)/bin/python -m pip install -q --upgrade pip
	$(JAZZY_VENV)/bin/python -m pip install -q -r requirements-jazzy.txt -r requirements-dev.txt -c constraints-jazzy.txt
	$(JAZZY_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(JAZZY_STAMP)

demo: $(STAMP)
	$(VENV)/bin/seg-perception demo --out $(OUT)

# The quality gate: formatting, lint, types (pyproject.toml) and the layer contracts.
LINTED := seg_perception test launch setup.py
lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Everything on Kilted, then the ROS-layer tests (nodes over DDS, lifecycle, lazy, QoS,
# multi-camera, live replay, colcon) again on Jazzy.
test: test-kilted test-jazzy

test-kilted: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-jazzy: $(JAZZY_STAMP)
	$(JAZZY_VENV)/bin/python -m pytest -m ros $(PYTEST_ARGS)

test-fast: lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/seg-perception bench

# The first run on a GPU machine: environment, CUDA-only tests, bench on CUDA, TensorRT engines
# where a TensorRT is importable, a real engine switch-over; out/gpu_check/report.{json,md}.
# Without a GPU it runs its own plumbing and says what it skipped (make test does that).
gpu-check: $(STAMP)
	$(PY) -m seg_perception.apps.gpu_check --out out/gpu_check

clean:
	rm -rf $(VENV) $(JAZZY_VENV) build install log out .pytest_cache
