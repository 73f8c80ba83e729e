# `make demo` and `make test` work on a fresh machine: each creates .venv as needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Test modules run in this many processes (pytest-xdist; each module whole in one of them,
# so its module fixtures run once). The suite is mostly XLA compiling, one core per process.
TEST_WORKERS ?= 2

.PHONY: demo test bench lint clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PY) -m pip install -q -e ".[test,dev]"
	touch $@

demo: $(VENV)/.base
	$(PY) -m moseq.demo

test: $(VENV)/.test
	$(PY) -m ruff check moseq tests benchmarks
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(VENV)/.base
	$(PY) -m benchmarks

lint: $(VENV)/.test
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
