"""Run the Capillary sandbox: a local emulator of Capillary's coupon upload endpoints.

Usage::

    python -m capillary_provider.sandbox [--host 127.0.0.1] [--port 0] [--port-file PATH]
        [--key sandbox-key] [--secret sandbox-secret] [--token-ttl 3600] [--token-prefix sbx-tok-]
        [--step-seconds 1.0] [--data-dir DIR] [--existing-codes FILE] [--fault JSON ...]
        [--series-state ID=STATE ...] [--series-codes ID=FILE ...] [--log-level warning]

Options:

``--host``            interface to listen on (default 127.0.0.1).
``--port``            TCP port; 0 (default) picks a free one.
``--port-file``       once listening, write the base URL (``http://127.0.0.1:PORT``) to this file
                      atomically (temporary file + rename).
``--key/--secret``    the only accepted OAuth client credentials (default sandbox-key/sandbox-secret).
``--token-ttl``       token lifetime in seconds, reported as ``ttlSeconds`` (default 3600).
``--token-prefix``    prefix of issued tokens (default ``sbx-tok-``).
``--step-seconds``    upload jobs move STARTED -> VALIDATED -> COMMITED -> FINISHED (redeemed jobs
                      QUEUED -> COMPLETED) one step every this many seconds (default 1.0; 0 = at once).
``--data-dir``        where uploads, error/success files and the code index go (default: a new
                      temporary directory).
``--existing-codes``  file with one coupon code per line, treated as already present in every series.
``--fault``           a fault rule as JSON (repeatable), loaded at start; see below.
``--series-state``    ``ID=STATE`` (repeatable): how ``GET /v2/coupon/series`` shows series ID: ``valid``
                      (the default for every id), ``unknown``, ``expired`` or ``forbidden`` (403).
``--series-codes``    ``ID=FILE`` (repeatable): codes, one per line, known in series ID from the start
                      (redeemable, duplicates for uploads), as if uploaded without customers.
``--log-level``       uvicorn log level (default warning).

Once listening it prints ``Capillary sandbox listening on http://127.0.0.1:PORT``.

Capillary endpoints (envelopes as in the Capillary docs):

* ``POST /v3/oauth/token/generate`` ``{"key", "secret"}`` -> ``{"data": {"accessToken", "ttlSeconds"},
  "errors": null}``; bad credentials -> 401 ``{"data": null, "errors": [{"code": 320001, ...}]}``.
* ``POST /coupon/api/v1/upload/file/{couponSeriesId}`` multipart ``file``, ``customerIdentifier``,
  ``customerIdentifierColumn`` -> a ``STARTED`` job. Needs header ``X-CAP-API-OAUTH-TOKEN``
  (401 ``Invalid token`` / 498 ``Token expired at ...``). The file is streamed to disk.
* ``GET /coupon/api/v1/upload/getUploadStatus/{couponSeriesId}`` -> all jobs of the series.
* ``POST /coupon/api/v1/upload/redeemFile/{couponSeriesId}`` multipart ``file``, ``customerIdentifier``,
  ``couponIdentifier``, ``uploadHeaders`` (JSON key -> column), ``Details`` -> a ``QUEUED`` job in
  ``redeemUploadJobStatuses``; ``GET .../getUploadRedeemedCouponStatus/{couponSeriesId}`` -> all
  redeemed jobs of the series (``QUEUED`` -> ``COMPLETED``).
* ``GET /v2/coupon/series?ids=1,2`` -> ``{"entity": [series...], "warnings": []}``.

Rows are validated once in the background: a row is an error when its code is empty, longer than
20 characters, already in the series (earlier jobs, earlier in the file, or ``--existing-codes``) or
when its identifier does not fit ``customerIdentifier``. Counts and ``errorFileUrl`` /
``successFileUrl`` (storage keys such as ``sandbox/errors/7_errors.csv``) appear at ``FINISHED``. A
file that is not UTF-8 or has no header row makes the job ``ERRORED``. Every answer carries an
``X-Cap-Requestid`` header.

Control endpoints (no auth):

* ``GET /_sandbox/health`` -> ``{"ok": true}``
* ``GET /_sandbox/jobs[?series=N][&kind=coupon|redeemed|all]`` -> every job (coupon uploads by
  default) with its series id and sandbox internals
* ``GET /_sandbox/series``, ``POST /_sandbox/series/{id}`` ``{"state": ..., "fields": {...}}`` -> series states
* ``GET|POST /_sandbox/series/{id}/codes`` -> list or seed the codes a series knows
* ``GET /_sandbox/requests[?path_contains=S]`` -> log of Capillary calls: method, path, status (null
  when dropped), time, requestId, fault, fileName (uploads), jobId, dropped. Never tokens or secrets.
* ``POST /_sandbox/reset`` -> forget jobs, accepted codes, tokens, faults, request log
* ``POST /_sandbox/step-seconds`` ``{"seconds": x}`` -> change the job pace from now on
* ``GET|POST|DELETE /_sandbox/faults`` -> list, add, clear fault rules

Fault rules (off by default). Each call of an endpoint spends one use of the first live rule for it::

    {"endpoint": "token" | "upload" | "status" | "redeem_upload" | "redeem_status" | "series",
     "times": 1 (null = forever), "action": ACTION}

ACTION is one of:

* ``{"type": "status", "status": 503, "retry_after": 2, "body": null, "after_body": false}`` answer
  this status with a Capillary-style failure body (``body`` replaces it; ``Retry-After`` sent when
  ``retry_after`` is set). Without ``after_body`` the request body is not read (no job);
  ``after_body: true`` (upload, redeem_upload) creates the job first.
* ``{"type": "drop_before_body"}`` close the connection without reading the body or answering.
* ``{"type": "drop_after_body"}`` process normally (the upload job IS created), then close without
  answering.
* ``{"type": "delay", "seconds": 5}`` process normally, wait, then answer.
* ``{"type": "malformed_json"}`` process normally, answer 200 with a truncated JSON body.
* ``{"type": "success_false"}`` process normally, answer HTTP 200 ``{"success": false, "status": 500,
  "message": "Injected failure"}`` (token endpoint: the ``errors`` form).
* ``{"type": "expire_tokens", "seconds": 1}`` (token only) the issued token expires after ``seconds``
  although ``ttlSeconds`` still says the configured TTL.
* ``{"type": "job_errored"}`` (upload, redeem_upload) the created job ends ``ERRORED``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from capillary_provider.sandbox.app import create_app
from capillary_provider.sandbox.config import SandboxConfig
from capillary_provider.sandbox.faults import FaultRule
from capillary_provider.sandbox.series import parse_state


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m capillary_provider.sandbox",
        description="Local emulator of Capillary's coupon upload endpoints.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default: %(default)s)")
    add("--port-file", type=Path, help="write the sandbox's URL to this file once it listens")
    add("--key", default="sandbox-key", help="the client key it accepts (default: %(default)s)")
    add("--secret", default="sandbox-secret", help="the client secret it accepts (default: %(default)s)")
    add("--token-ttl", type=float, default=3600.0, help="token lifetime in seconds (default: %(default)s)")
    add("--token-prefix", default="sbx-tok-", help="start of every token it issues (default: %(default)s)")
    add("--step-seconds", type=float, default=1.0, help="seconds per job state change (default: %(default)s)")
    add("--data-dir", type=Path, help="where uploaded and error files go (default: a temporary folder)")
    add("--existing-codes", type=Path, help="file of codes, one per line, already in every series")
    add("--fault", action="append", default=[], metavar="JSON", help="a fault rule to start with (repeatable)")
    add(
        "--series-state",
        action="append",
        default=[],
        metavar="ID=STATE",
        help="series read state of a series: valid, unknown, expired or forbidden (repeatable)",
    )
    add(
        "--series-codes",
        action="append",
        default=[],
        metavar="ID=FILE",
        help="file of codes, one per line, known in series ID from the start (repeatable)",
    )
    add(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: %(default)s)",
    )
    return parser.parse_args(argv)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


async def _serve(server: uvicorn.Server, sock: socket.socket, url: str, port_file: Path | None) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit("the sandbox server stopped during start-up")
        await asyncio.sleep(0.01)
    if port_file is not None:  # before the line, so whoever reads the line can read the file
        _write_atomically(port_file, url)
    print(f"Capillary sandbox listening on {url}", flush=True)
    await serving


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    faults: list[dict[str, object]] = []
    for raw in args.fault:
        try:
            faults.append(FaultRule.model_validate_json(raw).model_dump(mode="json"))
        except ValueError as exc:
            print(f"invalid --fault {raw!r}: {exc}", file=sys.stderr)
            return 2
    series_states: dict[int, str] = {}
    for raw in args.series_state:
        try:
            series_id, state = parse_state(raw)
        except ValueError as exc:
            print(f"invalid --series-state: {exc}", file=sys.stderr)
            return 2
        series_states[series_id] = state
    series_codes: dict[int, frozenset[str]] = {}
    for raw in args.series_codes:
        series_text, sep, path = raw.partition("=")
        if not sep or not series_text.strip().isdigit() or int(series_text) <= 0 or not Path(path).is_file():
            print(f"invalid --series-codes {raw!r}: expected SERIES_ID=FILE with an existing file", file=sys.stderr)
            return 2
        series_id = int(series_text)
        series_codes[series_id] = series_codes.get(series_id, frozenset()) | SandboxConfig.read_codes_file(Path(path))
    config = SandboxConfig(
        key=args.key,
        secret=args.secret,
        token_ttl=args.token_ttl,
        step_seconds=args.step_seconds,
        token_prefix=args.token_prefix,
        existing_codes=SandboxConfig.read_codes_file(args.existing_codes) if args.existing_codes else frozenset(),
        faults=faults,
        series_states=series_states,
        series_codes=series_codes,
    )
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    uv_config = uvicorn.Config(
        create_app(config),
        log_level=args.log_level,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    asyncio.run(_serve(uvicorn.Server(uv_config), sock, url, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
