# Download service. `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-dev.lock | cksum | cut -d' ' -f1)
T ?= tests

.DEFAULT_GOAL := help
.PHONY: help install run test test-tools test-repeat test-fast lint format typecheck check clean bench lock

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Exactly the lock, every file checked by its hash; then the project itself, built by the
# locked setuptools (no isolated build environment fetching its own).
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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

M ?= server
N ?= 10
test-repeat: $(STAMP) test-tools ## Run the tests of marker M (server) N times (10); stops at a failure
	@for run in $$(seq $(N)); do \
	  echo "== run $$run of $(N): -m '$(M)'"; \
	  $(BIN)/pytest -q -m "$(M)" $(T) || exit 1; \
	done

test-fast: $(STAMP) ## Only the tests that start no server, client or container
	$(BIN)/pytest -m "not server and not clients and not container" $(T)

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

lock: $(STAMP) ## Re-pin requirements.lock (the image) and requirements-dev.lock (.venv), with hashes
	$(BIN)/pip-compile --quiet $(LOCK_FLAGS) $(LOCK_EXTRA) -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet $(LOCK_FLAGS) $(LOCK_EXTRA) --extra dev -o requirements-dev.lock \
		pyproject.toml

LOCK_FLAGS := --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	--no-emit-index-url --no-emit-find-links

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
