# Two commands a newcomer needs: `make demo` and `make test`. Both build the environment first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The OTLP export test's trace receiver (Arize Phoenix) gets an environment of its own: installed
# beside the package it adds ~1 GB, moves pinned dependencies and slows every pytest start.
PHOENIX_VENV  ?= .venv-phoenix
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed
PHOENIX_REQ   := arize-phoenix==19.12.0

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/pip install --quiet '$(PHOENIX_REQ)'
	touch $(PHOENIX_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/scenario demo $(DEMO_ARGS)

# pytest exits 5 when it collects no test: treat that as a failure too, loudly.
test: $(STAMP) $(PHOENIX_STAMP)
	SCENARIO_PHOENIX_PYTHON=$(abspath $(PHOENIX_VENV))/bin/python \
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) build *.egg-info
