"""The series check before the first upload: an unknown or expired series fails before anything is sent."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from capillary_provider.exceptions import (
    CapillaryAuthError,
    CapillaryConfigError,
    CapillaryError,
    CapillaryPermanentApiError,
)
from capillary_provider.hooks._answers import ReauthRequired
from capillary_provider.hooks.capillary import CapillaryHook

NO_READ_ACCESS = 403
"""The series endpoint's answer to an API client without read access to coupon series: not a reason to stop."""


def check_series(hook: CapillaryHook, series_id: str, log: logging.Logger | Any) -> None:
    """Fail when Capillary does not know the series ("not found") or its ``validTillDate`` has passed
    ("expired"). Refused credentials, and any refusal other than "no read access" (403), fail at once with
    their own message: the upload would be refused the same way. The rest (no read access, a timeout, an
    unexpected answer) logs one warning and returns: the check must never stop a valid upload.
    """
    try:
        series = hook.get_coupon_series(series_id)
        valid_till = _parse_time(series.get("validTillDate")) if series is not None else None
    except (CapillaryAuthError, ReauthRequired):
        raise
    except CapillaryError as exc:
        if isinstance(exc, CapillaryPermanentApiError) and exc.http_status != NO_READ_ACCESS:
            raise
        log.warning("Could not check coupon series %s before uploading (%s); uploading anyway", series_id, exc)
        return
    if series is None:
        raise CapillaryConfigError(
            f"Capillary does not know coupon series {series_id} (not found): check coupon_series_id and the "
            "connection's cluster. Nothing was uploaded."
        )
    if valid_till is not None and valid_till < datetime.now(UTC):
        raise CapillaryConfigError(
            f"Coupon series {series_id} expired on {series.get('validTillDate')}: extend its validity in "
            "Capillary or upload to another series. Nothing was uploaded."
        )


def _parse_time(value: object) -> datetime | None:
    """An ISO 8601 time with offset (``2030-09-30T00:00:00+05:30``); None if absent or unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)
