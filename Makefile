# Brenia: `make run` to start it, `make test` to check it. Both set everything up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
# The scale-out test profile: PostgreSQL, Redis and procrastinate workers.
SCALEOUT_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/brenia \
	REDIS_URL=redis://127.0.0.1:6379/0 BRENIA_JOBS=procrastinate

.PHONY: setup run test lint typecheck test-embedded test-scaleout services chromium promtool \
	alerts bench clean

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

run: setup
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py serve --port $(PORT)

test: setup services chromium promtool lint typecheck alerts
	./scripts/run_suites.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy --cache-dir=/dev/null brenia generation templates_app

test-embedded: setup
	@echo "== suite, embedded profile (SQLite, in-memory channel layer, in-process jobs)"
	$(BIN)/pytest

test-scaleout: setup services
	@echo "== suite, scale-out profile (PostgreSQL, Redis, procrastinate worker processes)"
	$(SCALEOUT_ENV) BRENIA_REDIS_PREFIX=brenia-test-$$$$ $(BIN)/pytest

services:
	./scripts/ensure_services.sh

chromium:
	@test -x /usr/bin/chromium || (echo "installing Debian's chromium" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Debian's prometheus package brings promtool, which checks deploy/prometheus/.
promtool:
	@command -v promtool >/dev/null || (echo "installing Debian's prometheus (for promtool)" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends prometheus)

alerts: promtool
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml
	promtool check config --syntax-only deploy/prometheus/prometheus.yml

bench: setup
	$(BIN)/python bench/runner_hints.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
