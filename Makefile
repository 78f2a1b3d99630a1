# The README's two commands: `make run` and `make test`. Everything they need is installed
# from here: the virtualenv, the package, and (as root) the Debian packages the tests use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_CAPTURE ?= captures/tour.pcapng

.PHONY: run test lint system-deps bench profile clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    rm -rf $(VENV); apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "make: cannot create $(VENV): install python3-venv" >&2; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/analyzer read $(RUN_CAPTURE)

system-deps:
	@bash scripts/install-test-deps.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check analyzer tests benchmarks

test: $(VENV)/.installed-test system-deps lint
	$(BIN)/pytest

# make bench BENCH_ARGS="--sizes 100k,1M,5M --repeat-limit 60" for the full run (~15 min)
BENCH_ARGS ?=
bench: $(VENV)/.installed-test system-deps
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

profile: $(VENV)/.installed-test
	$(BIN)/python benchmarks/profile.py

clean:
	rm -rf $(VENV) .deps .pytest_cache
