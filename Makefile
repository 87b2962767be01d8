# Quick start: `make demo` (upload through real Airflow to the local sandbox) and `make test`.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint browser deploy-test deploy-debs clean mutation

venv: $(VENV)/.installed-$(AIRFLOW_VERSION)

# uv resolves and installs Airflow in seconds where pip takes minutes; it is installed into the venv itself.
$(VENV)/.installed-$(AIRFLOW_VERSION): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: venv
	$(BIN)/python -m capillary_provider.sandbox.dag_test capillary_coupon_upload --dags-folder example_dags

test: venv lint
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check capillary_provider tests example_dags benchmarks
	$(BIN)/ruff format --check capillary_provider tests example_dags benchmarks
	$(BIN)/mypy --strict capillary_provider

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml) with the fast unit tests only;
# not part of `make test` (it takes minutes). MUTANTS="capillary_provider.jobs*" limits it to one module.
MUTANTS ?=
mutation: venv
	$(BIN)/mutmut run --max-children 2 $(MUTANTS); status=$$?; \
	$(BIN)/python tools/mutation_report.py --survivors; exit $$status

browser: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m browser

# A distributed Airflow (PostgreSQL, Redis, CeleryExecutor, moto's S3) with crashes: docs/deployment-test.md.
deploy-test: venv deploy-debs $(VENV)/.installed-deploy-$(AIRFLOW_VERSION)
	$(BIN)/python -m pytest -p no:cacheprovider -m deployment tests/deployment -v $(PYTEST_ARGS)

$(VENV)/.installed-deploy-$(AIRFLOW_VERSION): $(VENV)/.installed-$(AIRFLOW_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,deploy]"
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
	rm -rf $(VENV) .venv-* .mypy_cache .ruff_cache test-artifacts
