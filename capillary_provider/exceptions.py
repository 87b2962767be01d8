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
        details = [f"HTTP {status_code}"] if status_code is not None else []
        if request_id:
            details.append(f"X-Cap-Requestid {request_id}")
        super().__init__(f"{message} ({', '.join(details)})" if details else message)


class CapillaryTransientError(CapillaryApiError):
    """A failure worth trying again later: no connection, a timeout, a 5xx or 429, an unreadable answer.

    The hook has already retried it as often as its ``retry_limit`` allows when it raises this.

    :param retry_after: the server's ``Retry-After`` in seconds, if it sent one; waits honour it.
    :param reached_server: False when the request never reached Capillary (no connection could be
        made), so Capillary cannot have acted on it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        reached_server: bool = True,
    ):
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after
        self.reached_server = reached_server


class CapillaryUploadOutcomeUnknown(CapillaryApiError):
    """An upload failed after its body may have reached Capillary: it may or may not have stored the file.

    Raised instead of the underlying failure (kept as ``__cause__``, its HTTP status and request id
    copied), so a caller never uploads the same file again blindly: look for a job carrying the file
    name first.

    :param file_name: the name the upload was sent under.
    """

    def __init__(self, message: str, *, file_name: str, status_code: int | None = None, request_id: str | None = None):
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.file_name = file_name


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


class CouponSourceReadError(CapillaryError):
    """Reading the source failed for a storage or network reason, not a fault of the file: a retry reads it again."""


class SpoolDiskFull(CapillaryError):
    """The folder of the local copy of a remote or compressed source is full (``spool_dir``); nothing was sent."""


class CapillaryConfigError(CapillaryError, AirflowFailException):
    """A parameter of the task is wrong (series id, identifier type, column index); nothing was sent."""


class CouponUploadAborted(CapillaryError):
    """The task was killed during an upload. A rerun attaches to the batches Capillary already has."""
