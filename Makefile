# Quick start: `make run` serves on http://127.0.0.1:8080, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench loadtest clean fuzz docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed-run

# nginx for tests/test_reverse_proxy.py: the machine's, else Debian's package unpacked into
# .venv/nginx (nothing installed system-wide, no service started). Without either the tests
# skip, and fail under IVIG_CDS_REQUIRE_SERVICES=1 (.ci/run).
$(VENV)/.installed-nginx: | $(BIN)/python
	@if command -v nginx >/dev/null || [ -x $(VENV)/nginx/usr/sbin/nginx ]; then :; \
	elif command -v apt-get >/dev/null; then \
		rm -rf $(VENV)/nginx-deb && mkdir -p $(VENV)/nginx-deb && cd $(VENV)/nginx-deb && \
		{ apt-get download -qq nginx 2>/dev/null || \
			{ apt-get update -qq && apt-get download -qq nginx 2>/dev/null; }; } && \
		dpkg -x nginx_*.deb ../nginx && cd .. && rm -rf nginx-deb || \
		echo "could not unpack Debian's nginx: tests/test_reverse_proxy.py will skip"; \
	else echo "no nginx and no apt-get: tests/test_reverse_proxy.py will skip"; fi
	touch $@

# Debian's chromium and chromedriver for the browser tests (tests/test_report_pages.py: the HTML
# reports; tests/test_demo_page.py: the demo order-entry page driven by selenium): installed with
# apt-get when missing and this runs as root. Without them those tests skip, and fail under
# IVIG_CDS_REQUIRE_SERVICES=1 (.ci/run).
$(VENV)/.installed-chromium: | $(BIN)/python
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			>/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver >/dev/null; }; } || \
		echo "could not install chromium: the browser tests will skip"; \
	else echo "no chromium and no root apt-get: the browser tests will skip"; fi
	touch $@

# The demo order-entry page is on here (http://127.0.0.1:8080/demo/), off by default elsewhere.
run: $(VENV)/.installed-run
	IVIG_CDS_DEMO_PAGE=$${IVIG_CDS_DEMO_PAGE:-1} $(BIN)/ivig-cds serve --host 127.0.0.1 --port 8080

test: $(VENV)/.installed-test $(VENV)/.installed-nginx $(VENV)/.installed-chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Hostile input at length: the property tests and schemathesis with many more examples than
# `make test` (IVIG_CDS_FUZZ_EXAMPLES per test / per operation), bounded in time.
FUZZ_EXAMPLES ?= 2000
fuzz: $(VENV)/.installed-test
	IVIG_CDS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) timeout 900 $(BIN)/pytest \
		tests/test_property_rules.py tests/test_schemathesis.py

# The service against a floor app, both over HTTP under gunicorn, then in process; about 3 minutes.
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench.py

# The generated docs: the topic and threshold tables, and openapi.yaml's examples (tests fail when
# a committed copy differs).
docs: $(VENV)/.installed-test
	$(BIN)/python -m hooks.docs --write docs
	$(BIN)/python tests/contract/openapi_examples.py --write

# The production server (gunicorn, 2 workers) under rising then sustained load; about 2 minutes.
loadtest: $(VENV)/.installed-run
	$(BIN)/python benchmarks/loadtest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
