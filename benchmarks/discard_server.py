"""A local HTTP server shaped like Capillary's coupon API that throws upload bodies away as fast as it can.

Run: ``python benchmarks/discard_server.py [--port 0] [--port-file FILE]``; it listens on 127.0.0.1 and
answers:

- ``POST /v3/oauth/token/generate``: a token valid for an hour;
- ``POST /coupon/api/v1/upload/file/{series}``: reads the body in 1 MiB ``recv_into`` calls without
  keeping it, and answers Capillary's upload envelope with a new job (``STARTED``) carrying the
  ``filename`` of the multipart file part;
- ``GET /coupon/api/v1/upload/getUploadStatus/{series}``: every job of the series, ``FINISHED``;
- ``GET /_discard/stats``: uploads received and body bytes read, for the benchmarks' sanity checks.

The benchmarks start it in its own process so that its CPU time never counts against the client
under test, and use the same server for every contender.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BLOCK = 1 << 20
TOKEN = "discard-token"
_FILENAME = re.compile(rb'filename="([^"]*)"')
_UPLOAD = re.compile(r"^/coupon/api/v1/upload/file/(\d+)$")
_STATUS = re.compile(r"^/coupon/api/v1/upload/getUploadStatus/(\d+)$")


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 1
        self.uploads = 0
        self.body_bytes = 0

    def add_job(self, series: str, file_name: str, size: int) -> dict[str, Any]:
        with self.lock:
            now = str(int(time.time() * 1000))
            job = {
                "jobId": self.next_id,
                "uploadStatus": "STARTED",
                "uploadedFileName": file_name,
                "createdOn": now,
                "updatedOn": now,
                "actualRowCount": 0,
                "totalUploadedCount": 0,
                "errorCount": 0,
                "errorFileUrl": None,
                "successFileUrl": None,
            }
            self.next_id += 1
            self.uploads += 1
            self.body_bytes += size
            self.jobs.setdefault(series, []).append(job)
            return job


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" answered at once (curl sends it)
    disable_nagle_algorithm = True  # else every answer waits for the client's delayed ACK (40 ms)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _discard_body(self) -> tuple[int, bytes]:
        """Read the whole body without keeping it; return its size and its first bytes (part headers)."""
        remaining = int(self.headers.get("Content-Length") or 0)
        size = remaining
        buffer = bytearray(BLOCK)
        view = memoryview(buffer)
        head = b""
        while remaining:
            got = self.rfile.readinto(view[: min(BLOCK, remaining)])
            if not got:
                break
            if len(head) < 4096:
                head += bytes(view[: min(got, 4096)])
            remaining -= got
        return size - remaining, head

    def do_POST(self) -> None:
        if self.path == "/v3/oauth/token/generate":
            self._discard_body()
            self._answer({"data": {"accessToken": TOKEN, "ttlSeconds": 3600}, "errors": []})
            return
        match = _UPLOAD.match(self.path)
        if not match:
            self._discard_body()
            self._answer({"success": False, "message": "not found"}, 404)
            return
        size, head = self._discard_body()
        name = _FILENAME.search(head)
        job = STATE.add_job(match[1], name[1].decode() if name else "upload.csv", size)
        self._answer({"success": True, "status": 200, "result": {"uploadJobStatuses": [job]}})

    def do_GET(self) -> None:
        if self.path == "/_discard/stats":
            self._answer({"uploads": STATE.uploads, "body_bytes": STATE.body_bytes})
            return
        match = _STATUS.match(self.path)
        if not match:
            self._answer({"success": False, "message": "not found"}, 404)
            return
        with STATE.lock:
            jobs = [{**job, "uploadStatus": "FINISHED"} for job in STATE.jobs.get(match[1], [])]
        self._answer({"success": True, "status": 200, "result": {"uploadJobStatuses": jobs}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    if args.port_file:
        args.port_file.write_text(url)
    print(url, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
