# Two entry points: `make demo` (set up, then sync the demo workspace into ./warehouse)
# and `make test` (set up, then run the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo ui test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# The demo runs on an instance of its own, so ./dagster.yaml stays the production config.
demo: setup .demo_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.demo_home $(BIN)/asana-connections sync default

# The UI (webserver and daemon: schedules and sensors tick) on the demo instance.
ui: setup .demo_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.demo_home $(BIN)/dagster dev -w workspace.yaml

.demo_home/dagster.yaml:
	mkdir -p .demo_home
	printf 'telemetry:\n  enabled: false\n' > $@

test: setup
	$(BIN)/python -m pytest

# Every benchmark, each printing its figures, then the table of targets against the latest figures
# (about 25 minutes on two cores; Postgres as for make test).
bench: setup
	$(BIN)/python benchmarks/full_sync.py
	$(BIN)/python benchmarks/incremental_sync.py
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python benchmarks/postgres_load.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/quota.py
	$(BIN)/python benchmarks/targets.py
