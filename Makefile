# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := domain config storage usecases handlers bot emulator

.PHONY: install demo test soak lint format bench i18n clean postgres

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgres,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rentan-bot demo

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES) testkit tests bench
	$(BIN)/ruff format --check $(SOURCES) testkit tests bench
	$(BIN)/mypy

test: lint postgres
	$(BIN)/pytest

# The property tests at length: the whole-bot state machine (200 runs of 50 steps, on SQLite
# and on PostgreSQL) and every other Hypothesis test with the soak profile's examples. Takes tens
# of minutes.
soak: $(STAMP) postgres
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest tests/test_bot_state_machine.py \
		$$(grep -l "from hypothesis" tests/test_*.py | grep -v test_bot_state_machine)

# The suite runs storage and end-to-end tests on SQLite and on a throwaway PostgreSQL cluster.
postgres:
	@sh scripts/ensure-postgres.sh

format: $(STAMP)
	$(BIN)/ruff check --fix $(SOURCES) testkit tests bench
	$(BIN)/ruff format $(SOURCES) testkit tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

# Re-extract translatable strings and merge them into both catalogs.
i18n: $(STAMP)
	$(BIN)/pybabel extract --no-location --sort-output -F babel.cfg -k N_ -k ngettext:1,2 \
		-o locales/messages.pot $(SOURCES)
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete --omit-header \
		-i locales/messages.pot -d locales -D messages

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
