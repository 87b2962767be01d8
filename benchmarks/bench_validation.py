"""Rows per second of :func:`scan_coupon_file` against a plain ``csv.reader`` loop over the same file.

Run: ``python benchmarks/bench_validation.py [--rows N] [--repeat R] [--path DIR]``. Each case
writes a file, then alternates the two readers ``--repeat`` times and keeps each one's best time.
Peak memory is the tracemalloc peak of one extra scan (Python allocations, which is where a
"slurping" implementation would show up), plus the process's max-RSS growth over the whole run.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from capillary_provider.coupon_csv import scan_coupon_file

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def write_file(path: Path, rows: int, *, columns: int, eol: str, variable: bool) -> None:
    """Write ``rows`` coupon rows: ``mobile,code`` (or ``code`` when ``columns == 1``)."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(("mobile,code" if columns == 2 else "code") + eol)
        lines = []
        for i in range(rows):
            size = rng.randint(6, 16) if variable else 12
            code = "".join(rng.choices(_ALPHABET, k=size))
            mobile = f"+91{9_000_000_000 + i}" if variable and i % 3 == 0 else f"91{9_000_000_000 + i}"
            lines.append(f"{mobile},{code}{eol}" if columns == 2 else f"{code}{eol}")
            if len(lines) == 100_000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


def time_csv_reader(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as raw:
        for _row in csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            pass
    return time.perf_counter() - start


def time_scan(path: Path, identifier: str, column: int | None) -> float:
    start = time.perf_counter()
    with path.open("rb") as raw:
        scan_coupon_file(raw, name=path.name, customer_identifier=identifier, customer_identifier_column=column)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated files")
    args = parser.parse_args()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cases = [
        ("MOBILE,code LF", 2, "\n", False, "MOBILE", 0),
        ("MOBILE,code CRLF", 2, "\r\n", False, "MOBILE", 0),
        ("code only LF (NOT_TAGGED)", 1, "\n", False, "NOT_TAGGED", None),
        ("code only LF, variable width", 1, "\n", True, "NOT_TAGGED", None),
        ("MOBILE,code LF, variable width", 2, "\n", True, "MOBILE", 0),
    ]
    with tempfile.TemporaryDirectory(dir=args.path) as tmp:
        print(f"{args.rows:,} rows, best of {args.repeat}, python {sys.version.split()[0]}")
        header = f"{'case':32} {'MB':>6} {'csv.reader rows/s':>18} {'scan rows/s':>12} {'ratio':>6} {'peak MiB':>9}"
        print(header)
        print("-" * len(header))
        for label, columns, eol, variable, identifier, column in cases:
            path = Path(tmp) / "coupons.csv"
            write_file(path, args.rows, columns=columns, eol=eol, variable=variable)
            baseline, ours = float("inf"), float("inf")
            for _ in range(args.repeat):
                baseline = min(baseline, time_csv_reader(path))
                ours = min(ours, time_scan(path, identifier, column))
            tracemalloc.start()
            time_scan(path, identifier, column)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            size = path.stat().st_size / 1e6
            print(
                f"{label:32} {size:6.0f} {args.rows / baseline:18,.0f} {args.rows / ours:12,.0f} "
                f"{baseline / ours:5.1f}x {peak:9.1f}"
            )
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"max RSS growth over the whole run: {growth:.0f} MiB (includes generating the files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
