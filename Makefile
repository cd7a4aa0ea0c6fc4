# Three user-facing targets; each sets everything up on a fresh machine (Python 3.11).
#   make demo   create .venv, install everything, run the PhantomQA dose x reconstruction demo
#   make test   create/refresh .venv, lint (ruff) and run the whole pytest suite
#   make web    create .venv, install everything, start the browser front-end on http://127.0.0.1:8080/
#               (WEB_ARGS="--data-dir DIR --port 8080 --host 127.0.0.1"; the browser tests also need Debian's
#               chromium and Mesa's EGL: .ci/run installs them, or: apt-get install chromium libegl1 libegl-mesa0 libgl1-mesa-dri)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

WEB_ARGS ?=

.PHONY: demo test lint web

demo: $(STAMP)
	$(BIN)/radiologyai phantom demo --output-dir $(DEMO_DIR)

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

web: $(STAMP)
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow $(BIN)/radiologyai web $(WEB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# torch is installed first and pinned: the pin takes the CPU build; an unpinned torch pulls CUDA.
# slicer-layer-dm (trame-slicer's layer displayable manager) pins slicer-core 5.11, so it cannot be resolved with
# the project's slicer-core 5.13: it is installed alone, without its dependencies (it works on 5.13).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,test,web]'
	$(BIN)/python -m pip install --quiet --no-deps slicer-layer-dm==2.0.0
	touch $(STAMP)
