# debug-toolbar developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
COV_FLOOR ?= 90
# Extra interpreters for `make test-all`, found through pyenv when it is there.
OTHER_PYTHONS ?= 3.10 3.12 3.13

.PHONY: help install demo test test-cov test-all test-steps lint format type-check bench check clean

help: ## List the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its dev tools

demo: install ## Run the demo app with the toolbar on http://127.0.0.1:8000
	$(BIN)/python -m uvicorn examples.demo_app:app --host 127.0.0.1 --port 8000

test: install ## Run the whole test suite with coverage (fails under $(COV_FLOOR)%)
	$(BIN)/python -m pytest --cov=debug_toolbar --cov-report=term-missing:skip-covered \
		--cov-fail-under=$(COV_FLOOR) $(PYTEST_ARGS)

test-cov: install ## Run the tests and write an HTML coverage report to htmlcov/
	$(BIN)/python -m pytest --cov=debug_toolbar --cov-report=html --cov-report=term \
		--cov-fail-under=$(COV_FLOOR) $(PYTEST_ARGS)

test-all: install ## Run the suite on every supported Python found (3.10-3.13)
	@passed=""; failed=""; \
	for v in $(OTHER_PYTHONS); do \
		prefix=$$(pyenv prefix $$v 2>/dev/null || ls -d $$HOME/.pyenv/versions/$$v.* 2>/dev/null | tail -1); \
		py=$${prefix:+$$prefix/bin/python3}; \
		if [ ! -x "$$py" ]; then echo "== Python $$v: not installed, skipped"; continue; fi; \
		echo "== Python $$v ($$py)"; \
		venv=.venv-$$v; \
		if { test -x $$venv/bin/python || $$py -m venv $$venv; } \
			&& { [ $$venv/.installed -nt pyproject.toml ] \
				|| { $$venv/bin/python -m pip install --quiet --upgrade pip \
					&& $$venv/bin/python -m pip install --quiet -e ".[dev]" \
					&& touch $$venv/.installed; }; } \
			&& $$venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); then \
			passed="$$passed $$v"; \
		else \
			failed="$$failed $$v"; \
		fi; \
	done; \
	v=$$($(BIN)/python -c 'import sys; print(sys.version.split()[0])'); \
	echo "== Python $$v (.venv)"; \
	if $(BIN)/python -m pytest -q $(PYTEST_ARGS); then passed="$$passed $$v"; \
	else failed="$$failed $$v"; fi; \
	echo "== passed on:$${passed:- none}"; \
	if [ -n "$$failed" ]; then echo "== FAILED on:$$failed"; exit 1; fi

# Step timing needs Python 3.12+ (sys.monitoring): on 3.10/3.11 its tests skip. CI runs these on
# one newer interpreter too, so the flagship's "where did the time go" is proven on every push.
STEPS_PYTHON ?= 3.13
STEPS_TESTS ?= tests/unit/core/panels/async_profiler tests/integration/test_steps_server.py \
	tests/integration/test_steps_page.py tests/integration/test_demo_account.py \
	tests/integration/test_server_timing_server.py tests/e2e/test_async_profiler_browser.py

test-steps: ## Run the step-timing tests on Python $(STEPS_PYTHON) (pyenv), where they do not skip
	@prefix=$$(pyenv prefix $(STEPS_PYTHON) 2>/dev/null || ls -d $$HOME/.pyenv/versions/$(STEPS_PYTHON).* 2>/dev/null | tail -1); \
	py=$${prefix:+$$prefix/bin/python3}; \
	[ -x "$$py" ] || py=$$(command -v python$(STEPS_PYTHON) || true); \
	if [ ! -x "$$py" ]; then echo "== Python $(STEPS_PYTHON) not installed: step tests not run"; exit 0; fi; \
	venv=.venv-$(STEPS_PYTHON); \
	{ test -x $$venv/bin/python || $$py -m venv $$venv; } \
	&& { [ $$venv/.installed -nt pyproject.toml ] \
		|| { $$venv/bin/python -m pip install --quiet --upgrade pip \
			&& $$venv/bin/python -m pip install --quiet -e ".[dev]" \
			&& touch $$venv/.installed; }; } \
	&& $$venv/bin/python -m pytest -q -p no:cacheprovider $(STEPS_TESTS) $(PYTEST_ARGS)

lint: install ## Check style with ruff
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: install ## Format and autofix with ruff
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

type-check: install ## Type-check with mypy (strict)
	$(BIN)/mypy

bench: install ## Run the benchmarks (ratios measured side by side in one run)
	$(BIN)/python -m benchmarks

check: lint type-check test ## Lint, type-check and test

clean: ## Remove caches and build output
	rm -rf .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage dist build
