# Two user-facing targets; each sets everything up on a fresh machine (Python 3.11).
#   make demo   create .venv, install everything, run the PhantomQA dose x reconstruction demo
#   make test   create/refresh .venv, lint (ruff) and run the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: demo test lint

demo: $(STAMP)
	$(BIN)/radiologyai phantom demo --output-dir $(DEMO_DIR)

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# torch is installed first and pinned: the pin takes the CPU build; an unpinned torch pulls CUDA.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)
