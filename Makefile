# The two set-up commands: `make demo` and `make test`. Both create .venv as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch goes in first, as the CPU build: a plain torch requirement (here, the local
# extra's) would otherwise pull the newest torch with several GB of CUDA packages. On
# these machines torch==2.13.0 resolves to a CPU wheel on disk; elsewhere, point TORCH
# at a CPU build (e.g. TORCH="torch --index-url <torch's CPU index>").
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[local,onnx]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,local,onnx]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/vecalchemy demo

test: $(VENV)/.installed-test
	$(BIN)/pytest
	$(MAKE) lint typecheck

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
