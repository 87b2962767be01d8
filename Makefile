# Quick start: `make demo` (upload through real Airflow to the local sandbox) and `make test`.
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint browser clean

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

browser: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m browser

clean:
	rm -rf $(VENV) .venv-* .mypy_cache .ruff_cache test-artifacts
