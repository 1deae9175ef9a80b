# Two entry points: `make demo` (set up, then sync the demo workspace into ./warehouse)
# and `make test` (set up, then run the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# The demo runs on an instance of its own, so ./dagster.yaml stays the production config.
demo: setup
	mkdir -p .demo_home
	DAGSTER_HOME=$(CURDIR)/.demo_home $(BIN)/dagster job execute -m asana_assets.definitions -j asana_full_sync

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/full_sync.py
