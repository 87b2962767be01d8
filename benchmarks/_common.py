"""Shared parts of the upload benchmarks: the coupon file, the discard server, child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
HEADER = b"mobile,code\n"
ROW_BYTES = 26
"""``91XXXXXXXXXX,CXXXXXXXXXXX\\n``: 50 million rows make a file of about 1.3 GB."""


def coupon_file(directory: Path, rows: int) -> Path:
    """A valid ``mobile,code`` CSV of ``rows`` distinct rows, written once and reused (26 bytes a row)."""
    path = directory / f"coupons_{rows}.csv"
    if path.exists() and path.stat().st_size == len(HEADER) + rows * ROW_BYTES:
        return path
    tmp = path.with_suffix(".tmp")
    step = 100_000
    with tmp.open("wb") as out:
        out.write(HEADER)
        for start in range(0, rows, step):
            out.write(
                b"".join(b"91%010d,C%011d\n" % (9_000_000_000 + n, n) for n in range(start, min(rows, start + step)))
            )
    tmp.replace(path)
    return path


def bench_dir(explicit: Path | None) -> Path:
    directory = explicit or Path(tempfile.gettempdir()) / "capillary-bench"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def discard_server() -> Iterator[str]:
    """Start :mod:`discard_server` in its own process on a free port; yield its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "url"
        process = subprocess.Popen(
            [sys.executable, str(HERE / "discard_server.py"), "--port-file", str(port_file)],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the discard server did not start")
                time.sleep(0.05)
            yield port_file.read_text().strip()
        finally:
            process.terminate()
            process.wait(timeout=10)


def server_stats(url: str) -> dict[str, int]:
    stats: dict[str, int] = requests.get(f"{url}/_discard/stats", timeout=10).json()
    return stats


def connection_env(url: str) -> dict[str, str]:
    """Environment for a child process whose ``capillary_default`` connection is the discard server."""
    connection = {"conn_type": "capillary", "host": url, "login": "key", "password": "secret"}
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_CONN_CAPILLARY_DEFAULT"] = json.dumps(connection)
    env.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    return env


def run_child(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -c code *args``; return the JSON it prints last plus its peak RSS from ``wait4``.

    The child prints one JSON line; ``peak_rss_mib`` is the kernel's ``ru_maxrss`` of that child alone.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"child failed ({process.returncode}):\n{err.read().decode()[-3000:]}")
        result: dict[str, Any] = json.loads(out.read().decode().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


VM_HWM = """
def vm_hwm_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
"""
