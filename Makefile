# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The bot and its runtime (enough for the demo); the dev tools (pytest, ruff, mypy, ...) on top.
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-stamp
SOURCES := domain config storage usecases handlers bot emulator
# setuptools' notice about editable installs (one per install) is not for the person installing.
PIP := PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet

.PHONY: install demo demo-reset test soak lint format bench i18n clean postgres cluster

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[postgres]'
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -e '.[postgres,dev]'
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/rentan-bot demo

# The demo from scratch: its database, key, emulator ids and saved files in demo-data/ go first.
demo-reset: $(STAMP)
	$(BIN)/rentan-bot demo --fresh

lint: $(DEV_STAMP)
	$(BIN)/ruff check $(SOURCES) testkit tests bench
	$(BIN)/ruff format --check $(SOURCES) testkit tests bench
	$(BIN)/mypy

# Most of the suite waits on real time (bots, emulators, PostgreSQL), so it runs on TEST_WORKERS
# processes; the tests marked solo (Telegram's caps in real time, see tests/conftest.py) then run
# alone.
TEST_WORKERS ?= 3
test: lint postgres
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not solo"
	$(BIN)/pytest -m solo

# The property tests at length: the whole-bot state machine (200 runs of 50 steps, on SQLite
# and on PostgreSQL) and every other Hypothesis test with the soak profile's examples. Takes tens
# of minutes.
soak: $(DEV_STAMP) postgres
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest tests/test_bot_state_machine.py \
		$$(grep -l "from hypothesis" tests/test_*.py | grep -v test_bot_state_machine)

# The suite runs storage and end-to-end tests on SQLite and on a throwaway PostgreSQL cluster.
postgres:
	@sh scripts/ensure-postgres.sh

# Several processes as production runs them (README: Several processes): the emulator with
# Telegram's caps, a round-robin proxy and N real `rentan-bot run` webhook processes on a
# throwaway PostgreSQL (or CLUSTER_DATABASE_URL). Ctrl-C stops it.
N ?= 3
cluster: $(DEV_STAMP) postgres
	$(BIN)/python scripts/deploy/local_cluster.py --processes $(N)

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix $(SOURCES) testkit tests bench
	$(BIN)/ruff format $(SOURCES) testkit tests bench

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

# Re-extract translatable strings and merge them into both catalogs.
i18n: $(DEV_STAMP)
	$(BIN)/pybabel extract --no-location --sort-output -F babel.cfg -k N_ -k ngettext:1,2 \
		-o locales/messages.pot $(SOURCES)
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete --omit-header \
		-i locales/messages.pot -d locales -D messages

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
