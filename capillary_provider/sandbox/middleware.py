"""Raw ASGI middleware: request id header, request log, and connection drops."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from capillary_provider.sandbox.server import DropConnection, drop_connection
from capillary_provider.sandbox.state import iso

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from capillary_provider.sandbox.state import SandboxState

LOG_EXTENSION = "capillary.sandbox.log"
CONTROL_PREFIX = "/_sandbox/"


def log_entry(scope: Scope) -> dict[str, Any]:
    """The request-log entry of this request (a throwaway dict for control requests)."""
    entry = (scope.get("extensions") or {}).get(LOG_EXTENSION)
    return entry if isinstance(entry, dict) else {}


class SandboxMiddleware:
    """Adds ``X-Cap-Requestid`` to every answer, logs non-control requests, performs drops."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(16)
        started = time.time()
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": None,
            "time": iso(started),
            "requestId": request_id,
            "fault": None,
        }
        scope.setdefault("extensions", {})[LOG_EXTENSION] = entry

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-cap-requestid", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except DropConnection as drop:
            entry["status"] = None
            entry["dropped"] = drop.when
            await drop_connection(receive)
        finally:
            entry["durationMs"] = int((time.time() - started) * 1000)
            if not scope["path"].startswith(CONTROL_PREFIX):
                self.state.log_request(entry)
