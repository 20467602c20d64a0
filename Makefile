# The two commands of the README, plus helpers. Each target sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-fresh test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## one digest cycle on the bundled sample site and a local SMTP server
	$(BIN)/digest demo

demo-fresh: $(STAMP)  ## the same, starting from an empty demo state
	$(BIN)/digest demo --fresh

# Two processes, whole files each (the demo's fixed ports stay in one process).
PYTEST := $(BIN)/pytest -n 2 --dist loadfile

test: $(STAMP)  ## lint, type-check, the installed wheel, and the whole test suite on SQLite and PostgreSQL
	bash .ci/system-deps
	$(BIN)/ruff check digest tests bench
	$(BIN)/mypy digest
	PYTHON=$(BIN)/python bash .ci/install-check
	$(PYTEST)
	$(BIN)/python -m tests.postgres -- $(PYTEST)

lint: $(STAMP)
	$(BIN)/ruff check digest tests bench

clean:
	rm -rf $(VENV) state outbox test-artifacts .pytest_cache .mypy_cache .ruff_cache
