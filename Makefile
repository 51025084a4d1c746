# Two commands: `make serve` starts the platform, `make test` runs the tests.
# Both build the virtual environment in .venv first if it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install lint bench

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: $(VENV)/.installed
	$(BIN)/arena serve $(SERVE_ARGS)

# The static checks (formatting, lint, types; mypy's targets and strictness are in pyproject.toml),
# then the tests.
test: lint
	$(BIN)/pytest -ra

lint: $(VENV)/.test-installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark with its defaults (reads the real data in ../shared/data or ARENA_SHARED_DATA).
bench: $(VENV)/.test-installed
	$(BIN)/python bench/attacks.py
	$(BIN)/python bench/certify.py
	$(BIN)/python bench/suite.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/worker_path.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/load.py
