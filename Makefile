# `make demo` and `make test` each set up .venv first (CPU torch 2.13.0, then this package), offline-safe.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/accelerate launch recipes/classify.py

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=30
