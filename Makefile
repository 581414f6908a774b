# Quick start: `make demo` runs the suite against the embedded lab; `make test` runs the project's
# own checks (ruff, mypy, tests). Both create .venv and install from the package registries;
# `make test` also installs Debian's chromium for its browser test when it can, and stops before
# any test with one sentence when it cannot (tools/test-prerequisites).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs the project's tests in TEST_WORKERS parallel processes (pytest-xdist); each test
# module stays on one worker (--dist loadscope), so a module's lab starts once. The default is two
# per core: many tests wait on a lab, a timeout or a subprocess (on 2 cores, 4 workers take 305 s
# where 2 take 345 s, and 6 take 295 s where 4 take 285 s). TEST_WORKERS=0 runs them in one
# process, as `pytest tests` does. --no-loadscope-reorder: tests/conftest.py orders the modules
# (those marked `long` first, then by number of tests), so that a long module of few tests does
# not start last and finish alone.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
# Allure Report 3 for the HTML report: npm `allure`, pinned in package-lock.json, installed by npm ci.
NODE_STAMP := node_modules/.installed
SITE ?=

.PHONY: install demo test lint clean nightly fleet node-install test-prerequisites

# pip installs uv (pinned in constraints.txt) into .venv, and uv installs the rest: on 2 cores a
# fresh .venv takes 12-15 s that way (11-14 CPU-seconds) where pip alone takes 37 s (33). uv trusts
# the system's certificate store, as pip does where it is configured to (a proxy's or a company's
# CA; uv's own roots are the public ones only). Where uv cannot be installed or cannot install (no
# uv wheel for the platform, say), pip does it all.
# Both leave every installed module compiled (uv's --compile-bytecode; pip does it by default), and
# compileall compiles the suite's own src/ (an editable install's code stays where it is): where
# the environment sets PYTHONDONTWRITEBYTECODE, as container images often do, Python writes no
# cache of its own and would otherwise compile pydantic, cryptography, pytest and the rest from
# source at every start (a cold `pytest -m verify` 1.46 s instead of 0.96 s; the project's tests
# 20 % more CPU). It adds about 1.5 s to a fresh .venv.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	($(PIP) uv && $(BIN)/uv pip install --quiet --compile-bytecode --system-certs --python $(BIN)/python -c constraints.txt -e '.[dev]') \
	  || (echo "uv could not install the packages: pip installs them" && $(PIP) -e '.[dev]')
	$(BIN)/python -m compileall -q src
	touch $@

install: $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node-install: $(NODE_STAMP)

# pytest exits 5 when a marker selects no test: for a marker whose tests do not exist yet that is
# "nothing to do", not a failure.
define run_marker
	@$(BIN)/python -m pytest -m $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "nothing to do for -m $(1): no tests with that marker yet"; exit 0; fi; \
	exit $$rc
endef

demo: install
	$(call run_marker,setup)
	@$(MAKE) --no-print-directory nightly
	@echo 'The commands smartid and smartid-lab are in $(CURDIR)/$(BIN); to run them by name:'
	@echo '  export PATH="$(CURDIR)/$(BIN):$$PATH"   (or: . $(BIN)/activate)'
	@echo 'then: smartid setup --plan, smartid verify, smartid lab status (smartid --help)'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-prerequisites:
	@tools/test-prerequisites

test: test-prerequisites lint $(NODE_STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# verify against SITE (default: the lab) with JUnit XML, reports/summary.json and the HTML report
# with trend history. make exits 2 on any failure; cron gets the exact code (0, 1, 2, 3, 4) from
# .venv/bin/python -m smartid.report.nightly run (see docs/operations.md).
nightly: install $(NODE_STAMP)
	$(BIN)/python -m smartid.report.nightly run $(if $(SITE),--site=$(SITE)) -- $(PYTEST_ARGS)

# the nightly of every site in SITES (files or folders of *.toml), JOBS at a time (default: the
# cores), then reports/fleet.json and reports/fleet-junit.xml (docs/fleet.md); exit: the worst site's.
SITES ?= sites/lab.toml
JOBS ?=
fleet: install $(NODE_STAMP)
	$(BIN)/python -m smartid.report.fleet run $(SITES) $(if $(JOBS),-j $(JOBS)) -- $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) reports/allure-results .lab .smartid
