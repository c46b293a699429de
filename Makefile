# Download service. `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
T ?= tests

.DEFAULT_GOAL := help
.PHONY: help install run test test-tools test-fast lint format typecheck check clean bench

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv with the service and its test tools

run: $(STAMP) ## Serve ./data (or DL_DATA_ROOT) on DL_BIND, default 127.0.0.1:8000
	$(BIN)/python scripts/sample_data.py
	exec $(BIN)/gunicorn -c gunicorn.conf.py

test: $(STAMP) test-tools ## Run every test (unit, app, real gunicorn, real clients); T=path to select
	$(BIN)/pytest $(T)

test-tools: ## Install the real clients the tests drive (curl, wget, aria2, axel, rclone, lftp, ffmpeg, chromium, FUSE, podman)
	bash scripts/install_test_tools.sh
	bash scripts/container_engine.sh

test-fast: $(STAMP) ## Only the tests that start no server and no client
	$(BIN)/pytest -m "not server and not clients" $(T)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Reformat and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy (strict on service/sansio)
	$(BIN)/mypy

check: lint typecheck test ## Everything CI runs

bench: $(STAMP) ## Benchmark vs nginx, send_file, Starlette (installs them; BENCH_QUICK=1: short run)
	bash bench/setup.sh
	BENCH_GUNICORN=$(abspath $(BIN))/gunicorn bench/.venv/bin/python -m bench.run

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
