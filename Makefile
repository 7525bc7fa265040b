# idnode — the two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= demo-data

.PHONY: run test lint install clean bench lock browser

LOCK   := constraints.txt
# PIP_CONSTRAINT reaches pip's isolated build environment too (setuptools comes from the lock).
PIPLOCK := PIP_CONSTRAINT=$(CURDIR)/$(LOCK) $(BIN)/pip install -q

$(BIN)/idnode: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "idnode needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PIPLOCK) pip
	$(PIPLOCK) -e '.[dev,bench]'
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

# The admin console's browser tests drive Debian's Chromium (never skipped: they fail
# without it): installed here when missing, as root with apt-get.
browser:
	@if [ ! -x "$${IDNODE_CHROMIUM:-/usr/bin/chromium}" ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

# Set up and run the whole test suite (lint and types included).
test: lint browser
	$(BIN)/pytest -q

# Set up and run the full benchmark (README "Benchmarks"); registries are built once and
# cached in bench/.data/. Writes bench/results/ and prints where the summary is.
bench: $(BIN)/idnode
	$(BIN)/idnode bench --out bench/results

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Refresh the lock: resolve pyproject.toml's ranges afresh in a scratch venv and pin the result.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip setuptools
	.lock-venv/bin/pip install -q '.[dev,bench]'
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/pip freeze --all --exclude idnode | grep -v '^wheel=='; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv build
	@echo "$(LOCK) refreshed; run 'make clean test' to check the new set"
