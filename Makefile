# Two commands: `make install` (venv, dependencies, model build) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test bench

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[serve,export,dev]'
	$(BIN)/videoapi model build

test:
	$(BIN)/python -m pytest

bench:
	$(BIN)/python bench/inference.py
