"""Running the sandbox app under uvicorn, with the ability to drop a connection without answering.

uvicorn does not expose the connection's transport to the ASGI app, and an app that raises or
returns without answering gets a 500 written for it. The sandbox therefore runs uvicorn with a
protocol subclass that puts the transport in ``scope["extensions"]``; ``drop_connection`` aborts it
(the client sees a reset / remote disconnect, never an HTTP answer).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send
    from uvicorn.config import Config
    from uvicorn.server import ServerState

TRANSPORT_EXTENSION = "capillary.sandbox.transport"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # pragma: no cover - httptools is optional
    _BaseProtocol = H11Protocol  # type: ignore[assignment,misc]


class DropCapableProtocol(_BaseProtocol):
    """uvicorn HTTP protocol that exposes the transport to the app (for fault injection)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        inner = self.app

        async def app_with_transport(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport
            await inner(scope, receive, send)

        self.app = app_with_transport


def _find_transport(scope: Scope, receive: Receive) -> asyncio.BaseTransport | None:
    transport = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
    if transport is None:  # plain uvicorn: its receive is a bound method of the request cycle
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


async def drop_connection(scope: Scope, receive: Receive) -> None:
    """Abort the TCP connection of this request without sending anything, then wait for the server
    to register the disconnect (so it does not try to write a 500 of its own)."""
    transport = _find_transport(scope, receive)
    if transport is None:
        raise RuntimeError("cannot drop the connection: run the sandbox with `python -m capillary_provider.sandbox`")
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()
    else:  # pragma: no cover
        transport.close()
    with anyio.move_on_after(5):
        while (await receive())["type"] != "http.disconnect":
            pass


class DropConnection(Exception):
    """Raised by a route to make the middleware drop the connection without answering."""

    def __init__(self, when: str) -> None:
        super().__init__(when)
        self.when = when
