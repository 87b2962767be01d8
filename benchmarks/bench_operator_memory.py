"""Peak memory of a whole CouponUploadOperator run: a 50-million-row file (about 1.3 GB) against 1,000 rows.

Run: ``python benchmarks/bench_operator_memory.py [--rows 50000000] [--small-rows 1000] [--repeat 1] [--path DIR]``.

Each run is one child process that executes the operator in-process (validation, planning of
500,000-row batches, and every upload; ``wait_for_completion=False``) against the local discard
server (``benchmarks/discard_server.py``, its own process). The child's peak resident set size is
the kernel's ``ru_maxrss`` of that child alone (from ``os.wait4``); the child also reports its
``VmHWM`` and its RSS just before ``execute``, i.e. after importing Airflow. Small and large runs
alternate; the largest peak of each size is kept. Target: the large run peaks within 64 MiB of the
small one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import VM_HWM, bench_dir, connection_env, coupon_file, discard_server, run_child, server_stats

CHILD = (
    VM_HWM
    + """
import json, sys, time
from types import SimpleNamespace
from capillary_provider.operators.coupon_upload import CouponUploadOperator

path, series = sys.argv[1], sys.argv[2]
xcom = {}
ti = SimpleNamespace(dag_id="bench", task_id="upload", run_id="run", map_index=-1, try_number=1,
                     xcom_push=lambda key, value: xcom.__setitem__(key, value))
operator = CouponUploadOperator(task_id="upload", coupon_series_id=series, source=path,
                                customer_identifier="MOBILE", customer_identifier_column=0,
                                wait_for_completion=False)
before = vm_hwm_mib()
start = time.perf_counter()
summary = operator.execute({"ti": ti})
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "batches": len(summary["job_ids"]), "hwm_before_mib": before,
                  "vm_hwm_mib": vm_hwm_mib()}))
"""
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated files")
    args = parser.parse_args()
    directory = bench_dir(args.path)
    files = {"small": coupon_file(directory, args.small_rows), "large": coupon_file(directory, args.rows)}
    results: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
    series = 100
    with discard_server() as url:
        env = connection_env(url)
        for _ in range(args.repeat):
            for label, path in files.items():
                series += 1
                before = server_stats(url)["uploads"]
                result = run_child(CHILD, [str(path), str(series)], env)
                uploads = server_stats(url)["uploads"] - before
                if uploads != result["batches"]:
                    raise RuntimeError(f"{label}: {uploads} uploads reached the server, {result['batches']} expected")
                results[label].append(result)
    print(f"python {sys.version.split()[0]}; runs of each size: {args.repeat}; peaks are the largest of the runs")
    print(f"{'file':>28} {'MB':>7} {'batches':>8} {'seconds':>8} {'RSS after import':>17} {'peak RSS MiB':>13}")
    peaks = {}
    for label, path in files.items():
        runs = results[label]
        peaks[label] = max(run["peak_rss_mib"] for run in runs)
        print(
            f"{path.name:>28} {path.stat().st_size / 1e6:7,.0f} {int(runs[0]['batches']):8} "
            f"{min(run['seconds'] for run in runs):8.1f} {max(run['hwm_before_mib'] for run in runs):17.1f} "
            f"{peaks[label]:13.1f}"
        )
    growth = peaks["large"] - peaks["small"]
    print(f"peak difference, {args.rows:,} rows vs {args.small_rows:,} rows: {growth:+.1f} MiB (target: within 64 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
