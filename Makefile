# Quick start: `make demo` (upload through real Airflow to the local sandbox) and `make test`.
#
# One virtualenv per Airflow/Python pair, every package pinned by a constraints file of ours:
#   make test PYTHON=python3.12 AIRFLOW_VERSION=3.2.2 VENV=.venv-3.2
# CONSTRAINTS defaults to constraints/airflow-$(AIRFLOW_VERSION)-py<PYTHON's version>.txt; `make constraints`
# writes it for a new pair, `CONSTRAINTS=` installs unpinned.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
CONSTRAINTS ?= constraints/airflow-$(AIRFLOW_VERSION)-py$(PYTHON_VERSION).txt
BIN := $(VENV)/bin
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)-py$(PYTHON_VERSION)
# gs:// sources need the Google provider (extra gcs), which adds about 1.6 GB and minutes of install to a
# virtualenv: more than CI can pay on every pair. One pair installs and tests it, the newest (the browser test's
# too); the others neither install nor pin it, and `make test` deselects its tests (marker gcs) with -m there, so
# they are not run and not counted as skipped. GCS=yes or GCS=no overrides the choice for a local run.
GCS_PAIR := 3.3.2-py3.13
GCS ?= $(if $(filter $(GCS_PAIR),$(AIRFLOW_VERSION)-py$(PYTHON_VERSION)),yes,no)
comma := ,
TEST_EXTRAS := test$(if $(filter yes,$(GCS)),$(comma)test-gcs)
# A command-line -m replaces pyproject.toml's addopts, so its "not deployment" is repeated here.
NOT_GCS := $(if $(filter yes,$(GCS)),,-m "not deployment and not gcs")
UV = $(if $(wildcard $(BIN)/uv),$(BIN)/uv,uv)
# Chromium for tests/test_connection_form_browser.py, which drives /usr/bin/chromium.
CHROMIUM := /usr/bin/chromium
# Azurite (Azure Blob Storage emulator, Node.js) for tests/test_storage_cloud.py, in a folder this Makefile owns.
AZURITE_VERSION := 3.37.0
AZURITE := .tools/node_modules/.bin/azurite-blob

.PHONY: venv dist demo test test-fast lint browser chromium gnupg azurite constraints deploy-test deploy-debs clean mutation

venv: $(STAMP)

# uv resolves and installs Airflow in seconds where pip takes minutes; it is installed into the venv itself.
$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@if [ -z "$(PYTHON_VERSION)" ]; then echo "make: cannot run $(PYTHON) (set PYTHON=python3.11, 3.12 or 3.13)" >&2; exit 1; fi
	@if [ -n "$(CONSTRAINTS)" ] && [ ! -f "$(CONSTRAINTS)" ]; then \
	  echo "make: no constraints file $(CONSTRAINTS) for Airflow $(AIRFLOW_VERSION) on Python $(PYTHON_VERSION)." >&2; \
	  echo "      The pinned pairs are in constraints/. 'make constraints' writes one for this pair; CONSTRAINTS= installs unpinned." >&2; \
	  exit 1; fi
	@# Debian's Python needs python3.X-venv for `-m venv`: install it when missing and allowed to.
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && apt-get install -y -q python$(PYTHON_VERSION)-venv; fi
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet uv $(PIN)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[$(TEST_EXTRAS)]"
	touch $@

# The sdist and the wheel in dist/, checked as PyPI checks them (tests/test_packaging.py does the same in `make test`).
dist: venv
	rm -rf dist
	$(BIN)/uv build --out-dir dist .
	$(BIN)/twine check --strict dist/*

demo: venv
	$(BIN)/python -m capillary_provider.sandbox.dag_test capillary_coupon_upload --dags-folder example_dags

# The suite in TEST_WORKERS processes (pytest-xdist), each test module kept whole in one of them (--dist loadfile):
# a module's fixtures and servers start once, as they do in a serial run. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 3
test: venv lint chromium gnupg azurite
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(NOT_GCS) $(PYTEST_ARGS)

# The inner loop: every test that needs no server, no browser, no new process and no long property (marker slow):
# 767 tests in 42 s on 2 cores (measured with a helper running). Not a substitute for `make test`, which also runs
# the slow ones, the sandbox, the stores and the DAGs end to end.
FAST_MARKERS := not integration and not e2e and not browser and not s3 and not sftp and not azure and not gcs and not deployment and not slow
test-fast: venv
	$(BIN)/python -m pytest -p no:cacheprovider -q -n $(TEST_WORKERS) --dist loadfile -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check capillary_provider tests example_dags benchmarks tools
	$(BIN)/ruff format --check capillary_provider tests example_dags benchmarks tools
	$(BIN)/mypy --strict capillary_provider

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml) with the fast unit tests only;
# not part of `make test` (it takes minutes). MUTANTS="capillary_provider.jobs*" limits it to one module.
MUTANTS ?=
mutation: venv
	$(BIN)/mutmut run --max-children 2 $(MUTANTS); status=$$?; \
	$(BIN)/python tools/mutation_report.py --survivors; exit $$status

browser: venv chromium
	$(BIN)/python -m pytest -p no:cacheprovider -m browser

# Debian's chromium when it is missing and we are root; else Playwright's own download; else a clear failure
# (the browser test then has no browser: it errors, it is never skipped).
chromium: venv
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && apt-get install -y -q chromium && exit 0; fi; \
	if $(BIN)/python -m playwright install chromium; then exit 0; fi; \
	echo "make: the browser test needs Chromium: no $(CHROMIUM), not root for 'apt-get install chromium'," >&2; \
	echo "      and 'playwright install chromium' failed. Install Debian's chromium package, then run make test again." >&2; \
	exit 1

# GnuPG (gpg, gpg-agent) for PGP-encrypted sources and tests/test_pgp_sources.py: Debian's gnupg package,
# installed when missing and we are root, else a clear failure (the tests never skip).
gnupg:
	@if command -v gpg >/dev/null 2>&1 && command -v gpg-agent >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnupg && exit 0; fi; \
	echo "make: PGP-encrypted sources and their tests need GnuPG: install Debian's gnupg package (apt-get install gnupg as root), then run make test again." >&2; \
	exit 1

# Azurite from npm into .tools/ (node and npm needed); the tests start and stop it themselves.
azurite: $(AZURITE)

$(AZURITE):
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs \
	  && { command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }; fi
	@command -v npm >/dev/null || { echo "make: the Azure tests need Azurite from npm: install Debian's nodejs and npm packages, then run make test again." >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools azurite@$(AZURITE_VERSION)
	touch $@

# Pin every package of Airflow $(AIRFLOW_VERSION) + this provider's extras on Python $(PYTHON_VERSION), as Airflow's own
# constraints files do (those live on GitHub; ours are resolved from PyPI). Input: constraints/airflow-$(AIRFLOW_VERSION).in.
# Needs uv: the venv's, or one on PATH. Every extra of pyproject.toml is pinned, but gcs and test-gcs on GCS_PAIR only.
EXTRAS = $(shell $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"])')
PINNED_EXTRAS = $(if $(filter yes,$(GCS)),$(EXTRAS),$(filter-out gcs test-gcs,$(EXTRAS)))
constraints:
	$(UV) pip compile --quiet --universal --python-version $(PYTHON_VERSION) $(foreach e,$(PINNED_EXTRAS),--extra $(e)) \
	  pyproject.toml constraints/airflow-$(AIRFLOW_VERSION).in -o $(CONSTRAINTS)

# A distributed Airflow (PostgreSQL, Redis, CeleryExecutor, moto's S3) with crashes: docs/deployment-test.md.
deploy-test: venv deploy-debs $(STAMP)-deploy
	$(BIN)/python -m pytest -p no:cacheprovider -m deployment tests/deployment -v $(PYTEST_ARGS)

$(STAMP)-deploy: $(STAMP)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[$(TEST_EXTRAS),deploy]"
	touch $@

# PostgreSQL and Redis from Debian's packages: installed when missing and we are root, else a clear failure.
deploy-debs:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "make deploy-test needs the Debian packages:$$missing. Install them (apt-get install$$missing as root) and run it again." >&2; \
	    exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .venv-* dist .tools .mypy_cache .ruff_cache test-artifacts
