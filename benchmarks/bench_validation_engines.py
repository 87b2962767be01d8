"""Why variable-width validation stops near 3-4x ``csv.reader``: what each engine costs per MiB.

For each variable-width shape of ``bench_validation.py`` this times, on the same 1 MiB block (CPU ms,
best of ``--repeat``):

- ``csv.reader``: the plain loop the issue compares against;
- ``ours``: :func:`~capillary_provider.coupon_file.fast.valid_block_lines` (the scan's fast check);
- ``floor``: the least any Python-level check must do here: count the lines (``bytes.count``) and walk
  them once with the ``re`` engine's fastest loop (``(?:[^\\n]++\\n)*+``), checking nothing;
- ``re2``: one full match of the whole row grammar with ``google-re2`` (a DFA), if it is installed;
- ``pyarrow``: its CSV parser plus a regex kernel on the identifier column, if it is installed.

    .venv/bin/python benchmarks/bench_validation_engines.py
    pip install google-re2 pyarrow   # (in a scratch virtualenv) to see the compiled engines too
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_validation import swap_columns, write_file

from capillary_provider.coupon_file.fast import BlockSpec, valid_block_lines

SHAPES = [  # label, line end, identifier, identifier column
    ("MOBILE,code LF", "\n", "MOBILE", 0),
    ("MOBILE,code CRLF", "\r\n", "MOBILE", 0),
    ("code,MOBILE LF", "\n", "MOBILE", 1),
    ("EMAIL,code LF", "\n", "EMAIL", 0),
    ("USER_ID,code LF", "\n", "USER_ID", 0),
]
_SAFE = rb'[^,\r\n \t\x0b\x0c\x1c-\x1f"\x00\x80-\xff]'
_RE2_IDS = {
    "MOBILE": rb"\+?[0-9]{8,15}",
    "USER_ID": rb"[0-9]+",
    "EMAIL": _SAFE.replace(b"[^", b"[^@") + rb"+@" + _SAFE.replace(b"[^", b"[^@") + rb"+\." + _SAFE + b"+",
}


def best(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times) * 1000


def block_of(label: str, eol: str, identifier: str, column: int, tmp: Path) -> bytes:
    path = tmp / "shape.csv"
    write_file(path, 60_000, columns=2, eol=eol, variable=True, kind=identifier)
    if column == 1:
        swap_columns(path)
    data = path.read_bytes()
    data = data[data.index(b"\n") + 1 :]
    return data[: data.rindex(b"\n", 0, 1 << 20) + 1]


def engines(blk: bytes, eol: str, identifier: str, column: int) -> dict[str, Callable[[], Any]]:
    spec = BlockSpec(2, 1 - column, column, identifier)
    floor = re.compile(rb"(?:[^\n]++\n)*+")

    def csv_reader() -> None:
        for _row in csv.reader(io.TextIOWrapper(io.BytesIO(blk), encoding="utf-8", newline="")):
            pass

    found: dict[str, Callable[[], Any]] = {
        "csv.reader": csv_reader,
        "ours": lambda: valid_block_lines(blk, spec),
        "floor": lambda: (blk.count(b"\n"), floor.fullmatch(blk)),
    }
    end = rb"\r\n" if eol == "\r\n" else rb"\n"
    try:
        import re2

        fields = [_RE2_IDS[identifier], _SAFE + b"+"][:: 1 if column == 0 else -1]
        grammar = re2.compile(b"(?:" + b",".join(fields) + end + b")*")
        found["re2"] = lambda: (blk.count(b"\n"), grammar.fullmatch(blk))
    except ImportError:
        pass
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        pa.set_cpu_count(1)
        names = ["id", "code"] if column == 0 else ["code", "id"]
        options = pa_csv.ReadOptions(use_threads=False, column_names=names)
        convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
        pattern = "^" + _RE2_IDS[identifier].decode() + "$"

        def arrow() -> bool:
            table = pa_csv.read_csv(io.BytesIO(blk), read_options=options, convert_options=convert)
            return bool(pc.all(pc.match_substring_regex(table.column("id"), pattern)).as_py())

        found["pyarrow"] = arrow
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, eol, identifier, column in SHAPES:
            blk = block_of(label, eol, identifier, column, Path(tmp))
            times = {name: best(run, args.repeat) for name, run in engines(blk, eol, identifier, column).items()}
            rows.append((label, times))
    names = list(rows[0][1])
    print("CPU ms per MiB block, best of", args.repeat, "(x = csv.reader / engine; 5x is the issue's goal)")
    print(f"{'shape':18}" + "".join(f"{name:>17}" for name in names))
    for label, times in rows:
        base = times["csv.reader"]
        print(f"{label:18}" + "".join(f"{times[n]:8.2f} ({base / times[n]:4.1f}x)" for n in names))


if __name__ == "__main__":
    main()
