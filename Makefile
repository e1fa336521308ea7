# vilref-mm: the two README commands and their parts.
PYTHON ?= python3
export PYTHON

.PHONY: install demo test test-all lint

install:  ## install the pinned stack and vilref_mm (idempotent; mmcv is built once per machine)
	bash tools/install.sh

demo: install  ## the main job on the embedded synthetic fundus dataset
	$(PYTHON) tools/demo.py

test: install  ## the test suite (slow benchmarks excluded)
	$(PYTHON) -m pytest tests -m "not slow"

test-all: install  ## the test suite including slow benchmarks
	$(PYTHON) -m pytest tests

lint: install  ## style checks (ruff: pycodestyle and pyflakes rules, pyproject.toml)
	$(PYTHON) -m ruff check vilref_mm tools tests configs
