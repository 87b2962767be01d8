"""CapillaryBaseHook: the connection, its hosts and HTTP settings, the OAuth token, and reading answers.

Shared by every endpoint method (:mod:`capillary_provider.hooks.capillary`); nothing here knows one.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from capillary_provider.exceptions import (
    CapillaryApiError,
    CapillaryAuthError,
    CapillaryConfigError,
    CapillaryTransientError,
)
from capillary_provider.hooks._answers import (
    REAUTH_STATUSES,
    read_envelope,
    read_result,
    read_token,
)
from capillary_provider.hooks._form import CONN_TYPE
from capillary_provider.hooks._transport import (
    TOKENS,
    LargeBlockAdapter,
    base_url,
    is_transient,
    read_http_settings,
    read_timeout,
    retrying,
    send,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

TOKEN_ENDPOINT = "/v3/oauth/token/generate"
TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"


class CapillaryBaseHook(BaseHook):
    """The connection, hosts, token and answers of Capillary's APIs: what every endpoint method shares.

    The connection's ``host`` is the API host that issues tokens; ``login`` and ``password`` are the
    OAuth client key and secret. Extras: ``coupon_host``, the host of the ``/coupon/api/v1`` endpoints
    (defaults to ``host``); ``verify``, a CA bundle path or ``false``; ``proxies``, e.g.
    ``{"https": "http://proxy:3128"}``; ``timeout``, seconds or ``[connect, read]``. Nothing is read
    from the connection until the first call.

    :param capillary_conn_id: the Airflow connection to use.
    :param timeout: (connect, read) timeouts in seconds for every call; default: the connection's
        ``timeout`` extra, else :data:`~capillary_provider.hooks._transport.DEFAULT_TIMEOUT`.
    :param retry_limit: attempts for calls that are safe to repeat (token, status, and uploads that were
        refused before being processed).
    :param retry_max_wait: longest pause between two attempts, in seconds; also caps ``Retry-After``.
    """

    conn_name_attr = "capillary_conn_id"
    default_conn_name = "capillary_default"
    conn_type = CONN_TYPE
    hook_name = "Capillary"

    def __init__(
        self,
        capillary_conn_id: str = default_conn_name,
        *,
        timeout: tuple[float, float] | None = None,
        retry_limit: int = 5,
        retry_max_wait: float = 60.0,
    ) -> None:
        super().__init__()
        self.capillary_conn_id = capillary_conn_id
        self._timeout = timeout
        self.retry_limit = retry_limit
        self.retry_max_wait = retry_max_wait
        self._token: str | None = None
        self._aborted = threading.Event()
        self._connection: Connection | None = None
        self._session: requests.Session | None = None

    @property
    def connection(self) -> Connection:
        """The Airflow connection, read on first use and kept until :meth:`refresh_connection`."""
        if self._connection is None:
            self._connection = self.get_connection(self.capillary_conn_id)
        return self._connection

    async def aconnection(self) -> Connection:
        """:attr:`connection` for async code: read with Airflow's async API, so the event loop never blocks."""
        if self._connection is None:
            self._connection = await self.aget_connection(self.capillary_conn_id)
        return self._connection

    @cached_property
    def api_url(self) -> str:
        """Base URL of the API host (tokens, series)."""
        if not self.connection.host:
            raise CapillaryConfigError(
                f"Connection {self.capillary_conn_id!r} has no API host: set it, e.g. eu.api.capillarytech.com"
            )
        return base_url(self.connection.host)

    @cached_property
    def coupon_url(self) -> str:
        """Base URL of the coupon endpoints: the extra ``coupon_host``, or the API host."""
        coupon_host = self.connection.extra_dejson.get("coupon_host")
        return base_url(coupon_host) if coupon_host else self.api_url

    @cached_property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds: the constructor's, else the connection's ``timeout`` extra, else the default."""
        if self._timeout is not None:
            return self._timeout
        return read_timeout(self.capillary_conn_id, self.connection.extra_dejson.get("timeout"))

    @property
    def session(self) -> requests.Session:
        """One session per hook, made on first use, with the streaming adapter whose requests :meth:`abort` can cut."""
        if self._session is None:
            self._session = requests.Session()
            adapter = LargeBlockAdapter()
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        return self._session

    @cached_property
    def http_settings(self) -> dict[str, Any]:
        """``verify`` and ``proxies`` from the connection's extras, passed with every request.

        Per request rather than on the session: requests lets ``REQUESTS_CA_BUNDLE`` and the proxy
        environment variables win over a session's own settings, never over a request's.
        """
        return read_http_settings(self.capillary_conn_id, self.connection.extra_dejson)

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request with the connection's settings; ``requests``' errors come out as ours."""
        hosts = [self.connection.extra_dejson.get("coupon_host"), self.connection.host]
        bare = any(host and "://" not in host and url.startswith(base_url(host)) for host in hosts)
        kwargs.setdefault("timeout", self.timeout)
        return send(self.session, method, url, bare_host=bare, **self.http_settings, **kwargs)

    def get_token(self) -> str:
        """Return a valid OAuth token, asking Capillary for a new one when the cached one is about to expire.

        Tokens are cached per process and credentials (:class:`._transport.TokenCache`), so the hooks of
        many tasks or deferred waits in one process share one token. A new token is handed to
        ``mask_secret`` the moment it arrives, so it is masked in every log.
        """
        with TOKENS.lock:
            token = TOKENS.get(self._token_key())
            if token is None:
                try:
                    token = self._new_token()
                except CapillaryAuthError:
                    # The secret may have been rotated during a long wait: read the connection afresh and ask
                    # once more if its credentials changed; the same credentials, or new ones refused, fail.
                    refused = self._token_key()
                    self.refresh_connection()
                    if self._token_key() == refused:
                        raise
                    self.log.info(
                        "Connection %r has new credentials: asking for a token with them", self.capillary_conn_id
                    )
                    token = self._new_token()
            self._token = token
            return token

    def _new_token(self) -> str:
        """Ask Capillary for a token (transient failures retried here) and cache it under the current secret."""
        try:
            token, ttl = cast(tuple[str, float], self._retrying(self._generate_token))
        except CapillaryTransientError as exc:
            # Already retried here: callers must not retry it again (their retries wrap this call).
            raise CapillaryApiError(
                f"No token from {self.api_url}{TOKEN_ENDPOINT} after {self.retry_limit} attempts: {exc}",
                status_code=exc.http_status,
            ) from exc
        TOKENS.put(self._token_key(), token, ttl)
        return token

    def refresh_connection(self) -> None:
        """Read the connection again (a rotated secret); the secret read is masked at once, like a token."""
        self._connection = None
        for name in ("api_url", "coupon_url", "timeout", "http_settings"):  # the cached values read from it
            with contextlib.suppress(AttributeError):  # not computed yet
                delattr(self, name)  # how a cached_property forgets its value
        if self.connection.password:
            mask_secret(self.connection.password)

    def invalidate_token(self) -> None:
        """Forget the cached token (Capillary refused it); the next call asks for a new one."""
        with TOKENS.lock:
            TOKENS.discard(self._token_key(), self._token)
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
        response = self._request(
            "POST", self.api_url + TOKEN_ENDPOINT, json={"key": conn.login, "secret": conn.password}
        )
        token, ttl = read_token(response, self.capillary_conn_id, self._secrets(response))
        mask_secret(token)
        return token, ttl

    def _retrying(self, call: Callable[[], Any], *, when: Callable[[BaseException], bool] = is_transient) -> Any:
        return retrying(call, when=when, attempts=self.retry_limit, max_wait=self.retry_max_wait, log=self.log)

    def _with_token(self, send: Callable[[str], requests.Response]) -> requests.Response:
        """Send with the current token; on 401/498 get a new token and send once more."""
        response = send(self.get_token())
        if response.status_code in REAUTH_STATUSES:
            self.log.info("Capillary answered %s: renewing the token and retrying once", response.status_code)
            self.invalidate_token()
            response = send(self.get_token())
        return response

    def _secrets(self, response: requests.Response) -> list[object]:
        """What an answer's text must never show: the client secret and the tokens (a proxy may echo them)."""
        return [self.connection.password, response.request.headers.get(TOKEN_HEADER), self._token]

    def _envelope(self, response: requests.Response, what: str) -> dict[str, Any]:
        return read_envelope(response, what, self._secrets(response))

    def _result(self, response: requests.Response, what: str) -> dict[str, Any]:
        return read_result(response, what, self._secrets(response))

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._with_token(lambda token: self._request("GET", url, headers={TOKEN_HEADER: token}, **kwargs))

    def abort(self) -> None:
        """Stop uploads at once, from any thread (``on_kill``): the body stops at its next block, a request
        waiting for its answer has its connection shut down, and no further upload starts.

        Whether Capillary stored a batch whose upload was cut is unknown: a rerun looks for it by name.
        """
        self._aborted.set()
        session = self._session
        if session is not None:
            for adapter in session.adapters.values():
                if isinstance(adapter, LargeBlockAdapter):
                    adapter.shutdown_in_flight()
            session.close()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def test_connection(self) -> tuple[bool, str]:
        """Prove the credentials (and the hosts) by asking for a token; nothing is uploaded."""
        try:
            self.invalidate_token()
            self.get_token()
        except Exception as exc:
            return False, str(exc)
        return True, f"Capillary accepted the client key of connection {self.capillary_conn_id!r}."
