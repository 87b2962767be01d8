"""Peak memory of a CouponUploadOperator run on a PGP-encrypted file, side by side with the plain CSV.

Run: ``python benchmarks/bench_pgp_memory.py [--rows 40000000] [--small-rows 1000] [--path DIR]``
(40 million rows: a 1 GB CSV; it is encrypted without compression, ``-z 0``, so the encrypted file is 1 GB too).

A throw-away GnuPG home holds a fresh ed25519/cv25519 key pair with a passphrase; the files are
encrypted with ``gpg`` as a partner would. Each run is one child process executing the operator
(``wait_for_completion=False``) against the local discard server, as ``bench_operator_memory.py``
does; the encrypted runs read the key from a ``pgp_conn_id`` connection. Printed per file: its size,
the peak RSS of the run (``ru_maxrss`` from ``os.wait4``: the largest of the Python process and the
processes it ran and waited for, ``gpg`` included) and the Python process's own peak (``VmHWM``). No
assertion: compare the rows (flat memory is the same peak for a small and a large file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import VM_HWM, bench_dir, connection_env, coupon_file, discard_server, run_child, server_stats

PASSPHRASE = "bench passphrase"

CHILD = (
    VM_HWM
    + """
import json, sys, time
from types import SimpleNamespace
from capillary_provider.operators.coupon_upload import CouponUploadOperator

path, series = sys.argv[1], sys.argv[2]
ti = SimpleNamespace(dag_id="bench", task_id="upload", run_id="run", map_index=-1, try_number=1,
                     xcom_push=lambda key, value: None)
operator = CouponUploadOperator(task_id="upload", coupon_series_id=series, source=path,
                                customer_identifier="MOBILE", customer_identifier_column=0,
                                wait_for_completion=False, pgp_conn_id="bench_pgp")
start = time.perf_counter()
summary = operator.execute({"ti": ti})
print(json.dumps({"seconds": time.perf_counter() - start, "batches": len(summary["job_ids"]),
                  "python_peak_mib": vm_hwm_mib()}))
"""
)


def gpg(home: str, *args: str) -> str:
    command = ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", *args]
    return subprocess.run(command, check=True, capture_output=True).stdout.decode()


def key_pair(home: str) -> tuple[str, str]:
    """(fingerprint, armored private key) of a new ed25519 key with a cv25519 encryption subkey."""
    gpg(home, "--passphrase", PASSPHRASE, "--quick-gen-key", "Bench <bench@example.com>", "ed25519", "sign", "0")
    fingerprint = next(r.split(":")[9] for r in gpg(home, "--with-colons", "--list-keys").splitlines() if "fpr" in r)
    gpg(home, "--passphrase", PASSPHRASE, "--quick-add-key", fingerprint, "cv25519", "encr", "0")
    return fingerprint, gpg(home, "--passphrase", PASSPHRASE, "--armor", "--export-secret-keys", fingerprint)


def encrypted(home: str, fingerprint: str, plain: Path) -> Path:
    target = plain.with_name(plain.name + ".pgp")
    if not target.exists():
        gpg(home, "--trust-model", "always", "-z", "0", "-r", fingerprint, "-o", str(target), "-e", str(plain))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated files")
    args = parser.parse_args()
    directory = bench_dir(args.path)
    with tempfile.TemporaryDirectory(prefix="gnupg-", dir="/tmp") as home:
        fingerprint, private_key = key_pair(home)
        plain = [coupon_file(directory, args.small_rows), coupon_file(directory, args.rows)]
        files = [*plain, *(encrypted(home, fingerprint, path) for path in plain)]
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
    print(f"python {sys.version.split()[0]}")
    print(f"{'file':>32} {'MB':>7} {'batches':>8} {'seconds':>8} {'peak RSS MiB':>13} {'Python VmHWM':>13}")
    series = 100
    with discard_server() as url:
        env = connection_env(url)
        conn = {"conn_type": "generic", "password": PASSPHRASE, "extra": {"private_key": private_key}}
        env["AIRFLOW_CONN_BENCH_PGP"] = json.dumps(conn)
        for path in files:
            series += 1
            before = server_stats(url)["uploads"]
            result = run_child(CHILD, [str(path), str(series)], env)
            if server_stats(url)["uploads"] - before != result["batches"]:
                raise RuntimeError(f"{path.name}: not every batch reached the server")
            print(
                f"{path.name:>32} {path.stat().st_size / 1e6:7,.0f} {int(result['batches']):8} "
                f"{result['seconds']:8.1f} {result['peak_rss_mib']:13.1f} {result['python_peak_mib']:13.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
