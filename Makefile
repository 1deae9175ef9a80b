# Two entry points: `make demo` (set up, then sync the demo workspace into ./warehouse)
# and `make test` (set up, then run the test suite).
# Setup installs the exact set in requirements.lock (versions and sha256 hashes, pip included).
# make lock: regenerate requirements.lock from pyproject.toml (keeps the locked versions that still fit;
#   LOCK_FLAGS=--upgrade for the newest allowed, LOCK_FLAGS='--upgrade-package pandas' for one).
# make test-latest: the suite in .venv-latest, on the newest releases pyproject.toml allows.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV_VERSION := 0.13.9
LOCK_FLAGS ?=

.PHONY: setup demo ui test bench lock test-latest

# The lock lists every package (--no-deps: installed as listed, hashes checked), then the project
# goes in editable without dependencies; pip check confirms the set is consistent.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

setup: $(STAMP)

# The lock resolves for every platform and Python 3.11+ (--universal), from PyPI, with uv in
# .venv-lock. pip is in it (read from stdin) so setup pins the installer too.
lock:
	test -x .venv-lock/bin/uv || { $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet uv==$(UV_VERSION); }
	echo pip | .venv-lock/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--extra dev --custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK) pyproject.toml -

# Re-resolved on every run, so it meets each new release; .venv stays on the lock.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	.venv-latest/bin/pip freeze --exclude-editable > .venv-latest/freeze.txt
	.venv-latest/bin/python -m pytest

# The demo (ASANA_DEMO=1) runs on an instance of its own, so ./dagster.yaml stays the production config.
demo: setup .demo_home/dagster.yaml
	ASANA_DEMO=1 DAGSTER_HOME=$(CURDIR)/.demo_home $(BIN)/asana-connections sync default

# The UI (webserver and daemon: schedules and sensors tick) on the demo instance, at
# http://localhost:$(PORT) (make ui PORT=3001 when 3000 is taken). It shows the demo unless a
# token or a stored connection is configured in the environment (make ui DEMO=0|1 to choose).
PORT ?= 3000
DEMO ?= $(if $(ASANA_ACCESS_TOKEN)$(ASANA_CONNECTION_ID),0,1)
ui: setup .demo_home/dagster.yaml
	ASANA_DEMO=$(DEMO) DAGSTER_HOME=$(CURDIR)/.demo_home $(BIN)/dagster dev -w workspace.yaml -p $(PORT)

.demo_home/dagster.yaml:
	mkdir -p .demo_home
	printf 'telemetry:\n  enabled: false\n' > $@

test: setup
	$(BIN)/python -m pytest

# Every benchmark, each printing its figures, then the table of targets against the latest figures
# (well over an hour on two cores, the fleet's 40 to 70 minutes included; Postgres as for make test).
bench: setup
	$(BIN)/python benchmarks/full_sync.py
	$(BIN)/python benchmarks/incremental_sync.py
	$(BIN)/python benchmarks/reconcile.py
	$(BIN)/python benchmarks/postgres_load.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/quota.py
	$(BIN)/python benchmarks/resume.py
	$(BIN)/python benchmarks/resume.py --project-tasks 5000
	$(BIN)/python benchmarks/small_run.py
	$(BIN)/python benchmarks/million.py
	$(BIN)/python benchmarks/fleet.py --connections 20
	$(BIN)/python benchmarks/targets.py
