"""A reference for row conservation, built on the :mod:`csv` module alone (no product code).

What the data rows of a source are, what the sandbox stored, what the rejected-rows file holds: the
property test (tests/test_row_conservation.py) and the run through real Airflow
(tests/test_row_conservation_dag.py) compare the provider's work against it.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from pathlib import Path

from capillary_provider.sandbox.testing import SandboxClient


def reference_records(path: Path, delimiter: str) -> list[list[str]]:
    """The records of ``path`` as the csv module reads them, row 1 included.

    Blank lines at the end are no rows; a blank line before a record is one (empty) row: the provider
    refuses it, or sets it aside with ``invalid_rows="skip"``, so it must be accounted for too.
    """
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    while rows and not rows[-1]:
        rows.pop()
    return rows


def rejected_rows(path: Path) -> list[tuple[list[str], int]]:
    """Each row of the rejected-rows file with its source row number (1-based, row 1 counted).

    Its header and last two columns (``row`` and ``reason``) are the provider's; the rest is the row as
    it would have gone up (comma-separated, and only the columns Capillary takes when the upload keeps
    some of them).
    """
    if not path.exists():
        return []
    return [(fields[:-2], int(fields[-2])) for fields in reference_records(path, ",")[1:]]


def stored_rows(sandbox: SandboxClient, series: int) -> tuple[list[list[str]], list[list[str]]]:
    """The headers and the data rows of every batch the sandbox stored (both kinds)."""
    headers, rows = [], []
    for job in sandbox.jobs(series, kind="all"):
        batch = list(csv.reader(io.StringIO(Path(job["storedPath"]).read_text(encoding="utf-8"), newline="")))
        headers.append(batch[0])
        rows += batch[1:]
    return headers, rows


def cells(fields: list[str], columns: list[int]) -> tuple[str, ...]:
    """The row's ``columns``; a blank row (no fields, or one empty field) has empty cells."""
    return tuple(fields[index] if index < len(fields) else "" for index in columns)


def project(rows: list[list[str]], columns: list[int]) -> Counter[tuple[str, ...]]:
    """The rows' ``columns``, counted."""
    return Counter(cells(fields, columns) for fields in rows)
