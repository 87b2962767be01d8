"""CouponUploadOperator end to end against the naive PythonOperator body most teams write today.

Run: ``python benchmarks/bench_operator_vs_naive.py [--rows 40000000] [--repeat 3] [--path DIR]``.

Same file (about 1 GB by default), same local discard server (``benchmarks/discard_server.py``, its
own process), each run in its own child process that has imported Airflow, as a worker has:

- *operator*: ``CouponUploadOperator.execute`` with the defaults: validation, 500,000-row batches
  with the header repeated, one upload per batch, then one status call (the discard server answers
  FINISHED at once, so the wait costs a single call);
- *naive*: get a token, then ``requests.post(url, files={"file": open(path, "rb")}, data=...)``, which
  builds the whole multipart body in memory; no validation, no batching, no waiting.

Runs alternate; time is the best of ``--repeat`` (wall time of the task body in the child), memory the
largest peak RSS (``ru_maxrss`` from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import bench_dir, connection_env, coupon_file, discard_server, run_child, server_stats

OPERATOR = """
import json, sys, time
from types import SimpleNamespace
from capillary_provider.operators.coupon_upload import CouponUploadOperator

path, series = sys.argv[1], sys.argv[2]
ti = SimpleNamespace(dag_id="bench", task_id="upload", run_id="run", map_index=-1, try_number=1,
                     xcom_push=lambda key, value: None)
operator = CouponUploadOperator(task_id="upload", coupon_series_id=series, source=path,
                                customer_identifier="MOBILE", customer_identifier_column=0, poll_interval=1)
start = time.perf_counter()
summary = operator.execute({"ti": ti})
print(json.dumps({"seconds": time.perf_counter() - start, "uploads": len(summary["job_ids"])}))
"""

NAIVE = """
import json, os, sys, time
import airflow.sdk  # a PythonOperator runs in a worker that has imported Airflow
import requests

path, series = sys.argv[1], sys.argv[2]
url = json.loads(os.environ["AIRFLOW_CONN_CAPILLARY_DEFAULT"])["host"]

def upload_coupons():
    token = requests.post(f"{url}/v3/oauth/token/generate", json={"key": "key", "secret": "secret"}, timeout=60)
    token = token.json()["data"]["accessToken"]
    with open(path, "rb") as handle:
        response = requests.post(
            f"{url}/coupon/api/v1/upload/file/{series}",
            files={"file": (os.path.basename(path), handle, "text/csv")},
            data={"customerIdentifier": "MOBILE", "customerIdentifierColumn": "0"},
            headers={"X-CAP-API-OAUTH-TOKEN": token},
            timeout=600,
        )
    response.raise_for_status()
    return response.json()

start = time.perf_counter()
upload_coupons()
print(json.dumps({"seconds": time.perf_counter() - start, "uploads": 1}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40_000_000, help="rows of 26 bytes (40M: about 1.04 GB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated file")
    args = parser.parse_args()
    path = coupon_file(bench_dir(args.path), args.rows)
    contenders = {"operator": OPERATOR, "naive": NAIVE}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    series = 200
    with discard_server() as url:
        env = connection_env(url)
        for _ in range(args.repeat):
            for name, code in contenders.items():
                series += 1
                before = server_stats(url)["body_bytes"]
                result = run_child(code, [str(path), str(series)], env)
                received = server_stats(url)["body_bytes"] - before
                if received < path.stat().st_size:
                    raise RuntimeError(f"{name}: the server received {received} bytes, less than the file")
                results[name].append(result)
    size = path.stat().st_size
    print(f"{path.name}: {size / 1e6:,.0f} MB, {args.repeat} alternating runs each, python {sys.version.split()[0]}")
    print(f"{'':9} {'uploads':>8} {'best s':>7} {'MB/s':>6} {'peak RSS MiB':>13}   seconds of each run")
    best, peak = {}, {}
    for name, runs in results.items():
        best[name] = min(run["seconds"] for run in runs)
        peak[name] = max(run["peak_rss_mib"] for run in runs)
        each = " ".join(f"{run['seconds']:.2f}" for run in runs)
        print(
            f"{name:9} {int(runs[0]['uploads']):8} {best[name]:7.2f} {size / 1e6 / best[name]:6,.0f} "
            f"{peak[name]:13.0f}   {each}"
        )
    print(f"time operator / naive: {best['operator'] / best['naive']:.2f}x (best-of-{args.repeat})")
    ratio = peak["operator"] / peak["naive"]
    print(f"peak memory operator / naive: {ratio:.3f}x (the naive task needs {1 / ratio:.1f}x the memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
