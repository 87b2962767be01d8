"""Upload throughput of ``CapillaryHook.upload_coupon_file`` against ``curl -F``, same file, same server.

Run: ``python benchmarks/bench_upload_vs_curl.py [--rows 40000000] [--repeat 5] [--path DIR]``.

Both send one multipart POST of the whole file (about 1 GB by default) to the same local discard
server (``benchmarks/discard_server.py``, its own process, which reads the body in 1 MiB blocks and
throws it away). curl stands in for the physical limit of this machine; the runs alternate (after
one warm-up each, so the file is in the page cache for both) and the best of ``--repeat`` is kept for
each. curl's time is its own ``time_total``; the hook's is the wall time of ``upload_coupon_file``
with the token already cached, in this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import bench_dir, connection_env, coupon_file, discard_server, server_stats

from capillary_provider.hooks.capillary import CapillaryHook

SERIES = 1


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def curl_upload(url: str, path: Path) -> tuple[float, float]:
    """Seconds curl took to send ``path`` with ``-F`` (curl's own ``time_total``), and curl's CPU seconds."""
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code}",
            "-H", "X-CAP-API-OAUTH-TOKEN: discard-token",
            "-F", f"file=@{path};type=text/csv", "-F", "customerIdentifier=MOBILE",
            f"{url}/coupon/api/v1/upload/file/{SERIES}",
        ],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    if out[1] != "200":
        raise RuntimeError(f"curl got HTTP {out[1]}")
    return float(out[0]), cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def hook_upload(hook: CapillaryHook, path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``upload_coupon_file`` in this process (nothing else runs in it meanwhile)."""
    cpu = cpu_seconds(resource.RUSAGE_SELF)
    start = time.perf_counter()
    hook.upload_coupon_file(SERIES, path, file_name=path.name, customer_identifier="MOBILE")
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40_000_000, help="rows of 26 bytes (40M: about 1.04 GB)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated file")
    args = parser.parse_args()
    if not shutil.which("curl"):
        print("curl is not installed", file=sys.stderr)
        return 2
    path = coupon_file(bench_dir(args.path), args.rows)
    size = path.stat().st_size
    with discard_server() as url:
        os.environ.update(connection_env(url))
        hook = CapillaryHook()
        hook.get_token()
        curl_upload(url, path)  # warm-up: page cache, connection pool
        hook_upload(hook, path)
        runs: dict[str, list[tuple[float, float]]] = {"curl -F": [], "hook": []}
        for _ in range(args.repeat):
            runs["curl -F"].append(curl_upload(url, path))
            runs["hook"].append(hook_upload(hook, path))
        stats = server_stats(url)
    if stats["uploads"] != 2 * (args.repeat + 1) or stats["body_bytes"] < 2 * (args.repeat + 1) * size:
        raise RuntimeError(f"the server did not receive every upload in full: {stats}")
    gb = size / 1e9
    print(f"{path.name}: {size / 1e6:,.0f} MB, {args.repeat} alternating runs each, python {sys.version.split()[0]}")
    print(f"{'':8} {'best MB/s':>10} {'median MB/s':>12} {'CPU s/GB':>9}   wall seconds of each run")
    for label, results in runs.items():
        walls, cpus = [wall for wall, _ in results], [cpu for _, cpu in results]
        each = " ".join(f"{wall:.2f}" for wall in walls)
        best, middle, cpu = gb * 1e3 / min(walls), gb * 1e3 / median(walls), median(cpus) / gb
        print(f"{label:8} {best:10,.0f} {middle:12,.0f} {cpu:9.2f}   {each}")
    curl, hook_runs = runs["curl -F"], runs["hook"]
    best = min(wall for wall, _ in curl) / min(wall for wall, _ in hook_runs)
    middle = median([wall for wall, _ in curl]) / median([wall for wall, _ in hook_runs])
    cpu_ratio = median([cpu for _, cpu in hook_runs]) / median([cpu for _, cpu in curl])
    print(f"hook / curl throughput: {best:.2f}x best-of-{args.repeat}, {middle:.2f}x median (target >= 0.7x)")
    print(f"hook / curl client CPU per byte: {cpu_ratio:.2f}x (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
