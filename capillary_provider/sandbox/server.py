"""Dropping a connection without answering, for the sandbox's ``drop_*`` faults.

ASGI gives an app no way to close its connection unanswered: an app that raises or returns without
answering gets a 500 written for it. So :func:`drop_connection` aborts the transport of uvicorn's request
cycle, reached through ``receive`` (a bound method of that cycle): a private attribute of uvicorn, in both
its ``h11`` and ``httptools`` protocols. Tested with uvicorn 0.54 (``constraints/`` of every pair);
``tests/sandbox/test_sandbox.py::test_drop_before_body_closes_the_connection_and_creates_no_job`` fails if
a uvicorn release moves it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from starlette.types import Receive


def _find_transport(receive: Receive) -> asyncio.BaseTransport | None:
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


async def drop_connection(receive: Receive) -> None:
    """Abort the TCP connection of this request without sending anything, then wait for the server
    to register the disconnect (so it does not try to write a 500 of its own)."""
    transport = _find_transport(receive)
    if transport is None:
        raise RuntimeError(
            "cannot drop the connection: the sandbox runs under uvicorn only (python -m capillary_provider.sandbox)"
        )
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
