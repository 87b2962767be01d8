"""Reading Capillary's answers, private to the hook: the JSON envelope and its ``result``, an error status
classed, the secrets the hook passes (client secret, tokens) redacted from any quoted text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from capillary_provider.exceptions import CapillaryApiError, CapillaryAuthError, CapillaryPermanentApiError
from capillary_provider.hooks._transport import TRANSIENT_STATUSES, is_refusal, request_id, transient_answer

if TYPE_CHECKING:
    import requests

INVALID_CREDENTIALS_CODE = 320001
"""The token endpoint's error code for a client key and secret it does not know."""
REAUTH_STATUSES = frozenset({401, 498})
"""401 (invalid token) and 498 (token expired): get a new token and send the request once more."""


class ReauthRequired(CapillaryApiError):
    """Capillary answered 401 or 498 to a fresh token too."""


def redact(text: str, secrets: Iterable[object]) -> str:
    """``text`` from an answer, without the client secret or the token sent (a proxy may echo them)."""
    for secret in secrets:
        if isinstance(secret, bytes):
            secret = secret.decode("latin-1")
        if secret and isinstance(secret, str):
            text = text.replace(secret, "***")
    return text


def read_envelope(response: requests.Response, what: str, secrets: list[object]) -> dict[str, Any]:
    """The answer's JSON object. An unreadable answer is classed by its status.

    A refusal (any 4xx but 408 and 429: a gateway's or firewall's error page, an IP block) is a refusal
    whatever its body: it is never retried and never "outcome unknown". Any other unreadable answer (a
    proxy's 502 page, a cut body) is transient; nothing says whether Capillary acted on it: safe calls
    are retried, an upload is not.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        quote = redact(response.text, secrets)[:200]
        message = f"Capillary {what} failed: the answer is not JSON: {quote!r}"
        if is_refusal(response.status_code):
            raise_for_status(response, message)
        raise transient_answer(message, response)
    return body


def raise_for_status(response: requests.Response, message: str) -> None:
    """Raise the error an unsuccessful status means (a refused fresh token, transient, refused), if any."""
    status, req_id = response.status_code, request_id(response)
    if status in REAUTH_STATUSES:
        raise ReauthRequired(
            f"{message}; a freshly generated token was refused too", status_code=status, request_id=req_id
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        raise transient_answer(message, response)
    if 400 <= status < 500:
        raise CapillaryPermanentApiError(message, status_code=status, request_id=req_id)


def read_result(response: requests.Response, what: str, secrets: list[object]) -> dict[str, Any]:
    """Check Capillary's envelope and return its ``result``: ``success: false`` fails on any HTTP status."""
    body = read_envelope(response, what, secrets)
    if body.get("success") is True and response.ok:
        result = body.get("result")
        return result if isinstance(result, dict) else {}
    message = redact(str(body.get("message") or response.reason), secrets)
    raise_for_status(response, f"Capillary {what} failed: {message}")
    raise CapillaryApiError(
        f"Capillary {what} failed: {message}", status_code=response.status_code, request_id=request_id(response)
    )


def read_token(response: requests.Response, conn_id: str, secrets: list[object]) -> tuple[str, float]:
    """The token and its lifetime in seconds from the token endpoint's answer; a refused client key and
    secret is a :class:`~capillary_provider.exceptions.CapillaryAuthError` naming connection ``conn_id``."""
    try:
        body = read_envelope(response, "token request", secrets)
    except ReauthRequired:  # a 401/498 page of the token endpoint refuses the key, not a token
        raise CapillaryAuthError(
            f"Capillary refused the client key and secret of connection {conn_id!r}: the answer "
            f"is not JSON (HTTP {response.status_code}). Check the connection's login and password."
        ) from None
    data = body.get("data")
    if isinstance(data, dict) and data.get("accessToken"):
        return str(data["accessToken"]), float(data.get("ttlSeconds") or 300)
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code, message = first.get("code"), redact(str(first.get("message") or "no token in the answer"), secrets)
    if code == INVALID_CREDENTIALS_CODE or response.status_code in (401, 403):
        raise CapillaryAuthError(
            f"Capillary refused the client key and secret of connection {conn_id!r}: "
            f"{code} {message} (HTTP {response.status_code}). Check the connection's login and password."
        )
    raise_for_status(response, f"token request failed: {code} {message}")
    raise CapillaryApiError(
        f"Capillary answered the token request without a token: {code} {message}",
        status_code=response.status_code,
        request_id=request_id(response),
    )
