# The two commands of the quickstart: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench docs docs-serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orchestrator demo

# The suite in TEST_PROCESSES processes (pytest-xdist): most of a test's time is spent waiting on
# redis-servers and celery workers, so more processes than cores pay (on 2 cores, 6 kept both
# busy 94% of the suite's wall time). A module's tests stay on
# one process, the longest modules first (tests/parallel.py). Bytecode is cached even where
# PYTHONDONTWRITEBYTECODE is set: every worker, CLI and celery process the suite starts would
# compile the project again otherwise.
TEST_PROCESSES ?= 6

test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile \
		--no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The docs site (mkdocs.yml, docs/) into site/; docs-serve serves it on 127.0.0.1:8000.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) site *.egg-info .pytest_cache .mypy_cache .ruff_cache
