# Two commands set up everything on a fresh machine (Python 3.11):
#   make run    install into .venv, build the demo city, serve it at http://127.0.0.1:8050
#   make test   install test needs (incl. Mosquitto and Chromium from Debian packages) and run the suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run serve test test-fast bench-ingest bench-ingest-memory bench-clusters system-deps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

run: venv
	$(BIN)/python app.py demo

serve: venv
	$(BIN)/python app.py serve

# Mosquitto (real broker for the ingest tests) and Chromium + ChromeDriver (real browser for the
# page tests) come from Debian packages; installed only when missing.
system-deps:
	@if ! { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } \
	   || ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing mosquitto, chromium and chromium-driver from Debian packages"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto chromium chromium-driver fonts-dejavu-core >/dev/null; \
	fi

test: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench-ingest: venv system-deps
	$(BIN)/python bench/ingest.py

# Peak RSS of file ingest, streaming vs. whole-file, on 50 MB / 200 MB / 1 GB readings files (several
# minutes; BENCH_ARGS=--sizes=20,50 for a quick run).
bench-ingest-memory: venv
	$(BIN)/python bench/ingest_memory.py $(BENCH_ARGS)

bench-clusters: venv
	$(BIN)/python bench/clusters.py

clean:
	rm -rf var .pytest_cache tests/artifacts
