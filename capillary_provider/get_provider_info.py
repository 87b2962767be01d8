"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from capillary_provider import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its connection type and its modules to Airflow.

    The connection form is declared here (``ui-field-behaviour`` and ``conn-fields``) rather than in
    hook methods: Airflow 3.2 reads it from here without importing the hook. There is no
    ``documentation-url`` (optional in Airflow's schema): nothing is published yet, and it must not
    point at a page that does not exist (the docs ship in the sdist, ``docs/``).
    """
    return {
        "package-name": "airflow-provider-capillary",
        "name": "Capillary",
        "description": "Upload coupon codes to Capillary (InTouch) coupon series, and wait for the verdict.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "capillary",
                "hook-class-name": "capillary_provider.hooks.capillary.CapillaryHook",
                "hook-name": "Capillary",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "API host",
                        "login": "Client key",
                        "password": "Client secret",
                    },
                    "placeholders": {
                        "host": "eu.api.capillarytech.com",
                        "login": "OAuth client key of the API client",
                        "password": "OAuth client secret of the API client",
                        "extra": '{"coupon_host": "eu.intouch.capillarytech.com"}',
                    },
                },
                "conn-fields": {
                    "coupon_host": {
                        "label": "Coupon host",
                        "description": (
                            "Host of the /coupon/api/v1 endpoints, e.g. eu.intouch.capillarytech.com. "
                            "Leave empty to use the API host."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify": {
                        "label": "Verify TLS",
                        "description": (
                            "Path of a CA bundle for a corporate TLS proxy, or false to skip certificate "
                            "checks (not recommended). Leave empty for the system's CAs."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "proxies": {
                        "label": "Proxy",
                        "description": "Proxy URL for every call, e.g. http://proxy.example.com:3128.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "timeout": {
                        "label": "Timeout",
                        "description": "Seconds, or connect,read seconds (e.g. 10,120). Leave empty for 10,120.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "max_calls_per_minute": {
                        "label": "Status calls per minute",
                        "description": "Budget of the status calls of all waits on this connection (default 60).",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            }
        ],
        "hooks": [{"integration-name": "Capillary", "python-modules": ["capillary_provider.hooks.capillary"]}],
        "operators": [
            {
                "integration-name": "Capillary",
                "python-modules": [
                    "capillary_provider.operators.coupon_upload",
                    "capillary_provider.operators.redeemed_coupon_upload",
                ],
            }
        ],
        "sensors": [{"integration-name": "Capillary", "python-modules": ["capillary_provider.sensors.coupon_upload"]}],
        "triggers": [
            {
                "integration-name": "Capillary",
                "python-modules": ["capillary_provider.triggers.coupon_upload"],
            }
        ],
        "integrations": [
            {
                "integration-name": "Capillary",
                "external-doc-url": "https://docs.capillarytech.com/reference/upload-coupons-batch",
                "tags": ["service"],
            }
        ],
    }
