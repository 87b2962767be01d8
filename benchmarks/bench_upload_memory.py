"""Peak memory of ``CapillaryHook.upload_coupon_file``: a ~1 GB upload against a 1 MB one.

Run: ``python benchmarks/bench_upload_memory.py [--size-mb 1024] [--server discard|sandbox] [--naive]``.

The benchmark writes a coupon CSV of ``--size-mb`` MiB and one of 1 MiB, then uploads each in a fresh
child process with the hook, over real HTTP on 127.0.0.1, to either a small discard server run by
this script (it answers the token and upload endpoints like Capillary and throws the body away after
counting it) or the bundled sandbox (which stores the file and parses it). The child's peak resident
set size comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that child alone); the child also
reports ``VmHWM`` from ``/proc/self/status`` and its RSS just before uploading. If the upload is
streamed, the two peaks are the same within a few MiB whatever the file size.

``--naive`` adds, for comparison, the same uploads done the usual way (``requests.post(files=...)``),
which builds the whole multipart body in memory. ``--max-growth-mb N`` exits 1 when the hook's peak
for the big file exceeds the 1 MiB one by more than N MiB (for CI use).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
SERIES = 4711
READ_BLOCK = MIB


# -- the file ---------------------------------------------------------------------------------------


def write_csv(path: Path, size_bytes: int) -> int:
    """Write a ``mobile,code`` CSV of about ``size_bytes`` bytes, quickly (distinct rows, 1 MiB writes)."""
    written = 0
    row = 0
    with path.open("wb") as out:
        header = b"mobile,code\n"
        out.write(header)
        written += len(header)
        while written < size_bytes:
            block = b"".join(f"91{9_000_000_000 + n},C{n:011d}\n".encode() for n in range(row, row + 40_000))
            row += 40_000
            block = block[: max(0, size_bytes - written)] if written + len(block) > size_bytes else block
            block = block[: block.rfind(b"\n") + 1] if block and not block.endswith(b"\n") else block
            if not block:
                break
            out.write(block)
            written += len(block)
    return written


# -- a discard server ---------------------------------------------------------------------------------


class _DiscardHandler(BaseHTTPRequestHandler):
    """Answers like Capillary's token and upload endpoints; counts and drops upload bodies."""

    protocol_version = "HTTP/1.1"
    received: list[int] = []  # replaced by a fresh list per server in discard_server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Cap-Requestid", "bench")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        total = 0
        while remaining > 0:
            chunk = self.rfile.read(min(READ_BLOCK, remaining))
            if not chunk:
                break
            total += len(chunk)
            remaining -= len(chunk)
        if self.path.endswith("/v3/oauth/token/generate"):
            self._answer({"data": {"accessToken": "bench-token", "ttlSeconds": 3600}, "errors": None})
            return
        self.received.append(total)
        job = {"jobId": len(self.received), "uploadStatus": "STARTED", "uploadedFileName": "bench.csv"}
        self._answer({"success": True, "status": 200, "result": {"uploadJobStatuses": [job]}})


@contextmanager
def discard_server() -> Iterator[tuple[str, list[int]]]:
    """Serve on a free 127.0.0.1 port; yield its URL and the list of upload body sizes it received."""
    handler = type("Handler", (_DiscardHandler,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.received
    finally:
        server.shutdown()
        server.server_close()


# -- the child ----------------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def child(mode: str, path: str, url: str, key: str, secret: str) -> None:
    """Upload ``path`` once (``mode`` hook or naive) and print a JSON line with the measurements."""
    import requests

    from capillary_provider.hooks.capillary import CapillaryHook

    conn = {"conn_type": "capillary", "host": url, "login": key, "password": secret}
    os.environ["AIRFLOW_CONN_CAPILLARY_BENCH"] = json.dumps(conn)
    hook = CapillaryHook("capillary_bench")
    hook.get_token()  # connection, session and token ready: what follows is the upload alone
    rss_before = _proc_status_kib("VmRSS")
    started = time.perf_counter()
    if mode == "hook":
        job = hook.upload_coupon_file(SERIES, path, file_name="bench.csv", customer_identifier="MOBILE",
                                      customer_identifier_column=0)  # fmt: skip
        job_id = job.job_id
    else:
        with open(path, "rb") as handle:
            response = requests.post(
                f"{url}/coupon/api/v1/upload/file/{SERIES}",
                headers={"X-CAP-API-OAUTH-TOKEN": hook.get_token()},
                files={"file": ("bench.csv", handle, "text/csv")},
                data={"customerIdentifier": "MOBILE", "customerIdentifierColumn": "0"},
                timeout=(10, 600),
            )
        response.raise_for_status()
        job_id = response.json()["result"]["uploadJobStatuses"][0]["jobId"]
    elapsed = time.perf_counter() - started
    result = {
        "job_id": job_id,
        "elapsed": elapsed,
        "rss_before_kib": rss_before,
        "vm_hwm_kib": _proc_status_kib("VmHWM"),
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_child(mode: str, path: Path, url: str, key: str, secret: str) -> dict[str, Any]:
    """Run one upload in a fresh interpreter; add that child's ru_maxrss (KiB) from ``os.wait4``."""
    command = [sys.executable, __file__, "--child", mode, str(path), url, key, secret]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{mode} upload of {path} failed (exit {process.returncode}):\n{text[-4000:]}")
    line = next(line for line in text.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["ru_maxrss_kib"] = usage.ru_maxrss
    return result


# -- main -----------------------------------------------------------------------------------------------


@contextmanager
def target(kind: str, data_dir: Path) -> Iterator[tuple[str, str, str, list[int] | None]]:
    if kind == "discard":
        with discard_server() as (url, received):
            yield url, "bench-key", "bench-secret", received
    else:
        from capillary_provider.sandbox.testing import running_sandbox

        with running_sandbox(step_seconds=3600, data_dir=data_dir / "sandbox") as sandbox:
            yield sandbox.url, sandbox.key, sandbox.secret, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the big file in MiB (default 1024)")
    parser.add_argument("--small-mb", type=float, default=1.0, help="size of the reference file in MiB (default 1)")
    parser.add_argument("--server", choices=("discard", "sandbox"), default="discard")
    parser.add_argument("--naive", action="store_true", help="also measure requests.post(files=...)")
    parser.add_argument("--path", type=Path, default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--max-growth-mb", type=float, default=None, help="fail if the hook's peak grows more")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.path, prefix="bench-upload-") as work:
        work_dir = Path(work)
        files = {"small": work_dir / "small.csv", "big": work_dir / "big.csv"}
        sizes = {
            "small": write_csv(files["small"], int(args.small_mb * MIB)),
            "big": write_csv(files["big"], args.size_mb * MIB),
        }
        print(f"files: small {sizes['small'] / MIB:.1f} MiB, big {sizes['big'] / MIB:.1f} MiB; server: {args.server}")
        modes = ["hook", "naive"] if args.naive else ["hook"]
        results: dict[tuple[str, str], dict[str, Any]] = {}
        with target(args.server, work_dir) as (url, key, secret, received):
            for mode in modes:
                for size in ("small", "big"):
                    result = run_child(mode, files[size], url, key, secret)
                    if received is not None:
                        result["body_bytes"] = received[-1]
                    results[mode, size] = result

    print(f"\n{'upload':<8} {'file':>10} {'peak RSS':>10} {'VmHWM':>10} {'RSS before':>11} {'time':>8} {'rate':>11}")
    for (mode, size), r in results.items():
        rate = sizes[size] / MIB / r["elapsed"] if r["elapsed"] else 0.0
        print(
            f"{mode:<8} {sizes[size] / MIB:>6.1f} MiB {r['ru_maxrss_kib'] / 1024:>6.1f} MiB "
            f"{r['vm_hwm_kib'] / 1024:>6.1f} MiB {r['rss_before_kib'] / 1024:>7.1f} MiB "
            f"{r['elapsed']:>7.2f}s {rate:>7.1f} MiB/s" + (f"  body {r['body_bytes']:,} B" if "body_bytes" in r else "")
        )
    for mode in modes:
        small, big = results[mode, "small"]["ru_maxrss_kib"], results[mode, "big"]["ru_maxrss_kib"]
        print(
            f"{mode}: peak RSS {big / 1024:.1f} MiB for {sizes['big'] / MIB:.0f} MiB vs {small / 1024:.1f} MiB for "
            f"{sizes['small'] / MIB:.0f} MiB: difference {(big - small) / 1024:+.1f} MiB, ratio {big / small:.2f}x"
        )
    growth = (results["hook", "big"]["ru_maxrss_kib"] - results["hook", "small"]["ru_maxrss_kib"]) / 1024
    if args.max_growth_mb is not None and growth > args.max_growth_mb:
        print(f"FAIL: the hook's peak RSS grew {growth:.1f} MiB, more than --max-growth-mb {args.max_growth_mb}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
        raise SystemExit(0)
    raise SystemExit(main())
