# Two commands set up everything on a fresh machine (Python 3.11):
#   make run    install into .venv, build the demo city, serve it at http://127.0.0.1:8050
#   make test   install test needs (incl. Mosquitto and Chromium from Debian packages) and run the suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# axe-core, the accessibility engine the browser tests inject into every page (tests/axe_helpers.py): the npm
# registry's tarball at this version, checked against its published SHA-512 and unpacked into the git-ignored
# tests/vendor/ by tests/fetch_axe.py (no Node.js needed; the app never loads it).
AXE_CORE := 4.14.1
AXE_JS   := tests/vendor/axe-core-$(AXE_CORE)/axe.min.js

.PHONY: run serve test test-fast bench-ingest bench-ingest-memory bench-clusters bench-forecast bench-delivery bench-briefing bench-address-check bench-panic bench-writer bench-readings-index bench-scale bench-pages bench-jobs bench system-deps axe-core venv clean

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
# page tests, and the briefing's PDF printer) come from Debian packages; poppler-utils (pdftotext,
# pdfimages) reads the briefing PDFs back in the tests. Installed only when missing; `make run` works
# without them (the briefing page then says what the PDF needs).
system-deps:
	@if ! { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } \
	   || ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
	   || ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdfimages >/dev/null 2>&1; then \
	  echo "installing mosquitto, chromium, chromium-driver and poppler-utils from Debian packages"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto chromium chromium-driver fonts-dejavu-core poppler-utils >/dev/null; \
	fi

$(AXE_JS): | venv
	$(BIN)/python tests/fetch_axe.py $(AXE_CORE) $(@D)

axe-core: $(AXE_JS)

# Two workers (pytest-xdist), each test file on one of them: a file's module fixtures (servers, cities) are
# built once. TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2
test: venv system-deps $(AXE_JS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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

# Rolling-origin backtest of the early-warning forecast: every candidate and the job's method on the demo city,
# Malaysian states and NYC (tuning vs out-of-sample series marked); a few minutes.
bench-forecast: venv
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/forecast_backtest.py $(BENCH_ARGS)

# Delivery latency per channel (MQTT, webhook, e-mail to real local peers), outbox vs a direct send.
bench-delivery: venv system-deps
	$(BIN)/python bench/delivery.py $(BENCH_ARGS)

# The briefing PDF: render time (p50 of 5) and size, against the page's JSON render in the same run.
bench-briefing: venv system-deps
	$(BIN)/python bench/briefing_pdf.py

# The address check on the 120-day demo city: p50/p95 per check and per keystroke of the address search,
# against a naive scan of every address, polygon and case in the same run (builds the demo: ~1 min).
bench-address-check: venv
	$(BIN)/python bench/address_check.py $(BENCH_ARGS)

# Panic-button latency: MQTT publish -> the press on a kiosk wall in headless Chromium, p50/p95 over 20
# presses, against the ceiling of batching + sensor job + refresh in the same run (~4 min; BENCH_ARGS=--presses=5).
bench-panic: venv system-deps
	$(BIN)/python bench/panic_latency.py $(BENCH_ARGS)

# The store writer: ms per 5,000-row readings batch at 0.1M, 1M and 5M stored rows, on the primary key
# against the old anti-join, in the same run (a few minutes).
bench-writer: venv
	$(BIN)/python bench/writer.py $(BENCH_ARGS)

# What the readings' primary key costs a bulk load: 10M readings through the store's insert against the same
# rows into a table without the key, in the same run (about two minutes).
bench-readings-index: venv
	$(BIN)/python bench/readings_index.py $(BENCH_ARGS)

# The issue-16 city (1M people and cases, 10M readings, 4,230 sensors) written as ingest files and loaded
# through the file ingest into var/bench/ (reused when there; long: BENCH_ARGS="--people 100000
# --readings 1000000" for a quick one).
bench-scale: venv
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

# Each analytics job at start-up, after a new case and again unchanged, on the demo city and the
# bench-scale city (a copy of each; the scale one takes several minutes).
bench-jobs: venv
	$(BIN)/python bench/jobs.py --dataset demo
	$(BIN)/python bench/jobs.py --dataset scale

# Every page's callbacks replayed over HTTP on the served demo city and the bench-scale city.
bench-pages: venv
	$(BIN)/python bench/pages.py --dataset demo
	$(BIN)/python bench/pages.py --dataset scale

# Every benchmark, one after the other (an hour or more).
bench: bench-ingest bench-ingest-memory bench-clusters bench-forecast bench-delivery bench-briefing \
       bench-address-check bench-panic bench-writer bench-readings-index bench-scale bench-pages bench-jobs

clean:
	rm -rf var .pytest_cache tests/artifacts
