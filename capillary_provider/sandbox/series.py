"""Coupon series as ``GET /v2/coupon/series`` shows them.

Every positive series id is a valid series, valid until far in the future, unless a test said
otherwise (``POST /_sandbox/series/{id}``, ``--series-state ID=STATE``): ``unknown`` (absent from
``entity``), ``expired`` (``validTillDate`` in the past) or ``forbidden`` (the read answers 403).
"""

from __future__ import annotations

import threading
from typing import Any, Literal, get_args

SeriesState = Literal["valid", "unknown", "expired", "forbidden"]
SERIES_STATES: tuple[str, ...] = get_args(SeriesState)
VALID_TILL = "2099-12-31T23:59:59+05:30"
EXPIRED_TILL = "2020-01-31T23:59:59+05:30"
_OVERRIDABLE = frozenset(
    {
        "orgId", "description", "discountCode", "validTillDate", "clientHandlingType", "externalIssual",
        "numIssued", "numRedeemed", "numUploadedTotal", "numUploadedNonIssued", "maxCreate",
        "discountType", "discountValue", "seriesType",
    }
)  # fmt: skip


def parse_state(raw: str) -> tuple[int, SeriesState]:
    """``"42=expired"`` -> ``(42, "expired")``; ValueError when it is not that form."""
    series, sep, state = raw.partition("=")
    if not sep or not series.strip().isdigit() or int(series) <= 0 or state.strip() not in SERIES_STATES:
        raise ValueError(f"expected SERIES_ID=STATE with STATE one of {', '.join(SERIES_STATES)}, got {raw!r}")
    return int(series), state.strip()  # type: ignore[return-value]


class SeriesBook:
    """Thread-safe map of series id -> state and field overrides (absent: valid, no overrides)."""

    def __init__(self, initial: dict[int, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = dict(initial or {})
        self._states: dict[int, tuple[SeriesState, dict[str, Any]]] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the states given at start (``--series-state``)."""
        with self._lock:
            self._states = {sid: (state, {}) for sid, state in self._initial.items()}  # type: ignore[misc]

    def set(self, series_id: int, state: SeriesState, fields: dict[str, Any] | None = None) -> None:
        unknown = sorted(set(fields or {}) - _OVERRIDABLE)
        if unknown:
            raise ValueError(f"fields {unknown} cannot be set; settable: {sorted(_OVERRIDABLE)}")
        with self._lock:
            self._states[series_id] = (state, dict(fields or {}))

    def state(self, series_id: int) -> SeriesState:
        with self._lock:
            return self._states.get(series_id, ("valid", {}))[0]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {str(sid): {"state": state, "fields": fields} for sid, (state, fields) in self._states.items()}

    def entity(self, series_id: int, counts: dict[str, int]) -> dict[str, Any] | None:
        """The series as the API shows it, or None when it is unknown."""
        with self._lock:
            state, fields = self._states.get(series_id, ("valid", {}))
        if state == "unknown":
            return None
        return {
            "id": series_id,
            "orgId": 0,
            "description": f"Sandbox series {series_id}",
            "discountCode": f"SBX{series_id}",
            "discountType": "ABS",
            "discountValue": 0.0,
            "seriesType": "CAMPAIGN",
            "validTillDate": EXPIRED_TILL if state == "expired" else VALID_TILL,
            "clientHandlingType": "DISC_CODE",
            "externalIssual": False,
            **counts,
            "maxCreate": -1,
            **fields,
        }
