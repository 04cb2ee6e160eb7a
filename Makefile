# Booking durability service: every developer and CI command.
# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
STAGE ?= dev
# Context the deploying team passes (docs/deploy.md); prod needs its sender and a drift channel.
CONTEXT ?=
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Python code type-checked by `make lint` (the CDK's own modules are not followed: see pyproject).
MYPY_TARGETS := layers/booking_durability/python/booking_durability stacks app.py scripts

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Adding a function (README: Adding a function):"
	@echo "  handler   lambdas/<name>/handler.py                  imports its entry point's handler"
	@echo "  entry     booking_durability/entrypoints/<name>.py   assembles it, @instrumented; only it imports wiring"
	@echo "  wiring    booking_durability/wiring/<name>.py        settings, adapters, clients; Wired + reset()"
	@echo "  logic     booking_durability/<domain>/               pure, on the Protocols it is handed, DomainError"
	@echo "  adapters  booking_durability/adapters/               on DynamoTable; ClientError -> domain errors"
	@echo "  construct stacks/, made with ServiceFunction         allow() what its code calls, watched by Monitoring"
	@echo "  tests     tests/{unit,integration,infrastructure,e2e}; its paths in test_least_privilege.py"

$(INSTALLED): requirements.txt requirements-dev.txt layers/booking_durability/requirements.txt pyproject.toml package.json package-lock.json clients/typescript/package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The project's own packages (booking_durability, stacks, layer_assets, devstack, operations), editable: no sys.path edits.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	# The CDK CLI, and the TypeScript client's packages (clients/typescript is a workspace).
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: install
install: $(INSTALLED) ## Create .venv and install every pinned dependency (Python, the CDK CLI, the TS client's)

.PHONY: layer
layer: $(INSTALLED) ## Build the Lambda layers with their bytecode (arm64, no Docker); a no-op when up to date
	$(PY) scripts/build_layer.py

.PHONY: lint
lint: $(INSTALLED) ## ruff (lint + format check), import contracts, mypy, committed JSON Schema and OpenAPI up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The import contracts of pyproject.toml: the layer's packages depend downwards, no cycles.
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy $(MYPY_TARGETS)
	for handler in lambdas/*/handler.py; do $(VENV)/bin/mypy "$$handler" || exit 1; done
	$(PY) scripts/generate_schemas.py --check

.PHONY: test
test: lint layer browser ## Lint, then every test: unit, integration, infrastructure, e2e
	$(PY) -m pytest

# The inbox page's browser test drives Debian's chromium through Playwright (its own browser
# download does not work here): installed with apt-get when missing, as root or through sudo.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: browser
browser: ## Install Debian's chromium (for the inbox page's browser test) when it is missing
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; }

.PHONY: run
run: layer ## Start the whole system locally (moto, queues, tables, API, workers, sinks); Ctrl-C stops it; LOCAL_* set ports and folder (README)
	$(PY) scripts/local_stack.py

.PHONY: demo
demo: $(INSTALLED) ## With `make run` up: email sent, duplicate, retry, dead letter, drift, and where to see each
	$(PY) scripts/demo.py

.PHONY: synth
synth: layer ## Synthesize STAGE=dev|prod|local with the pinned CDK CLI; CONTEXT='-c key=value ...'
	npx cdk synth --quiet -c stage=$(STAGE) $(CONTEXT)

.PHONY: bench
bench: layer ## Measure speed and cost; prints a table and writes bench.json in LOCAL_DIR (.local)
	$(PY) scripts/bench.py

.PHONY: profile
profile: layer ## Profile the email consumer's hot path against the reference (CPU per email; .local/profile-*)
	$(PY) scripts/bench.py --profile

.PHONY: schemas
schemas: $(INSTALLED) ## Regenerate the committed JSON Schema and OpenAPI document, and the TS client's types
	$(PY) scripts/generate_schemas.py
	npm run --silent generate --workspace clients/typescript

.PHONY: client
client: $(INSTALLED) ## Regenerate the TypeScript client's types from openapi.json and schemas/, and build it
	npm run --silent generate --workspace clients/typescript
	npm run --silent build --workspace clients/typescript

.PHONY: clean
clean: ## Remove build output, caches and local-stack state (keeps .venv)
	rm -rf .build cdk.out .local .pytest_cache .mypy_cache .ruff_cache clients/typescript/dist clients/typescript/.build
