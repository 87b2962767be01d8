"""The provider's metrics, sent through Airflow's ``Stats`` (StatsD or OpenTelemetry, per ``[metrics]``).

Every name starts with ``capillary.`` (Airflow adds its ``statsd_prefix``, ``airflow.`` by default), and
each is tagged with ``upload_kind`` where one applies (tags reach StatsD only with Datadog or InfluxDB
tagging on, and OpenTelemetry as attributes). Sending a metric never fails the caller. This module
imports no HTTP library: the trigger uses it on the triggerer's event loop.
"""

from __future__ import annotations

import logging
from typing import Any

from capillary_provider._compat import stats

ROWS_SENT = "capillary.upload.rows_sent"
"""Counter: data rows sent in uploads (batches already in Capillary, found by name, are not sent)."""
BYTES_SENT = "capillary.upload.bytes_sent"
"""Counter: bytes of upload bodies sent (header repeated per batch, before multipart framing)."""
UPLOAD_SECONDS = "capillary.upload.seconds"
"""Timer: how long one batch upload took, from the first byte sent to Capillary's answer."""
ROWS_ACCEPTED = "capillary.upload.rows_accepted"
"""Counter: rows Capillary accepted, added when a task's jobs are all terminal."""
ROWS_REJECTED = "capillary.upload.rows_rejected"
"""Counter: rows Capillary rejected, added when a task's jobs are all terminal."""
STATUS_CALLS = "capillary.status.polls"
"""Counter: status calls (every job of a series), from waits, the sensor and the exactly-once lookups."""
THROTTLED = "capillary.api.throttled"
"""Counter: answers with HTTP 429 (Capillary's rate limit), on any endpoint."""

log = logging.getLogger(__name__)


def _send(method: str, name: str, value: Any, upload_kind: str | None) -> None:
    tags = {"upload_kind": upload_kind} if upload_kind else None
    try:
        getattr(stats(), method)(name, value, tags=tags)
    except Exception:  # a metrics backend must never break an upload
        log.debug("Could not send metric %s", name, exc_info=True)


def count(name: str, value: int = 1, upload_kind: str | None = None) -> None:
    """Add ``value`` to the counter ``name`` (one of this module's constants)."""
    _send("incr", name, value, upload_kind)


def batch_uploaded(upload_kind: str, rows: int, size: int, seconds: float) -> None:
    """One batch sent: its rows, its bytes, its time (in milliseconds, like Airflow's own timers)."""
    count(ROWS_SENT, rows, upload_kind)
    count(BYTES_SENT, size, upload_kind)
    _send("timing", UPLOAD_SECONDS, seconds * 1000.0, upload_kind)


def verdict(upload_kind: str, accepted: int, rejected: int) -> None:
    """The rows Capillary accepted and rejected, once a task's jobs are terminal."""
    count(ROWS_ACCEPTED, accepted, upload_kind)
    count(ROWS_REJECTED, rejected, upload_kind)


__all__ = ["batch_uploaded", "count", "verdict"]
