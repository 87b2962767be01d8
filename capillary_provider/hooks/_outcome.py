"""What a failed upload means: sent again by the hook, not stored, or perhaps stored (the outcome unknown).

Private to the hook, and the one place that decides it. No HTTP library: failures arrive as our exceptions.
"""

from __future__ import annotations

from capillary_provider._compat import AirflowFailException
from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryTransientError,
    CapillaryUploadOutcomeUnknown,
    CouponUploadAborted,
)
from capillary_provider.hooks._answers import ReauthRequired

UPLOAD_RETRY_STATUSES = frozenset({429})
"""The only answer after which an upload is repeated: Capillary refused it before processing it."""


def upload_outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed upload may have been stored by Capillary: the one place that decides it.

    No connection, or a 429, means Capillary never took the body: the hook sends it again. A refusal
    (4xx, refused credentials) means it did not store it. Anything else (the connection lost after
    sending, a read timeout, a 5xx, an unreadable or ``success: false`` answer) leaves it open.
    """
    if isinstance(exc, CapillaryTransientError):
        return exc.reached_server and exc.http_status not in UPLOAD_RETRY_STATUSES
    return (
        isinstance(exc, CapillaryApiError)
        and not isinstance(exc, (AirflowFailException, ReauthRequired))
        and (exc.http_status is None or exc.http_status == 200 or exc.http_status >= 500)
    )


def safe_upload_retry(exc: BaseException) -> bool:
    """Whether the hook may send an upload again itself: a transient failure that Capillary cannot have stored."""
    return isinstance(exc, CapillaryTransientError) and not upload_outcome_unknown(exc)


def upload_failure(exc: Exception, what: str, file_name: str, *, aborted: bool) -> Exception | None:
    """The error an upload that failed with ``exc`` raises instead, or None to raise ``exc`` itself.

    A kill while sending wins (the upload was aborted, whatever broke); a failure that may have stored
    the file becomes :class:`~capillary_provider.exceptions.CapillaryUploadOutcomeUnknown`, naming the
    file, so the caller looks for it before sending it again.
    """
    if aborted:
        return CouponUploadAborted(f"The upload of {file_name} was aborted: the task was killed")
    if upload_outcome_unknown(exc):
        return CapillaryUploadOutcomeUnknown(
            f"The {what} may or may not have been stored: {getattr(exc, 'api_message', exc)}",
            file_name=file_name,
            status_code=getattr(exc, "http_status", None),
            request_id=getattr(exc, "request_id", None),
        )
    return None
