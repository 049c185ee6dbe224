# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all test-engines bench clean demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# Reinstall only when the packaging changes; the editable install picks up code edits by itself.
$(STAMP): setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q tests

# The slow tier too (long videos, 4K): minutes more.
test-all: install
	$(PY) -m pytest -q -m "slow or not slow" tests

# preprocess and infer on a real Flink cluster (JobManager + 2 TaskManagers) and on Prism, compared with the
# DirectRunner. engines/fetch.sh fetches Flink (PyPI), builds Beam's Flink job server (Maven) and Prism
# (Go) into .engines/ once (~5 min cold, seconds after); every process the tests start is stopped.
test-engines: install
	bash engines/fetch.sh
	$(PY) -m pytest -q -m engines tests/engines

bench: install
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

# The whole chain on a synthetic dataset (about 5-10 minutes on 2 cores); outputs in demo-work/.
demo: install
	$(VENV)/bin/vidclass demo --workdir demo-work
