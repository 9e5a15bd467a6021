# Two entry points on a fresh machine (each creates .venv when it is missing):
#   make run    set up, then train on the default preset (connect_four, 30 minutes, Ray
#               embedded, W&B offline); RUN_ARGS adds flags, e.g. RUN_ARGS="--minutes 5"
#   make test   set up, then run the test suite (everything except `gpu` tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.selfplay-installed

.PHONY: run test bench lint gpu-check clean

$(STAMP): pyproject.toml requirements/cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/cpu.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/selfplay train $(RUN_ARGS)

bench: $(STAMP)
	$(VENV)/bin/selfplay bench env
	$(VENV)/bin/selfplay bench net
	$(VENV)/bin/selfplay bench selfplay

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	TRITON_INTERPRET=1 $(PY) -m pytest -m "not gpu" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

gpu-check: $(STAMP)
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
