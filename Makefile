# The two commands of the README: `make demo` and `make test`. Both build .venv from scratch when needed.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo chat up test lint bench faults
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/opsos demo

chat: $(BIN)/.installed
	$(BIN)/opsos chat

# All of opsos on this machine (web, workers, scheduler), supervised; Ctrl-C stops it.
up: $(BIN)/.installed
	$(BIN)/opsos up

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: $(BIN)/.installed
	scripts/ensure-chromium
	scripts/ensure-dovecot
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m bench.bench_router
	$(BIN)/python -m bench.bench_slack_ack
	$(BIN)/python -m bench.bench_memory --n 100000 --shared-buffers 1GB
	$(BIN)/python -m bench.bench_contacts

# The fault-injection suite: seeded faults against the shipped workflows; non-zero exit on any duplicate or loss.
faults: $(BIN)/.installed
	$(BIN)/python -m bench.faults --seed 1 --runs 12 --workers 2
