# Everything a new machine needs: Python 3.11 and make. The venv is created on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := $(wildcard src connectors tests bench)

.PHONY: demo test faults lint fmt typecheck bench bench-ingest bench-e2e bench-scaling bench-analyzer clean install

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## demo: start an embedded Redis, the server and a worker; send signed calls; print the sandbox CRM
demo: $(STAMP)
	$(BIN)/acw-sync demo

## test: lint, type-check, then the test suite (real Redis: ACW_TEST_REDIS_URL or an embedded one)
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

## faults: the long fault-injection runs (1,000 calls each, a one-minute CRM outage); prints counts
faults: $(STAMP)
	$(BIN)/python -m pytest -q -s -m slow tests/faults $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

fmt: $(STAMP)
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy

## bench-ingest: signed webhooks/s and p50/p99 at 1-256 clients vs the same server's /healthz
bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest

## bench-e2e: calls through real workers to the HubSpot, Salesforce and sandbox CRMs
bench-e2e: $(STAMP)
	$(BIN)/python -m bench.e2e

## bench-scaling: the end-to-end burst at 1, 2 and 4 worker processes
bench-scaling: $(STAMP)
	$(BIN)/python -m bench.scaling

## bench: every benchmark (figures in bench/results/; not part of `make test`)
bench: bench-ingest bench-e2e bench-scaling bench-analyzer

clean:
	rm -rf $(VENV) .acw-sync .pytest_cache .mypy_cache .ruff_cache

## bench-analyzer: accuracy of the offline analyzer on the evaluation set, and its speed
bench-analyzer: $(STAMP)
	$(BIN)/python bench/eval_analyzer.py --split dev
