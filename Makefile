# idnode — the two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= demo-data

.PHONY: run test lint install clean bench

$(BIN)/idnode: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "idnode needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/idnode

# Set up, create the demo node (idempotent) and serve it on 127.0.0.1:8000.
run: $(BIN)/idnode
	$(BIN)/idnode demo --data $(DATA)
	$(BIN)/idnode serve --data $(DATA) --http 127.0.0.1:8000

lint: $(BIN)/idnode
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Set up and run the whole test suite (lint and types included).
test: lint
	$(BIN)/pytest -q

# Set up and run the full benchmark (README "Benchmarks"); registries are built once and
# cached in bench/.data/. Writes bench/results/ and prints where the summary is.
bench: $(BIN)/idnode
	$(BIN)/idnode bench --out bench/results

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache *.egg-info
