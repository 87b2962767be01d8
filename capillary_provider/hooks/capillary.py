"""CapillaryHook: the connection, the OAuth token and every HTTP call to Capillary.

The hook is the only code in this package that speaks HTTP. The operator, sensor and trigger call
its methods; nothing else builds a URL or sees a token.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import requests
import tenacity
from airflow.sdk import BaseHook, ObjectStoragePath
from airflow.sdk.log import mask_secret
from asgiref.sync import sync_to_async
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryAuthError,
    CapillaryError,
    CapillaryPermanentApiError,
    CouponUploadAborted,
)
from capillary_provider.jobs import UploadJob

if TYPE_CHECKING:
    from airflow.sdk import Connection

TOKEN_ENDPOINT = "/v3/oauth/token/generate"
UPLOAD_ENDPOINT = "/coupon/api/v1/upload/file/{coupon_series_id}"
STATUS_ENDPOINT = "/coupon/api/v1/upload/getUploadStatus/{coupon_series_id}"

TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"
REQUEST_ID_HEADER = "X-Cap-Requestid"

INVALID_CREDENTIALS_CODE = 320001
REAUTH_STATUSES = frozenset({401, 498})
"""401 (invalid token) and 498 (token expired): get a new token and send the request once more."""
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers worth retrying with backoff, for calls that are safe to repeat."""
UPLOAD_RETRY_STATUSES = frozenset({429})
"""The only answer after which an upload is repeated: Capillary refused it before processing it."""

TOKEN_REFRESH_LEAD_SECONDS = 120.0
"""Renew a token this long before it expires, so a slow request never carries an expiring token."""
DEFAULT_TIMEOUT = (10.0, 120.0)
"""(connect, read) seconds. The read timeout also bounds how long Capillary may take to answer an upload."""
UPLOAD_BLOCK_SIZE = 1024 * 1024
"""Bytes handed to the socket per send. requests' default (16 KiB) costs a third of the throughput."""
PROGRESS_INTERVAL_SECONDS = 10.0

IDENTIFIER_TYPES = ("MOBILE", "EMAIL", "EXTERNAL_ID", "USER_ID", "NOT_TAGGED")

T = TypeVar("T")


class BinaryReader(Protocol):
    """What the hook needs of a file object: read it, and rewind it for another attempt."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


UploadSource = str | os.PathLike[str] | BinaryReader | ObjectStoragePath


class _TrackingPoolMixin:
    """Remembers the connections a pool has lent out, so that :meth:`CapillaryHook.abort` can cut them."""

    lent: weakref.WeakSet[Any]

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        self.lent.add(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:  # urllib3 hands back None for a connection it dropped
            self.lent.discard(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _TrackingHTTPPool(_TrackingPoolMixin, HTTPConnectionPool):
    pass


class _TrackingHTTPSPool(_TrackingPoolMixin, HTTPSConnectionPool):
    pass


class _LargeBlockAdapter(HTTPAdapter):
    """An adapter whose connections send request bodies in :data:`UPLOAD_BLOCK_SIZE` blocks.

    Its pools remember the connections in use, so :meth:`shutdown_in_flight` can interrupt a request
    blocked in another thread (a send or a wait for the answer): closing a session does not.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = UPLOAD_BLOCK_SIZE
        super().init_poolmanager(*args, **kwargs)
        self._lent: weakref.WeakSet[Any] = weakref.WeakSet()
        lent = self._lent
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("_Pool", (_TrackingHTTPPool,), {"lent": lent}),
            "https": type("_Pool", (_TrackingHTTPSPool,), {"lent": lent}),
        }

    def shutdown_in_flight(self) -> None:
        """Shut down the sockets of requests in progress: their send or receive fails at once."""
        for conn in list(self._lent):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


class _ProgressReader:
    """Wraps the file part of an upload: counts bytes as they are sent and logs progress at a steady pace.

    requests_toolbelt takes a part's ``len()`` as the bytes still to send: it computes the body's
    Content-Length from it up front, then reads until it reaches 0.
    """

    def __init__(
        self,
        raw: BinaryReader,
        length: int,
        report: Callable[[int, int, float], None],
        aborted: threading.Event | None = None,
    ) -> None:
        self._raw = raw
        self._aborted = aborted
        self._length = length
        self._report = report
        self._sent = 0
        self._started = time.monotonic()
        self._last_report = self._started

    def __len__(self) -> int:
        return self._length - self._sent

    def read(self, size: int = -1) -> bytes:
        if self._aborted is not None and self._aborted.is_set():
            raise CouponUploadAborted(f"Upload aborted after {self._sent} of {self._length} bytes: the task was killed")
        data = self._raw.read(size)
        if not data and size != 0 and self._sent < self._length:
            # requests_toolbelt reads until the declared length is reached: never loop on a short file.
            raise CapillaryError(f"The file ended after {self._sent} of the {self._length} bytes announced")
        self._sent += len(data)
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL_SECONDS:
            self._last_report = now
            self._report(self._sent, self._length, now - self._started)
        return data


def _request_id(response: requests.Response) -> str | None:
    return response.headers.get(REQUEST_ID_HEADER)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff


class _TransientApiError(CapillaryApiError):
    """An answer worth retrying (429, 5xx); ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, message: str, *, status_code: int, request_id: str | None, retry_after: float | None):
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class _ReauthRequired(CapillaryApiError):
    """Capillary answered 401 or 498: the token is invalid or expired."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, _TransientApiError))


def _is_safe_upload_retry(exc: BaseException) -> bool:
    """True when an upload failed before Capillary could have stored it: no connection, or a 429."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        return isinstance(getattr(reason, "reason", None), NewConnectionError)
    return isinstance(exc, _TransientApiError) and exc.http_status in UPLOAD_RETRY_STATUSES


def _base_url(host: str) -> str:
    """A bare host name means https; a full URL (e.g. http://127.0.0.1:8080 for the sandbox) is kept."""
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


class _TokenCache:
    """Tokens shared by every hook of the process, keyed by API host, client key and secret digest.

    A triggerer runs many deferred waits in one process: each fetching its own token would cost a
    token call per wait, and every new token grows the secrets masker, whose cost grows with each
    secret it holds. ``lock`` is held while a token is fetched, so concurrent hooks wait for one fetch.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str, str]) -> str | None:
        token, renew_at = self._tokens.get(key, (None, 0.0))
        return token if time.monotonic() < renew_at else None

    def put(self, key: tuple[str, str, str], token: str, ttl: float) -> None:
        """Keep ``token`` until ``ttl`` minus a lead time, so no request leaves with an expiring token."""
        lead = min(TOKEN_REFRESH_LEAD_SECONDS, ttl / 5)
        self._tokens[key] = (token, time.monotonic() + ttl - lead)

    def discard(self, key: tuple[str, str, str], token: str | None) -> None:
        """Forget ``key``'s token if it is still ``token`` (another hook may have renewed it already)."""
        if token is None or self._tokens.get(key, ("", 0.0))[0] == token:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self._tokens.clear()


_TOKENS = _TokenCache()


class CapillaryHook(BaseHook):
    """Talk to Capillary's coupon upload API with an Airflow connection of type ``capillary``.

    The connection's ``host`` is the API host that issues tokens; ``login`` and ``password`` are the
    OAuth client key and secret; the extra ``coupon_host`` is the host of the ``/coupon/api/v1``
    endpoints (defaults to ``host``). Nothing is read from the connection until the first call.

    :param capillary_conn_id: the Airflow connection to use.
    :param timeout: (connect, read) timeouts in seconds for every call.
    :param retry_limit: attempts for calls that are safe to repeat (token, status, and uploads that were
        refused before being processed).
    :param retry_max_wait: longest pause between two attempts, in seconds; also caps ``Retry-After``.
    """

    conn_name_attr = "capillary_conn_id"
    default_conn_name = "capillary_default"
    conn_type = "capillary"
    hook_name = "Capillary"

    def __init__(
        self,
        capillary_conn_id: str = default_conn_name,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry_limit: int = 5,
        retry_max_wait: float = 60.0,
    ) -> None:
        super().__init__()
        self.capillary_conn_id = capillary_conn_id
        self.timeout = timeout
        self.retry_limit = retry_limit
        self.retry_max_wait = retry_max_wait
        self._token: str | None = None
        self._aborted = threading.Event()

    # -- connection form (Airflow 3.1) -------------------------------------------------------------
    # Airflow 3.2+ reads the form from get_provider_info (``ui-field-behaviour``, ``conn-fields``) and
    # never calls these two methods when the provider info declares the form, so they raise no
    # deprecation warning there. Airflow 3.1 only knows these methods; both derive from the provider info.

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden fields, labels and placeholders of the connection form, for Airflow 3.1."""
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
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
            for name, field in _connection_type_info()["conn-fields"].items()
        }

    # -- connection -------------------------------------------------------------------------------

    @cached_property
    def connection(self) -> Connection:
        return self.get_connection(self.capillary_conn_id)

    @cached_property
    def api_url(self) -> str:
        """Base URL of the API host, where tokens come from."""
        if not self.connection.host:
            raise CapillaryError(
                f"Connection {self.capillary_conn_id!r} has no API host: set it, e.g. eu.api.capillarytech.com"
            )
        return _base_url(self.connection.host)

    @cached_property
    def coupon_url(self) -> str:
        """Base URL of the coupon endpoints: the extra ``coupon_host``, or the API host."""
        coupon_host = self.connection.extra_dejson.get("coupon_host")
        return _base_url(coupon_host) if coupon_host else self.api_url

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = _LargeBlockAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    # -- token ------------------------------------------------------------------------------------

    def get_token(self) -> str:
        """Return a valid OAuth token, asking Capillary for a new one when the cached one is about to expire.

        Tokens are cached per process and credentials (see :class:`_TokenCache`), so the hooks of many
        tasks or deferred waits in one process share one token. A new token is handed to
        ``mask_secret`` the moment it arrives, so it is masked in every log.
        """
        key = self._token_key()
        with _TOKENS.lock:
            token = _TOKENS.get(key)
            if token is None:
                try:
                    token, ttl = self._retrying(self._generate_token)
                except (requests.RequestException, _TransientApiError) as exc:
                    # Already retried here: callers must not retry it again (their retries wrap this call).
                    raise CapillaryApiError(
                        f"No token from {self.api_url}{TOKEN_ENDPOINT} after {self.retry_limit} attempts: {exc}",
                        status_code=getattr(exc, "http_status", None),
                    ) from exc
                _TOKENS.put(key, token, ttl)
            self._token = token
            return token

    def invalidate_token(self) -> None:
        """Forget the cached token (Capillary refused it); the next call asks for a new one."""
        with _TOKENS.lock:
            _TOKENS.discard(self._token_key(), self._token)
            self._token = None

    def _token_key(self) -> tuple[str, str, str]:
        """Whose token: the API host and client key, and a digest of the secret (a changed secret is a new key)."""
        conn = self.connection
        secret_digest = hashlib.sha256((conn.password or "").encode()).hexdigest()
        return self.api_url, conn.login or "", secret_digest

    def _generate_token(self) -> tuple[str, float]:
        conn = self.connection
        if not conn.login or not conn.password:
            raise CapillaryAuthError(
                f"Connection {self.capillary_conn_id!r} needs the client key (login) and client secret "
                "(password) of a Capillary API client."
            )
        response = self.session.post(
            self.api_url + TOKEN_ENDPOINT,
            json={"key": conn.login, "secret": conn.password},
            timeout=self.timeout,
        )
        body = self._envelope(response, "token request")
        data = body.get("data")
        if isinstance(data, dict) and data.get("accessToken"):
            token = str(data["accessToken"])
            mask_secret(token)
            return token, float(data.get("ttlSeconds") or 300)
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code, message = first.get("code"), self._redact(str(first.get("message") or "no token in the answer"), response)
        if code == INVALID_CREDENTIALS_CODE or response.status_code in (401, 403):
            raise CapillaryAuthError(
                f"Capillary refused the client key and secret of connection {self.capillary_conn_id!r}: "
                f"{code} {message} (HTTP {response.status_code}). Check the connection's login and password."
            )
        self._raise_for_status(response, f"token request failed: {code} {message}")
        raise CapillaryApiError(
            f"Capillary answered the token request without a token: {code} {message}",
            status_code=response.status_code,
            request_id=_request_id(response),
        )

    # -- transport --------------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], T], *, when: Callable[[BaseException], bool] = _is_transient) -> T:
        """Run ``call``, retrying with exponential backoff (or ``Retry-After``) while ``when`` says so."""
        backoff = tenacity.wait_exponential_jitter(initial=1, max=self.retry_max_wait)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = getattr(exc, "retry_after", None)
            return min(retry_after, self.retry_max_wait) if retry_after is not None else backoff(state)

        def log_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "Capillary call failed (%s: %s); attempt %d of %d, retrying in %.1f s",
                type(exc).__name__,
                exc,
                state.attempt_number,
                self.retry_limit,
                state.upcoming_sleep,
            )

        retryer = tenacity.Retrying(
            retry=tenacity.retry_if_exception(when),
            stop=tenacity.stop_after_attempt(self.retry_limit),
            wait=wait,
            before_sleep=log_retry,
            reraise=True,
        )
        return retryer(call)

    def _with_token(self, send: Callable[[str], requests.Response]) -> requests.Response:
        """Send with the current token; on 401/498 get a new token and send once more."""
        response = send(self.get_token())
        if response.status_code in REAUTH_STATUSES:
            self.log.info("Capillary answered %s: renewing the token and retrying once", response.status_code)
            self.invalidate_token()
            response = send(self.get_token())
        return response

    def _redact(self, text: str, response: requests.Response) -> str:
        """``text`` from an answer, without the client secret or the token sent (a proxy may echo them)."""
        secrets = [self.connection.password, response.request.headers.get(TOKEN_HEADER), self._token]
        for secret in secrets:
            if isinstance(secret, bytes):
                secret = secret.decode("latin-1")
            if secret:
                text = text.replace(secret, "***")
        return text

    def _quote(self, response: requests.Response) -> str:
        """The start of an unreadable answer, for an error message, redacted."""
        return self._redact(response.text, response)[:200]

    def _envelope(self, response: requests.Response, what: str) -> dict[str, Any]:
        """The answer's JSON object; an unreadable answer (a proxy's error page, a cut body) is transient.

        Nothing says whether Capillary acted on such a request: safe calls are retried, an upload is not.
        """
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _TransientApiError(
                f"Capillary {what} failed: the answer is not JSON: {self._quote(response)!r}",
                status_code=response.status_code,
                request_id=_request_id(response),
                retry_after=_retry_after(response),
            )
        return body

    def _raise_for_status(self, response: requests.Response, message: str) -> None:
        status, request_id = response.status_code, _request_id(response)
        if status in REAUTH_STATUSES:
            raise _ReauthRequired(
                f"{message}; a freshly generated token was refused too",
                status_code=status,
                request_id=request_id,
            )
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _TransientApiError(
                message, status_code=status, request_id=request_id, retry_after=_retry_after(response)
            )
        if 400 <= status < 500:
            raise CapillaryPermanentApiError(message, status_code=status, request_id=request_id)

    def _result(self, response: requests.Response, what: str) -> dict[str, Any]:
        """Check Capillary's envelope and return its ``result``: ``success: false`` fails on any HTTP status."""
        body = self._envelope(response, what)
        if body.get("success") is True and response.ok:
            result = body.get("result")
            return result if isinstance(result, dict) else {}
        message = self._redact(str(body.get("message") or response.reason), response)
        self._raise_for_status(response, f"Capillary {what} failed: {message}")
        raise CapillaryApiError(
            f"Capillary {what} failed: {message}",
            status_code=response.status_code,
            request_id=_request_id(response),
        )

    # -- endpoints --------------------------------------------------------------------------------

    def get_upload_jobs(self, coupon_series_id: int | str) -> list[UploadJob]:
        """Return every upload job of a coupon series (one call, whatever the number of jobs)."""
        url = self.coupon_url + STATUS_ENDPOINT.format(coupon_series_id=coupon_series_id)

        def call() -> list[UploadJob]:
            response = self._with_token(
                lambda token: self.session.get(url, headers={TOKEN_HEADER: token}, timeout=self.timeout)
            )
            result = self._result(response, f"status request for coupon series {coupon_series_id}")
            return [UploadJob.from_api(item) for item in result.get("uploadJobStatuses") or []]

        return self._retrying(call)

    def get_upload_job(self, coupon_series_id: int | str, job_id: int) -> UploadJob:
        """Return one upload job of a series; :class:`CapillaryError` if the series has no such job."""
        for job in self.get_upload_jobs(coupon_series_id):
            if job.job_id == int(job_id):
                return job
        raise CapillaryError(f"Coupon series {coupon_series_id} has no upload job {job_id}")

    async def aget_upload_jobs(self, coupon_series_id: int | str) -> list[UploadJob]:
        """:meth:`get_upload_jobs` for async code (triggers): the event loop never blocks.

        The connection is resolved with Airflow's async API; the HTTP calls run in a worker thread.
        """
        if "connection" not in self.__dict__:
            self.__dict__["connection"] = await self.aget_connection(self.capillary_conn_id)
        return await sync_to_async(self.get_upload_jobs, thread_sensitive=False)(coupon_series_id)

    def upload_coupon_file(
        self,
        coupon_series_id: int | str,
        file: UploadSource,
        *,
        file_name: str,
        customer_identifier: str,
        customer_identifier_column: int | None = None,
    ) -> UploadJob:
        """Upload one CSV file to a coupon series, streamed: the file is never read into memory.

        The upload is repeated only when Capillary cannot have stored it (no connection could be made,
        a 429, or a 401/498 answered before the body was read). After any other failure the body may
        have reached Capillary, so the error is raised and the caller decides (the operator looks for a
        job carrying ``file_name`` before uploading again).

        :param coupon_series_id: the coupon series to load the codes into.
        :param file: a local path, an :class:`~airflow.sdk.ObjectStoragePath` (remote ones included), or a
            binary file object, read from its current position to its end.
        :param file_name: the name Capillary records as ``uploadedFileName``.
        :param customer_identifier: MOBILE, EMAIL, EXTERNAL_ID, USER_ID or NOT_TAGGED.
        :param customer_identifier_column: zero-based index of the identifier column, if any.
        :return: the job Capillary created, in state ``STARTED``.
        """
        if customer_identifier not in IDENTIFIER_TYPES:
            raise CapillaryError(
                f"customer_identifier must be one of {', '.join(IDENTIFIER_TYPES)}, not {customer_identifier!r}"
            )
        url = self.coupon_url + UPLOAD_ENDPOINT.format(coupon_series_id=coupon_series_id)
        fields: dict[str, Any] = {"customerIdentifier": customer_identifier}
        if customer_identifier_column is not None:
            fields["customerIdentifierColumn"] = str(customer_identifier_column)

        with _open_source(file) as (handle, length):
            start = handle.tell()

            def send(token: str) -> requests.Response:
                # A fresh encoder, and the file rewound, for every attempt: an encoder is read only once.
                handle.seek(start)
                part = _ProgressReader(handle, length, self._log_progress, self._aborted)
                encoder = MultipartEncoder(fields={**fields, "file": (file_name, part, "text/csv")})
                headers = {"Content-Type": encoder.content_type, TOKEN_HEADER: token}
                return self.session.post(url, data=encoder, headers=headers, timeout=self.timeout)

            def call() -> UploadJob:
                response = self._with_token(send)
                result = self._result(response, f"upload of {file_name} to coupon series {coupon_series_id}")
                statuses = result.get("uploadJobStatuses") or []
                if not statuses:
                    raise CapillaryApiError(
                        f"Capillary accepted {file_name} but reported no upload job",
                        status_code=response.status_code,
                        request_id=_request_id(response),
                    )
                return UploadJob.from_api(statuses[0])

            started = time.monotonic()
            if self._aborted.is_set():
                raise CouponUploadAborted(f"Not uploading {file_name}: the task was killed")
            try:
                job = self._retrying(call, when=_is_safe_upload_retry)
            except Exception as exc:
                if self._aborted.is_set() and not isinstance(exc, CouponUploadAborted):
                    raise CouponUploadAborted(f"The upload of {file_name} was aborted: the task was killed") from exc
                raise
            elapsed = time.monotonic() - started
            self.log.info(
                "Uploaded %s (%s) to coupon series %s in %.1f s: job %s %s",
                file_name,
                _human_bytes(length),
                coupon_series_id,
                elapsed,
                job.job_id,
                job.status,
            )
            return job

    def abort(self) -> None:
        """Stop uploads at once, from any thread (``on_kill``): the body stops at its next block, a request
        waiting for its answer has its connection shut down, and no further upload starts.

        Whether Capillary stored a batch whose upload was cut is unknown: a rerun looks for it by name.
        """
        self._aborted.set()
        if "session" in self.__dict__:
            for adapter in self.session.adapters.values():
                if isinstance(adapter, _LargeBlockAdapter):
                    adapter.shutdown_in_flight()
            self.session.close()

    @property
    def aborted(self) -> bool:
        """True once :meth:`abort` was called."""
        return self._aborted.is_set()

    def _log_progress(self, sent: int, total: int, elapsed: float) -> None:
        rate = sent / elapsed if elapsed else 0.0
        percent = 100.0 * sent / total if total else 100.0
        self.log.info(
            "Upload progress: %s of %s (%.1f%%) at %s/s",
            _human_bytes(sent),
            _human_bytes(total),
            percent,
            _human_bytes(rate),
        )

    # -- connection test --------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Prove the credentials (and the hosts) by asking for a token; nothing is uploaded."""
        try:
            self.invalidate_token()
            self.get_token()
        except Exception as exc:
            return False, str(exc)
        return True, f"Capillary accepted the client key of connection {self.capillary_conn_id!r}."


def _connection_type_info() -> dict[str, Any]:
    """The ``capillary`` entry of the provider info: the one declaration of the connection form."""
    from capillary_provider.get_provider_info import get_provider_info

    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == CapillaryHook.conn_type:
            return dict(entry)
    raise LookupError(f"get_provider_info declares no {CapillaryHook.conn_type!r} connection type")


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


@contextmanager
def _open_source(file: UploadSource) -> Iterator[tuple[BinaryReader, int]]:
    """Open an upload source and tell how many bytes remain in it, without reading it."""
    if isinstance(file, ObjectStoragePath):
        with file.open("rb") as handle:  # type: ignore[no-untyped-call]
            yield handle, file.stat().st_size - handle.tell()
    elif isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
    else:
        yield file, _remaining_length(file)


def _remaining_length(handle: BinaryReader) -> int:
    """Bytes from the current position to the end: from ``len()`` where the object knows it, else by seeking."""
    if isinstance(handle, Sized):  # e.g. a BatchReader: a window onto a larger stream
        return len(handle) - handle.tell()
    position = handle.tell()
    end = handle.seek(0, os.SEEK_END)
    handle.seek(position)
    return end - position


__all__ = ["CapillaryHook", "UploadJob"]
