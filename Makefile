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
# The Ray backend's tests (tests_ray/) get one too: Ray is an optional extra (~70 MB installed, a
# ~600 MiB local cluster at run time), so the default environment never has it. Its tests run as
# a second pytest invocation against one local 2-CPU cluster.
RAY_VENV  ?= .venv-ray
RAY_STAMP := $(RAY_VENV)/.installed

.PHONY: demo test bench install clean browser

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

$(RAY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/pip install --quiet --upgrade pip
	$(RAY_VENV)/bin/pip install --quiet -e '.[ray]' 'pytest>=8,<10' 'pytest-asyncio>=1.0,<2'
	touch $(RAY_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/scenario demo $(DEMO_ARGS)

# The viewer's browser tests drive Debian's chromium through Playwright (no browser download).
# Installed when missing; where apt-get cannot run (not root) the tests skip, except in CI.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	( echo "installing chromium for the browser tests" && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ) || \
	( [ -z "$$CI" ] && echo "could not install chromium (apt-get needs root): the browser tests will be skipped" )

# pytest exits 5 when it collects no test: treat that as a failure too, loudly. The Ray tests run
# even when the main suite failed (both results are worth seeing); either failing fails the target.
test: $(STAMP) $(PHOENIX_STAMP) $(RAY_STAMP) browser
	SCENARIO_PHOENIX_PYTHON=$(abspath $(PHOENIX_VENV))/bin/python \
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; rc=1; fi; \
	LITELLM_LOCAL_MODEL_COST_MAP=True $(RAY_VENV)/bin/python -m pytest -q tests_ray $(RAY_PYTEST_ARGS); ray_rc=$$?; \
	if [ $$ray_rc -eq 5 ]; then echo "no Ray tests were collected"; ray_rc=1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$ray_rc

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) $(RAY_VENV) build *.egg-info
