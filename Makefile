# The README's two commands: `make run` and `make test`. Everything they need is installed
# from here: the virtualenv, the package, and (as root) the Debian packages the tests use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_CAPTURE ?= captures/tour.pcapng

# The modules mypyc compiles (listed in analyzer/native.py): rebuilt when one changes.
NATIVE_SOURCES := $(shell sed -n 's|^    "\(.*\.py\)",$$|analyzer/\1|p' analyzer/native.py)

.PHONY: run test lint native system-deps bench profile fuzz clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    rm -rf $(VENV); apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "make: cannot create $(VENV): install python3-venv" >&2; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip

# An editable install as a plain path entry (compat): setuptools' default import hook
# costs every start ~10 ms (it imports pathlib), a sixth of `read` on a small file.
EDITABLE := --config-settings editable_mode=compat -e

$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q $(EDITABLE) '.[native]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q $(EDITABLE) '.[native,test]'
	@touch $@ $(VENV)/.installed

# Compiles the hot path with mypyc; without a C compiler it says so and the package stays
# pure Python (the stamp is then not written, so a later make tries again).
$(VENV)/.native: $(NATIVE_SOURCES) analyzer/tcp/_sha256.c analyzer/active/_tftp_bulk.c analyzer/native.py scripts/build_native.py | $(VENV)/.installed
	$(BIN)/python scripts/build_native.py --stamp $@

native: $(VENV)/.native

run: $(VENV)/.installed $(VENV)/.native
	$(BIN)/analyzer read $(RUN_CAPTURE)

system-deps:
	@bash scripts/install-test-deps.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check analyzer tests benchmarks scripts
	$(BIN)/mypy

# system-deps first: it installs the C compiler the native build needs.
test: $(VENV)/.installed-test system-deps $(VENV)/.native lint
	$(BIN)/pytest

# make bench BENCH_ARGS="--sizes 100k,1M,5M --repeat-limit 60" for the full run (~15 min)
BENCH_ARGS ?=
bench: $(VENV)/.installed-test system-deps $(VENV)/.native
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Seeded mutation fuzzing of the CLI (scripts/fuzz.py; `make test` runs a fixed share):
# make fuzz FUZZ_CASES=20000 FUZZ_SEED=7 (FUZZ_ARGS="--seconds 3600" to stop on time)
FUZZ_CASES ?= 2000
FUZZ_SEED ?= 1
FUZZ_ARGS ?=
fuzz: $(VENV)/.installed-test $(VENV)/.native
	$(BIN)/python scripts/fuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) $(FUZZ_ARGS)

profile: $(VENV)/.installed-test $(VENV)/.native
	$(BIN)/python benchmarks/profile.py

clean:
	rm -rf $(VENV) .deps .pytest_cache build
	find analyzer -name '*.so' -delete
