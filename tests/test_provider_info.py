"""The provider info Airflow discovers: it matches the code, and Airflow's own CLI and form builder read it right."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow.providers_manager import (
    _create_customized_form_field_behaviours_schema_validator,
    _create_provider_info_schema_validator,
)

from capillary_provider import __version__
from capillary_provider.get_provider_info import get_provider_info
from capillary_provider.hooks.capillary import CapillaryHook

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow-provider-capillary"


def _connection_type() -> dict[str, Any]:
    (entry,) = get_provider_info()["connection-types"]
    return dict(entry)


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project: dict[str, Any] = tomllib.load(handle)["project"]
    return project


def _airflow_cli(*args: str, tmp_path: Path) -> str:
    """Run the ``airflow`` CLI of this interpreter's environment in a throw-away AIRFLOW_HOME; return stdout."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        }
    )
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result.stdout


def _json_from(output: str) -> Any:
    """The JSON document in a CLI's stdout (Airflow may print log lines before it)."""
    start = min(i for i in (output.find("["), output.find("{")) if i >= 0)
    return json.loads(output[start:])


def test_provider_info_is_valid_for_airflows_schema() -> None:
    _create_provider_info_schema_validator().validate(get_provider_info())


def test_ui_field_behaviour_is_valid_for_airflows_schema() -> None:
    behaviour = _connection_type()["ui-field-behaviour"]
    python_style = {key.replace("-", "_"): value for key, value in behaviour.items()}
    _create_customized_form_field_behaviours_schema_validator().validate(python_style)


def test_package_name_and_version_match_the_distribution() -> None:
    info = get_provider_info()
    assert info["package-name"] == _project()["name"] == PACKAGE
    assert info["versions"] == [__version__]


def test_no_documentation_url_while_nothing_is_published() -> None:
    # The docs are not online anywhere yet: a URL here (or in pyproject) would lead users to a missing page.
    assert "documentation-url" not in get_provider_info()
    assert "urls" not in _project()


def test_connection_type_matches_the_hook_class() -> None:
    entry = _connection_type()
    module_name, class_name = entry["hook-class-name"].rsplit(".", 1)
    hook_class = getattr(importlib.import_module(module_name), class_name)
    assert hook_class is CapillaryHook
    assert entry["connection-type"] == CapillaryHook.conn_type == "capillary"
    assert entry["hook-name"] == CapillaryHook.hook_name
    assert CapillaryHook.default_conn_name == "capillary_default"


def test_hook_accepts_its_conn_name_attr_keyword() -> None:
    """``Connection.get_hook()`` builds the hook as ``CapillaryHook(**{conn_name_attr: conn_id})``."""
    hook = CapillaryHook(**{CapillaryHook.conn_name_attr: "some_conn"})
    assert hook.capillary_conn_id == "some_conn"
    assert "capillary_conn_id" in inspect.signature(CapillaryHook.__init__).parameters


@pytest.mark.parametrize("kind", ["hooks", "operators", "sensors", "triggers"])
def test_listed_modules_import(kind: str) -> None:
    modules = [module for group in get_provider_info()[kind] for module in group["python-modules"]]
    assert modules, f"no {kind} listed"
    for module in modules:
        importlib.import_module(module)


def test_every_public_class_is_listed() -> None:
    from capillary_provider.operators.coupon_upload import CouponUploadOperator
    from capillary_provider.sensors.coupon_upload import CouponUploadSensor
    from capillary_provider.triggers.coupon_upload import CouponUploadTrigger

    info = get_provider_info()
    listed = {
        module for kind in ("operators", "sensors", "triggers") for g in info[kind] for module in g["python-modules"]
    }
    assert {CouponUploadOperator.__module__, CouponUploadSensor.__module__, CouponUploadTrigger.__module__} <= listed


def test_hook_form_methods_match_the_provider_info() -> None:
    """Airflow 3.1 reads the form from the hook's methods: they must say what the provider info says."""
    entry = _connection_type()
    behaviour = CapillaryHook.get_ui_field_behaviour()
    assert behaviour == {key.replace("-", "_"): value for key, value in entry["ui-field-behaviour"].items()}
    assert entry["conn-fields"].keys() == {"coupon_host", "verify", "proxies", "timeout", "max_calls_per_minute"}


def test_coupon_host_placeholder_is_valid_extra_json() -> None:
    placeholder = _connection_type()["ui-field-behaviour"]["placeholders"]["extra"]
    assert json.loads(placeholder) == {"coupon_host": "eu.intouch.capillarytech.com"}


def test_api_server_form_metadata_has_labels_placeholders_and_coupon_host() -> None:
    """What the API server sends the UI for the Capillary form, built the way this Airflow version builds it."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "capillary"]
    ours = [str(w.message) for w in caught if "capillary" in str(w.message).lower()]
    assert ours == [], "deprecation or other warnings about the Capillary hook"
    fields = meta.standard_fields
    assert fields is not None
    assert fields.host is not None
    assert fields.host.title == "API host"
    assert fields.host.placeholder == "eu.api.capillarytech.com"
    assert fields.login is not None
    assert fields.login.title == "Client key"
    assert fields.password is not None
    assert fields.password.title == "Client secret"
    assert fields.port is not None
    assert fields.port.hidden
    assert fields.url_schema is not None
    assert fields.url_schema.hidden
    assert meta.extra_fields is not None
    assert "coupon_host" in meta.extra_fields
    coupon_host = json.loads(json.dumps(meta.extra_fields["coupon_host"], default=str))
    assert coupon_host["schema"]["title"] == "Coupon host"
    assert "Leave empty to use the API host" in coupon_host["description"]


@pytest.mark.slow
def test_airflow_providers_get_shows_description_and_version_and_no_docs_url(tmp_path: Path) -> None:
    (shown,) = _json_from(_airflow_cli("providers", "get", PACKAGE, "--full", "--output", "json", tmp_path=tmp_path))
    assert shown["package-name"] == PACKAGE
    assert shown["versions"] == [__version__]
    # Airflow's CLI strips trailing dots from the description; Airflow 3.1 keeps the space after the
    # comma of the Project-URL metadata in front of the URL.
    assert shown["description"] == get_provider_info()["description"].strip(" .")
    # Airflow takes the documentation URL from the installed distribution's Project-URL metadata: there is none
    # (Airflow 3.3 shows the key with null, earlier releases leave it out).
    assert shown.get("documentation-url") is None


@pytest.mark.slow
def test_airflow_providers_get_short_form_shows_the_version(tmp_path: Path) -> None:
    shown = _json_from(_airflow_cli("providers", "get", PACKAGE, "--output", "json", tmp_path=tmp_path))
    assert shown == [{"Provider": PACKAGE, "Version": __version__}]


@pytest.mark.slow
def test_airflow_providers_hooks_lists_capillary(tmp_path: Path) -> None:
    hooks = _json_from(_airflow_cli("providers", "hooks", "--output", "json", tmp_path=tmp_path))
    (ours,) = [hook for hook in hooks if hook["connection_type"] == "capillary"]
    assert ours["class"] == "capillary_provider.hooks.capillary.CapillaryHook"
    assert ours["package_name"] == PACKAGE
    assert ours["hook_name"] == "Capillary"
    assert ours["conn_id_attribute_name"] == "capillary_conn_id"
