SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_SIZES ?= 10000 100000
BENCH_LARGE ?= 1000000

.PHONY: help install chromium dynamodb-start dynamodb-stop test lint run images bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: $(VENV)/.installed node_modules/.installed ## Set up .venv and DynamoDB Local (quick when up to date)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  || { echo "Python 3.11 or newer is needed as '$(PYTHON)' (try: make install PYTHON=python3.12)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev,spark]'
	touch $@

node_modules/.installed: package.json $(wildcard package-lock.json)
	@command -v node >/dev/null && command -v npm >/dev/null \
	  || { echo "node and npm are needed to install DynamoDB Local: install e.g. Debian's nodejs and npm"; exit 1; }
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

chromium: ## Install Debian's Chromium for the browser tests when it is missing (Playwright drives it)
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests (apt-get install chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y chromium >/dev/null || { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y chromium >/dev/null; } \
	  || { echo "could not install chromium: install Debian's chromium package, or set CHROMIUM to a Chromium binary"; exit 1; }; }

dynamodb-start: install ## Start DynamoDB Local on $DYNAMODB_PORT (default 8000), data in .dynamodb/<port>/data
	$(PY) -m devstack start

dynamodb-stop: install ## Stop the DynamoDB Local on $DYNAMODB_PORT started by dynamodb-start or run
	$(PY) -m devstack stop

test: install chromium ## Run the tests (own DynamoDB Local; extra args in PYTEST_ARGS), then the dependency audit
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) tests/audit_dependencies.py

lint: install ## Check style and types: ruff check, ruff format --check, mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

run: install ## Bring the whole stack up on $PORT (DynamoDB Local, generator, server); Ctrl-C stops it
	$(PY) run_server.py up

DIAGRAMS := $(wildcard images/architecture-*.dot)

images: install chromium ## Re-render the architecture diagrams (needs Graphviz) and the explorer's screenshots (browser tests)
	@command -v dot >/dev/null \
	  || { echo "Graphviz's dot is needed: install e.g. Debian's graphviz (apt-get install graphviz)"; exit 1; }
	for source in $(DIAGRAMS); do \
	  dot -Tsvg "$$source" -o "$${source%.dot}.svg" && dot -Tpng -Gdpi=110 "$$source" -o "$${source%.dot}.png" || exit 1; \
	done
	SCREENSHOTS_DIR=images $(PY) -m pytest -q -p no:cacheprovider tests/test_explorer_browser.py

bench: ## Run every benchmark (about 100 minutes; JSON lines on stdout, progress on stderr; see bench/)
	@$(MAKE) --no-print-directory install >&2
	@$(PY) -m bench.stages --users $(BENCH_SIZES)
	@$(if $(BENCH_LARGE),$(PY) -m bench.stages --users $(BENCH_LARGE) --models course_views interests --publish none)
	@$(PY) -m bench.neighbours --users $(BENCH_SIZES)
	@$(PY) -m bench.publish
	@$(PY) -m bench.server
	@$(PY) -m bench.profiles --users $(BENCH_SIZES)
	@$(PY) -m bench.engines --users $(lastword $(BENCH_SIZES))
