# Two commands: `make demo` (set up + run the main job) and `make test` (set up + run the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: venv demo loop test test-fast lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv  ## fresh demo workspace: pipeline -> governed registration -> drift -> promotion -> audit verify
	$(BIN)/python scripts/demo.py

loop: venv  ## monitoring -> alert -> webhook -> retrain -> policy -> approval -> audit, end to end
	$(BIN)/python scripts/loop.py

test: venv  ## lint, types, then the whole test suite against real git, DVC, MLflow and PostgreSQL
	$(BIN)/ruff check mlops_layer pipelines tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not postgres"

lint: venv
	$(BIN)/ruff check mlops_layer pipelines tests benchmarks scripts
	$(BIN)/ruff format --check mlops_layer pipelines tests benchmarks scripts

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-workspace loop-workspace .pytest_cache .mypy_cache .ruff_cache
