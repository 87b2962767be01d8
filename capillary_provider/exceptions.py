"""Errors raised by the provider.

Every error is an :class:`~airflow.exceptions.AirflowException` so that Airflow reports it as a task
failure. Errors that a retry cannot fix (bad input, rows rejected by Capillary, a job that ended
``ERRORED``, a 4xx answer other than 401/429) derive from
:class:`~airflow.exceptions.AirflowFailException`, which tells Airflow not to spend the task's retries
on them. None of them ever carries a token or a client secret.
"""

from __future__ import annotations

from capillary_provider._compat import AirflowException, AirflowFailException


class CapillaryError(AirflowException):
    """Base class of every error raised by this provider."""


class CapillaryApiError(CapillaryError):
    """Capillary answered with an error (``success: false``, an error status or a body we cannot read).

    :param message: what went wrong, in Capillary's words where it gave any.
    :param status_code: the HTTP status of the answer (kept as ``http_status``).
    :param request_id: the ``X-Cap-Requestid`` response header, which Capillary support asks for.
    """

    def __init__(self, message: str, *, status_code: int | None = None, request_id: str | None = None):
        self.http_status = status_code
        self.request_id = request_id
        self.api_message = message
        details = [f"HTTP {status_code}" if status_code is not None else None]
        if request_id:
            details.append(f"X-Cap-Requestid {request_id}")
        suffix = ", ".join(d for d in details if d)
        super().__init__(f"{message} ({suffix})" if suffix else message)


class CapillaryPermanentApiError(CapillaryApiError, AirflowFailException):
    """A 4xx answer that retrying cannot fix (bad request, forbidden access group, unknown series)."""


class CapillaryAuthError(CapillaryError, AirflowFailException):
    """Capillary refused the connection's client key and secret (code 320001)."""


class CouponFileError(CapillaryError, AirflowFailException):
    """The coupon file is malformed; raised before any byte of it is sent to Capillary."""


class CouponUploadFailed(CapillaryError, AirflowFailException):
    """Capillary finished the upload but its verdict fails the task (job ERRORED or too many rejected rows)."""


class CouponUploadTimeout(CapillaryError):
    """The jobs were not terminal before the deadline. A retry attaches to the same jobs and waits again."""


class CapillaryConfigError(CapillaryError, AirflowFailException):
    """A parameter of the task is wrong (series id, identifier type, column index); nothing was sent."""


class CouponUploadAborted(CapillaryError):
    """The task was killed during an upload. A rerun attaches to the batches Capillary already has."""
