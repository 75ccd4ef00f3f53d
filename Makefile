# The two commands of the README: `make demo` and `make test`. Both build the environment
# from uv.lock first, bootstrapping uv into .tools/ when it is not installed.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export SYNC_PLATFORM_HOME ?= $(CURDIR)/.sync_platform
export UV_PROJECT_ENVIRONMENT := $(VENV)
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: demo test bench bench-reconcile bench-orchestration lint dev env soak chaos browser

demo: env
	$(VENV)/bin/python -m demo

# The layer contracts first (pyproject.toml, [tool.importlinter]), then the suite, in
# TEST_WORKERS processes (pytest-xdist; each test file stays on one worker, so its
# module-scoped clusters and browsers start once; files go out in collection order, which
# puts the six-minute soak first, beside the rest, not last). Most of the suite waits on
# processes and databases: two workers on two cores take about half the time.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: env browser
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The merge against COPY and against dlt, the peer loader (bench/README.md). dlt and its ADBC
# driver are the lock's `bench` group, which `make env` leaves out: it is added here on top of
# the synced environment (--inexact removes nothing; the .synced stamp is left alone, and the
# next full sync after a lock change drops the group again until the next `make bench`).
bench: env
	$(UV) sync --locked --compile-bytecode --python $(PYTHON) --group bench --inexact
	$(VENV)/bin/python -m bench.merge_bench --write-docs

# compare_entity over 1M vehicles with 1% planted drift, both dialects (bench/README.md).
bench-reconcile: env
	$(VENV)/bin/python -m bench.reconcile_bench --write-docs

# Loading the code location and whole `dagster job execute` runs of dealer_sync and full_sync
# at the demo's size, before and after the orchestration changes (docs/performance.md).
bench-orchestration: env
	$(VENV)/bin/python -m bench.orchestration_bench --write-docs

# Debian's chromium, which the browser test (sync_platform_tests/test_ui_browser.py) drives
# through Playwright: installed once, when missing (Playwright never downloads a browser here).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The Dagster UI and daemon on the embedded default, with the simulator serving the demo's
# sources and the demo's settings (`make dev HOST=0.0.0.0 PORT=3001` to listen elsewhere).
dev: env
	$(VENV)/bin/python -m demo.dev --host $(HOST) --port $(PORT)

# Bytecode is compiled ahead (the installed packages by uv, the project's own here, which
# skips what is up to date): every Dagster step and run worker is a fresh Python process, and
# where PYTHONDONTWRITEBYTECODE is set (as on this machine) each would otherwise compile
# the ~1,000 modules it imports again, ~1.6 s a process (docs/performance.md).
env: $(VENV)/.synced $(DAGSTER_HOME)/dagster.yaml
	@$(VENV)/bin/python -m compileall -q -j 0 sync_platform sync_platform_simulator/src demo bench soak >/dev/null

$(VENV)/.synced: uv.lock pyproject.toml sync_platform_simulator/pyproject.toml | $(UV)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	@touch $@

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

# The embedded default instance (the repo-root dagster.yaml); production: deploy/production/.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The whole platform under the real daemon on PostgreSQL, with faults on every source, for
# SOAK_MINUTES (an hour by default), then a verdict (docs/reliability.md). A short variant
# runs in `make test` (sync_platform_tests/test_soak.py).
SOAK_MINUTES ?= 60
soak: env
	$(VENV)/bin/python -m soak --minutes $(SOAK_MINUTES)

# The fault-injection suite at length: kill -9 at random points for CHAOS_ROUNDS rounds on each
# dialect, with the other injected faults (docs/reliability.md, "Fault injection"). `make test`
# runs 3 rounds.
CHAOS_ROUNDS ?= 50
chaos: env
	SYNC_PLATFORM_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(VENV)/bin/python -m pytest -s -p no:warnings \
		sync_platform_tests/test_random_kills.py sync_platform_tests/test_crash_consistency.py \
		sync_platform_tests/test_fault_injection.py sync_platform_tests/test_database_stopped.py

# A day at full size through Dagster: each source's job as an operator runs it, against the
# simulator and a throwaway PostgreSQL warehouse, a first load and a re-sync a day later with
# ~1% of each source changed (bench/README.md). DAILY_SCALE multiplies every size.
DAILY_SCALE ?= 1.0
.PHONY: bench-daily
bench-daily: env
	$(VENV)/bin/python -m bench.daily_bench --scale $(DAILY_SCALE) --write-docs
