"""Transport, private to the hook: knows HTTP but no Capillary endpoint.

A session whose requests can be cut from another thread (``on_kill``), the connection's HTTP extras
(``timeout``, ``verify``, ``proxies``) read and checked, retries that honour ``Retry-After``,
``requests``' errors translated into ours, and the process-wide token cache.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from capillary_provider import metrics
from capillary_provider.exceptions import (
    CapillaryConfigError,
    CapillaryTransientError,
)

REQUEST_ID_HEADER = "X-Cap-Requestid"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers worth retrying with backoff, for calls that are safe to repeat."""


def is_refusal(status: int) -> bool:
    """A 4xx other than 408 (request timeout) and 429 (throttled): retrying the same request cannot help."""
    return 400 <= status < 500 and status not in TRANSIENT_STATUSES


TOKEN_REFRESH_LEAD_SECONDS = 120.0
"""Renew a token this long before it expires, so a slow request never carries an expiring token."""
UPLOAD_BLOCK_SIZE = 1024 * 1024
"""Bytes handed to the socket per send. requests' default (16 KiB) costs a third of the throughput."""

T = TypeVar("T")


class _TrackedConnection:
    """Mixin for urllib3's connections: in the adapter's ``opened`` set from ``connect()`` to ``close()``, so
    that the hook's ``abort()`` can shut down the socket of a request blocked in another thread.

    Built on urllib3's public extension points only: ``PoolManager.pool_classes_by_scheme``, a pool's
    ``ConnectionCls`` (both in urllib3's API reference) and the connection's ``connect()``/``close()``
    (http.client's API); no private urllib3 name.
    """

    opened: weakref.WeakSet[Any]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.opened.add(self)

    def close(self) -> None:
        self.opened.discard(self)
        super().close()  # type: ignore[misc]


def _tracked_pool(pool: type[HTTPConnectionPool], connection: type, opened: weakref.WeakSet[Any]) -> type:
    """A pool class of ``pool`` whose connections are ``connection`` and enter ``opened`` when they connect."""
    return type(
        "_Pool", (pool,), {"ConnectionCls": type("_Conn", (_TrackedConnection, connection), {"opened": opened})}
    )


class LargeBlockAdapter(HTTPAdapter):
    """An adapter whose connections send request bodies in :data:`UPLOAD_BLOCK_SIZE` blocks.

    It remembers its open connections, so :meth:`shutdown_in_flight` can interrupt a request blocked in
    another thread (a send or a wait for the answer): closing a session does not.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = UPLOAD_BLOCK_SIZE
        super().init_poolmanager(*args, **kwargs)
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()
        self.poolmanager.pool_classes_by_scheme = {
            "http": _tracked_pool(HTTPConnectionPool, HTTPConnection, self._opened),
            "https": _tracked_pool(HTTPSConnectionPool, HTTPSConnection, self._opened),
        }

    def shutdown_in_flight(self) -> None:
        """Shut down the sockets of the open connections (idle ones too: the session closes next), so that
        a request in progress fails at once in its send or receive."""
        for conn in list(self._opened):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)


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


def request_id(response: requests.Response) -> str | None:
    return response.headers.get(REQUEST_ID_HEADER)


def retry_after(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds, if it is a number (an HTTP date falls back to backoff)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def base_url(host: str) -> str:
    """A bare host name means https; a full URL (e.g. http://127.0.0.1:8080 for the sandbox) is kept."""
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def transient_answer(message: str, response: requests.Response) -> CapillaryTransientError:
    """The error for an answer worth retrying (429, 5xx, unreadable), with its status and ``Retry-After``."""
    if response.status_code == 429:
        metrics.count(metrics.THROTTLED)
    return CapillaryTransientError(
        message,
        status_code=response.status_code,
        request_id=request_id(response),
        retry_after=retry_after(response),
    )


def send(session: requests.Session, method: str, url: str, *, bare_host: bool, **kwargs: Any) -> requests.Response:
    """Send one request; ``requests``' errors come out as ours, so no caller needs to know ``requests``.

    A connection that could not be made (refused, no route, connect timeout) never reached Capillary;
    any other failure may have. An https connection to a server speaking plain HTTP cannot work on
    any retry: when the URL came from a bare host name it is a configuration mistake.
    """
    try:
        return session.request(method, url, **kwargs)
    except requests.exceptions.SSLError as exc:
        if bare_host and "WRONG_VERSION_NUMBER" in str(exc):
            raise CapillaryConfigError(
                f"{url.split('/')[2]} answered plain HTTP to an https request. A bare host name means https: "
                f"write the host as http://{url.split('/')[2]} in the connection if it really serves plain HTTP "
                "(a local sandbox), or check the port."
            ) from exc
        raise CapillaryTransientError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise CapillaryTransientError(
            f"{method} {url} failed: {type(exc).__name__}: {exc}", reached_server=not _never_connected(exc)
        ) from exc


def _never_connected(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        return isinstance(getattr(reason, "reason", None), NewConnectionError)
    return False


def retrying(
    call: Callable[[], T],
    *,
    when: Callable[[BaseException], bool],
    attempts: int,
    max_wait: float,
    log: Any,
) -> T:
    """Run ``call``, retrying with exponential backoff (or ``Retry-After``) while ``when`` says so."""
    backoff = tenacity.wait_exponential_jitter(initial=1, max=max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = exc.retry_after if isinstance(exc, CapillaryTransientError) else None
        return min(after, max_wait) if after is not None else backoff(state)

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "Capillary call failed (%s: %s); attempt %d of %d, retrying in %.1f s",
            type(exc).__name__,
            exc,
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
        )

    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(when),
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        before_sleep=log_retry,
        reraise=True,
    )
    return retryer(call)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, CapillaryTransientError)


class TokenCache:
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


TOKENS = TokenCache()
