"""The connection's HTTP extras, private to the hook: ``timeout``, ``verify`` and ``proxies``, read and
checked (a wrong value fails naming the connection, the extra and the shape it must have).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capillary_provider.exceptions import CapillaryConfigError

DEFAULT_TIMEOUT = (10.0, 120.0)
"""(connect, read) seconds. The read timeout also bounds how long Capillary may take to answer an upload."""


def read_timeout(conn_id: str, value: Any) -> tuple[float, float]:
    """(connect, read) seconds from the ``timeout`` extra: seconds, ``[connect, read]`` or ``"10, 120"``."""
    try:
        if value in (None, ""):
            return DEFAULT_TIMEOUT
        if isinstance(value, str) and "," in value:  # "10, 120" from the connection form
            value = value.strip("[] ").split(",")
        if isinstance(value, (list, tuple)):
            connect, read = (float(part) for part in value)
            return connect, read
        return float(value), float(value)
    except (TypeError, ValueError):
        raise CapillaryConfigError(
            f"Connection {conn_id!r}: the extra 'timeout' must be seconds or [connect, read], not {value!r}"
        ) from None


def read_http_settings(conn_id: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``verify`` and ``proxies`` from the connection's extras, as ``requests`` takes them per request."""
    settings: dict[str, Any] = {}
    verify = extra.get("verify")
    if isinstance(verify, str) and verify.strip().lower() in ("false", "true"):
        verify = verify.strip().lower() == "true"
    if verify not in (None, ""):
        if not isinstance(verify, (bool, str)):
            raise CapillaryConfigError(
                f"Connection {conn_id!r}: the extra 'verify' must be true, false or the path of a CA bundle, "
                f"not {verify!r}"
            )
        settings["verify"] = verify
    proxies = extra.get("proxies")
    if isinstance(proxies, str) and proxies.strip():  # one proxy URL from the connection form
        proxies = {"http": proxies.strip(), "https": proxies.strip()}
    if proxies:
        if not isinstance(proxies, Mapping):
            raise CapillaryConfigError(
                f"Connection {conn_id!r}: the extra 'proxies' must map a scheme to a proxy URL, "
                'e.g. {"https": "http://proxy:3128"}'
            )
        settings["proxies"] = {str(k): str(v) for k, v in proxies.items()}
    return settings
