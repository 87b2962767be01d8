"""The connection form of the ``capillary`` connection type, derived from its one declaration.

Private to the hook. Airflow 3.2+ reads the form from the provider info and never calls the hook's form
methods (so they raise no deprecation warning there); Airflow 3.1 knows only those methods, whose bodies
live here.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "capillary"


def connection_type_info() -> dict[str, Any]:
    """The ``capillary`` entry of the provider info: the one declaration of the connection form."""
    from capillary_provider.get_provider_info import get_provider_info

    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == CONN_TYPE:
            return dict(entry)
    raise LookupError(f"get_provider_info declares no {CONN_TYPE!r} connection type")


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden fields, labels and placeholders of the connection form, for Airflow 3.1."""
    behaviour = connection_type_info()["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Extra fields of the connection form (``coupon_host``), for Airflow 3.1.

    Airflow 3.1's API server replaces these UI packages with stand-ins when they are not installed.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField

    return {
        name: StringField(
            lazy_gettext(field["label"]), widget=BS3TextFieldWidget(), description=field.get("description", "")
        )
        for name, field in connection_type_info()["conn-fields"].items()
    }
