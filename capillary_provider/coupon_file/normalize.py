"""Real exports into the CSV Capillary expects: another delimiter, no header row, extra columns.

:func:`normalize` streams the source through :mod:`csv` once and writes a comma-separated copy with
the header row Capillary expects (the file's own, or the one given) and only the columns that go up.
The copy is what is validated and uploaded, so the checks and the batches see exactly what Capillary
receives. Memory stays flat: one row at a time.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from capillary_provider.coupon_file.rows import fail
from capillary_provider.coupon_file.sources import ReadOnce, open_coupon_source

DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
"""The delimiters accepted (``"tab"`` names the tab)."""


def delimiter_of(value: str) -> str:
    """The delimiter ``value`` names; :class:`ValueError` naming the accepted ones otherwise."""
    if value not in DELIMITERS:
        raise ValueError(f"delimiter must be one of ',', ';', 'tab' (or a tab), '|', not {value!r}")
    return DELIMITERS[value]


def normalize(
    stream: BinaryIO,
    out: BinaryIO,
    *,
    name: str,
    delimiter: str = ",",
    header_for: Callable[[int], Sequence[str]] | None = None,
    columns: Sequence[int] | None = None,
) -> int:
    """Copy a CSV to ``out`` comma-separated, with a header row, keeping only ``columns`` (in file order).

    :param stream: the (decompressed) source, read once from its start.
    :param delimiter: the source's field delimiter.
    :param header_for: for a source without header row: the header to write, given the number of
        columns that go up (the first row is then data); None when the first row is the header.
    :param columns: 0-based columns of the source to keep; None keeps every column. A row too short
        for them keeps what it has, so the validation names it.
    :return: the number of data rows written.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    writer_buffer = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(writer_buffer, lineterminator="\n")
    rows = csv.reader(text, delimiter=delimiter, strict=True)
    written = 0
    try:
        for row in rows:
            if columns is not None:
                row = [row[index] for index in columns if index < len(row)]
            if written == 0 and header_for is not None:
                writer.writerow(list(header_for(len(row))))
                written += 1
            writer.writerow(row)
            written += 1
    except UnicodeDecodeError as exc:
        raise fail(name, f"is not valid UTF-8 text near byte {exc.start}. Save the file as UTF-8.") from exc
    except csv.Error as exc:
        raise fail(name, f"row {rows.line_num} cannot be read as CSV ({exc}). Check the delimiter and quotes.") from exc
    finally:
        writer_buffer.detach()
        text.detach()
    return max(0, written - 1)


def normalized_copy(path: Any, *, name: str, spool_dir: str | None = None, **options: Any) -> ReadOnce:
    """:func:`normalize` the source into a local file and return it as the source to validate and upload.

    The source is read from its store once; the local copy (deleted when the returned source is
    closed) is what Capillary receives. ``options`` are :func:`normalize`'s.
    """
    handle, local = tempfile.mkstemp(prefix="capillary-normalized-", suffix=".csv", dir=spool_dir)
    try:
        with open_coupon_source(path, name) as stream, os.fdopen(handle, "wb") as out:
            normalize(stream, out, name=name, **options)
    except BaseException:
        os.unlink(local)
        raise
    return ReadOnce(Path(local), name=name, owns_file=True)
