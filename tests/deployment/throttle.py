"""A slow TCP proxy in front of the sandbox, so that an upload takes long enough to be killed mid-transfer.

Uploads to a local server finish in milliseconds. The proxy reads what the client sends at most
``rate`` bytes per second and forwards the answers at full speed. It follows the HTTP/1.1 requests
on each connection (``Content-Length`` bodies, keep-alive) and records for each one how many body
bytes reached the server and whether the connection closed before the body was complete (``cut``).

A SIGKILLed process on the same host does not stop its upload at once: its kernel still flushes the
socket's send buffer, which on loopback (64 KiB segments) grows past a megabyte. A crashed machine
takes that buffer with it. :meth:`ThrottlingProxy.sever_in_flight` plays the network of the crashed
machine: called right after the kill, it drops the connections whose request body is still arriving.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, replace

RECEIVE_BUFFER = 8192
"""Bytes the kernel may hold for the proxy per connection; the sender then blocks on the proxy's pace."""


@dataclass
class ProxiedRequest:
    method: str
    path: str
    content_length: int
    body_sent: int = 0
    complete: bool = False
    cut: bool = False

    @property
    def fraction(self) -> float:
        return self.body_sent / self.content_length if self.content_length else 1.0


class ThrottlingProxy:
    """Forward 127.0.0.1:<port> to ``upstream``, client-to-server bytes at ``rate`` bytes per second."""

    def __init__(self, upstream_port: int, rate: int, chunk: int = 8192) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.rate = rate
        self.chunk = chunk
        self._lock = threading.Lock()
        self._records: list[ProxiedRequest] = []
        self._stopped = threading.Event()
        self._connections: list[_Connection] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Set before listen(): accepted sockets inherit it, and a fixed size turns off auto-tuning.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="throttle-accept", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _close(connection.client, connection.server)

    def sever_in_flight(self) -> list[ProxiedRequest]:
        """Drop every connection whose request body is still arriving; return those requests (now ``cut``)."""
        severed = []
        with self._lock:
            for connection in self._connections:
                current = connection.current
                if current is not None and not current.complete:
                    current.cut = True
                    connection.severed = True
                    severed.append((connection, replace(current)))
        for connection, _ in severed:
            _close(connection.client, connection.server)
        return [record for _, record in severed]

    def requests(self, path_contains: str = "") -> list[ProxiedRequest]:
        """Copies of the requests seen so far, in order."""
        with self._lock:
            return [replace(record) for record in self._records if path_contains in record.path]

    # -- internals ----------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            connection = _Connection(client, server)
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._upstream, args=(connection,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, connection: _Connection) -> None:
        """Client to server, throttled, following request boundaries."""
        client, server = connection.client, connection.server
        head = b""
        try:
            while not connection.severed:
                data = client.recv(self.chunk)
                if not data or connection.severed:
                    break
                view = data
                while view:
                    current = connection.current
                    if current is None:
                        head += view
                        end = head.find(b"\r\n\r\n")
                        if end < 0:
                            view = b""
                            continue
                        record = self._record(head[:end])
                        view, head = head[end + 4 :], b""
                        with self._lock:
                            connection.current = None if record.complete else record
                        continue
                    take = min(len(view), current.content_length - current.body_sent)
                    with self._lock:
                        current.body_sent += take
                        if current.body_sent >= current.content_length:
                            current.complete = True
                            connection.current = None
                    view = view[take:]
                server.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            with self._lock:
                if connection.current is not None and not connection.current.complete:
                    connection.current.cut = True
            _close(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _record(self, head: bytes) -> ProxiedRequest:
        lines = head.decode("latin-1").split("\r\n")
        method, path, *_ = [*lines[0].split(" "), "", ""]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        record = ProxiedRequest(method=method, path=path, content_length=length, complete=length == 0)
        with self._lock:
            self._records.append(record)
        return record


@dataclass(eq=False)
class _Connection:
    client: socket.socket
    server: socket.socket
    current: ProxiedRequest | None = None
    severed: bool = False


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
