# Two commands matter: `make demo` and `make test`. Everything else is a helper for them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CDP_HOME ?= $(CURDIR)/.cdp
DEMO_PERSONS ?= 10000
DEMO_SEED ?= 42

.PHONY: venv demo test lint format bench generate run ui clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

generate: venv
	@if [ -f "$(CDP_HOME)/cdp.yml" ]; then \
		echo "sample world already in $(CDP_HOME) (make clean to regenerate)"; \
	else \
		$(BIN)/cdp generate --persons $(DEMO_PERSONS) --seed $(DEMO_SEED) --out "$(CDP_HOME)"; \
	fi

run: venv
	$(BIN)/cdp run

ui: venv
	@echo ""
	@echo "  Dagster UI:  http://localhost:3000   (assets, checks, lineage, runs)"
	@echo "  Workspace:   $(CDP_HOME)   (landing/, lake/, quarantine/, runs/)"
	@echo ""
	DAGSTER_HOME="$(CDP_HOME)/dagster" $(BIN)/dagster dev -m dagster_project.definitions -h 0.0.0.0 -p 3000

demo: generate run ui

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv lint
	$(BIN)/pytest

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf "$(CDP_HOME)"
