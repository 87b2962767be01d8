"""What the file features cost next to plain validation and a plain ``csv.reader`` loop, same rows.

Cases (each on ``--rows`` MOBILE,code rows): plain validation; validation of an export with 1% invalid
rows under ``invalid_rows="skip"`` (scan, set the rows aside, plan the rest); a ``;``-delimited
export with two extra columns converted on the fly (normalize, then validate); the same without
header row. Each prints rows per second and its CPU time as a ratio to the ``csv.reader`` loop
(higher is faster), best of ``--repeat``.

    .venv/bin/python benchmarks/bench_file_features.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from capillary_provider.coupon_file import CouponRows, open_coupon_source, scan_file
from capillary_provider.coupon_file.normalize import normalize
from capillary_provider.coupon_file.rejects import split_rejected
from capillary_provider.identifiers import IdentifierType

RULES = CouponRows(IdentifierType.MOBILE, 0)


def write(path: Path, rows: int, *, sep: str = ",", extra: bool = False, header: bool = True, bad: int = 0) -> None:
    with path.open("w") as out:
        if header:
            out.write(sep.join(["mobile", "code", "name", "amount"] if extra else ["mobile", "code"]) + "\n")
        for i in range(rows):
            mobile = "12" if bad and i % bad == 0 else f"91{9_000_000_000 + i}"
            cells = [mobile, f"C{i:011d}"] + (["Ann Bo", "10.50"] if extra else [])
            out.write(sep.join(cells) + "\n")


def csv_reader(path: Path) -> None:
    """The reference: read every row with the csv module, in the file's delimiter."""
    with path.open(newline="") as handle:
        for row in csv.reader(handle, delimiter=";" if path.name.startswith("semi") else ","):
            _ = row[0], row[1]


def validate(path: Path) -> None:
    with path.open("rb") as stream:
        scan_file(stream, name=path.name, rules=RULES)


def skip(path: Path) -> None:
    with path.open("rb") as stream:
        plan = scan_file(stream, name=path.name, rules=RULES, skip_invalid=True)
    kept, rejects = path.with_suffix(".kept"), path.with_suffix(".rej")
    with path.open("rb") as stream, kept.open("wb") as k, rejects.open("wb") as r:
        split_rejected(stream, name=path.name, header=plan.header, rejected=plan.rejected, kept=k, rejects=r)
    with kept.open("rb") as stream:
        scan_file(stream, name=path.name, rules=RULES, validate=False)


def converted(header: bool) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        out = path.with_suffix(".norm")
        with open_coupon_source(path) as stream, out.open("wb") as target:
            normalize(
                stream,
                target,
                name=path.name,
                delimiter=";",
                columns=[0, 1],
                header_for=None if header else (lambda n: ["mobile", "coupon code"]),
            )
        validate(out)

    return run


def best(function: Callable[[Path], None], path: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function(path)
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    files = {
        "plain": work / "plain.csv",
        "skip 1%": work / "bad.csv",
        "; + extra columns": work / "semi.csv",
        "; + extra, no header": work / "semi-noheader.csv",
    }
    write(files["plain"], args.rows)
    write(files["skip 1%"], args.rows, bad=100)
    write(files["; + extra columns"], args.rows, sep=";", extra=True)
    write(files["; + extra, no header"], args.rows, sep=";", extra=True, header=False)
    cases: dict[str, Callable[[Path], None]] = {
        "plain": validate,
        "skip 1%": skip,
        "; + extra columns": converted(header=True),
        "; + extra, no header": converted(header=False),
    }
    print(f"{args.rows:,} rows, CPU seconds best of {args.repeat}; ratio = csv.reader CPU / ours (higher is faster)")
    print(f"{'case':<22} {'ours s':>8} {'csv.reader s':>13} {'rows/s':>12} {'ratio':>7}")
    for label, function in cases.items():
        ours, reference = best(function, files[label], args.repeat), best(csv_reader, files[label], args.repeat)
        print(f"{label:<22} {ours:>8.2f} {reference:>13.2f} {args.rows / ours:>12,.0f} {reference / ours:>6.2f}x")


if __name__ == "__main__":
    main()
