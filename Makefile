# Two commands set up a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071
# pytest worker processes (pytest-xdist); many tests wait on Azurite or subprocesses, so more
# workers than cores pays off
TEST_WORKERS ?= 3

.PHONY: run test lint typecheck imports pytest infra-check bench setup browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.venv-infra/.installed: infra/requirements.txt
	$(PYTHON) -m venv .venv-infra
	.venv-infra/bin/pip install -q --disable-pip-version-check -r infra/requirements.txt
	touch $@

setup: $(VENV)/.installed node_modules/.installed

## browser: Debian's Chromium and its driver for the setup page's browser tests (skipped when present)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; fi

## run: the endpoint on Azurite at http://127.0.0.1:$(PORT)/scim/v2, printing the Tenant URL and token
run: setup
	$(PY) scripts/local_run.py --port $(PORT)

## test: lint, type checks, import contracts, infra checks and the whole pytest suite
## (the four checks run beside pytest, each one's output printed as a block when it ends: on
## 2 cores they fill the time pytest's workers spend waiting on Azurite and subprocesses)
test: setup .venv-infra/.installed browser
	@$(MAKE) --no-print-directory -j4 --output-sync=target lint typecheck imports infra-check & \
	checks=$$!; $(MAKE) --no-print-directory pytest; tests=$$?; wait $$checks; checks=$$?; \
	if [ $$checks -ne 0 ]; then echo "make test: a check failed (see above)" >&2; fi; \
	[ $$tests -eq 0 ] && [ $$checks -eq 0 ]

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy scim_core scim_reader function_app.py devhost.py scripts tests bench

## imports: no package cycles, and scim_core's layers in order (the contracts in pyproject.toml)
imports: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-logo

infra-check: .venv-infra/.installed
	.venv-infra/bin/python infra/check.py

pytest: setup browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

## bench: benchmarks (not part of test); prints a table and writes bench/results/latest.json
bench: setup $(VENV)/.bench-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-infra node_modules .azurite .mypy_cache .ruff_cache .hypothesis
