# dltheory: set-up, tests, the quick reproduction, benchmarks, lint.
# `make report` and `make test` each set everything up first (a .venv with a CPU build of torch).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; GPU users: install their CUDA build of torch into $(VENV) first (see README).
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= quick
export DLTHEORY_DATA ?= $(abspath ../shared/data)
export MPLBACKEND := Agg

.PHONY: setup test report reproduce bench lint docs clean

$(BIN)/dltheory: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev,cluster]"
	touch $(BIN)/dltheory

setup: $(BIN)/dltheory

test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile -p no:cacheprovider

report: setup
	OMP_NUM_THREADS=1 $(BIN)/dltheory reproduce --profile $(PROFILE) --out runs
	@echo "open runs/report.html"

reproduce: report

bench: setup
	$(BIN)/python benchmarks/run_all.py

docs: setup
	$(BIN)/pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache .ruff_cache
