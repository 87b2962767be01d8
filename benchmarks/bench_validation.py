"""Rows per second of :func:`scan_file` (coupon rules) against a plain ``csv.reader`` loop over the same file.

Run: ``python benchmarks/bench_validation.py [--rows N] [--repeat R] [--path DIR] [--only TEXT]``. Each case
writes a file, then alternates the two readers ``--repeat`` times and keeps each one's best time.
Rows per second and the ratio are wall-clock; the CPU ratio (``time.process_time``) is the same
comparison in CPU seconds, which other processes on a busy machine disturb much less.
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

from capillary_provider.coupon_file import CouponRows, scan_file
from capillary_provider.identifiers import IdentifierType

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_DOMAINS = ("example.com", "mail.example.co.in", "shop.example.org")


def make_identifier(kind: str, i: int, variable: bool, rng: random.Random) -> str:
    if kind == "EMAIL":
        return f"customer.{i}@{rng.choice(_DOMAINS)}"
    if kind == "USER_ID":
        return str(1 + i * 7919 % 10**9)
    return f"+91{9_000_000_000 + i}" if variable and i % 3 == 0 else f"91{9_000_000_000 + i}"


def write_file(path: Path, rows: int, *, columns: int, eol: str, variable: bool, kind: str = "MOBILE") -> None:
    """Write ``rows`` coupon rows: ``identifier,code`` (or ``code`` when ``columns == 1``)."""
    rng = random.Random(7)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write((f"{kind.lower()},code" if columns == 2 else "code") + eol)
        lines = []
        for i in range(rows):
            size = rng.randint(6, 16) if variable else 12
            code = "".join(rng.choices(_ALPHABET, k=size))
            lines.append(f"{make_identifier(kind, i, variable, rng)},{code}{eol}" if columns == 2 else f"{code}{eol}")
            if len(lines) == 100_000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


def swap_columns(path: Path) -> None:
    """Rewrite a two-column file as ``code,identifier``."""
    data = path.read_bytes()
    eol = b"\r\n" if b"\r\n" in data[:200] else b"\n"
    lines = data.split(eol)[:-1]
    path.write_bytes(b"".join(b",".join(line.split(b",")[::-1]) + eol for line in lines))


def time_csv_reader(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of a plain ``csv.reader`` loop over the file."""
    start, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as raw:
        for _row in csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            pass
    return time.perf_counter() - start, time.process_time() - cpu


def time_scan(path: Path, identifier: str, column: int | None) -> tuple[float, float]:
    """Wall and CPU seconds of :func:`scan_file` with the coupon rules (validation and batch planning)."""
    start, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as raw:
        scan_file(raw, name=path.name, rules=CouponRows(IdentifierType(identifier), column))
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", type=Path, default=None, help="directory for the generated files")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    args = parser.parse_args()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cases = [
        ("MOBILE,code LF", 2, "\n", False, "MOBILE", 0),
        ("MOBILE,code CRLF", 2, "\r\n", False, "MOBILE", 0),
        ("code only LF (NOT_TAGGED)", 1, "\n", False, "NOT_TAGGED", None),
        ("code only LF, variable width", 1, "\n", True, "NOT_TAGGED", None),
        ("MOBILE,code LF, variable width", 2, "\n", True, "MOBILE", 0),
        ("MOBILE,code CRLF, variable width", 2, "\r\n", True, "MOBILE", 0),
        ("code,MOBILE LF, variable width", -2, "\n", True, "MOBILE", 1),
        ("EMAIL,code LF, variable width", 2, "\n", True, "EMAIL", 0),
        ("USER_ID,code LF, variable width", 2, "\n", True, "USER_ID", 0),
    ]
    cases = [case for case in cases if args.only in case[0]]
    with tempfile.TemporaryDirectory(dir=args.path) as tmp:
        print(f"{args.rows:,} rows, best of {args.repeat}, python {sys.version.split()[0]}")
        header = (
            f"{'case':32} {'MB':>6} {'csv.reader rows/s':>18} {'scan rows/s':>12} {'ratio':>6} {'CPU ratio':>9} "
            f"{'peak MiB':>9}"
        )
        print(header)
        print("-" * len(header))
        for label, columns, eol, variable, identifier, column in cases:
            path = Path(tmp) / "coupons.csv"
            write_file(path, args.rows, columns=abs(columns), eol=eol, variable=variable, kind=identifier)
            if columns < 0:  # the identifier in the last column
                swap_columns(path)
            baseline = ours = baseline_cpu = ours_cpu = float("inf")
            for _ in range(args.repeat):
                wall, cpu = time_csv_reader(path)
                baseline, baseline_cpu = min(baseline, wall), min(baseline_cpu, cpu)
                wall, cpu = time_scan(path, identifier, column)
                ours, ours_cpu = min(ours, wall), min(ours_cpu, cpu)
            tracemalloc.start()
            time_scan(path, identifier, column)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            size = path.stat().st_size / 1e6
            print(
                f"{label:32} {size:6.0f} {args.rows / baseline:18,.0f} {args.rows / ours:12,.0f} "
                f"{baseline / ours:5.1f}x {baseline_cpu / ours_cpu:8.1f}x {peak:9.1f}"
            )
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"max RSS growth over the whole run: {growth:.0f} MiB (includes generating the files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
