# market-intel: `make run` runs the main job, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
RUST_SOURCES := $(shell find crates -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml Cargo.lock

.PHONY: help run test test-rust test-python bench lint build clean lmax-deps quickfix

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  print('\n'.join(p['dependencies'] + [d for g in p['optional-dependencies'].values() for d in g]))" \
	  > $(VENV)/requirements.txt
	$(PIP) install -q -r $(VENV)/requirements.txt
	touch $@

$(BUILD_STAMP): $(STAMP) $(RUST_SOURCES)
	. $(VENV)/bin/activate && maturin develop --release -q
	touch $@

build: $(BUILD_STAMP) ## Build the extension in release mode into the virtual environment

run: build ## Run the main job: replay the packaged Binance sample through the engine
	OPENBLAS_NUM_THREADS=1 $(PY) -m market_intel run

test: test-rust test-python ## Run every Rust and Python test

test-rust: ## Rust unit, topology and stress tests
	cargo test -p market-intel-core -p market-intel-adapters --release

test-python: build ## Python tests
	$(PY) -m pytest -q

quickfix: ## Install Debian's QuickFIX example engines, the FIX tests' counterparty (tests do it too)
	bash scripts/quickfix.sh .quickfix

LMAX_JARS := /usr/share/java/disruptor.jar /usr/share/java/hdrhistogram.jar

lmax-deps:
	@test -f /usr/share/java/disruptor.jar -a -f /usr/share/java/hdrhistogram.jar || \
	  (apt-get update -qq && apt-get install -y -qq libdisruptor-java libhdrhistogram-java)

bench: build lmax-deps ## Benchmarks: medians and ratios against peers measured in the same run, JSON in benchmarks/results
	OPENBLAS_NUM_THREADS=1 $(PY) -m benchmarks.run

lint: $(STAMP) ## ruff, mypy --strict, stubtest, cargo fmt and clippy
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest market_intel._core --allowlist stubtest-allowlist.txt
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

clean: ## Remove build outputs and the virtual environment
	rm -rf target $(VENV) benchmarks/results/*.json .quickfix
