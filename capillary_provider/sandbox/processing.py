"""Background validation of uploaded CSV files: one worker thread, one job at a time, in upload order.

Codes already accepted per series live in a SQLite file in the data dir, so memory stays flat
however many rows are uploaded.
"""

from __future__ import annotations

import csv
import logging
import queue
import re
import sqlite3
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from capillary_provider.sandbox.state import Job

log = logging.getLogger(__name__)

MAX_CODE_LENGTH = 20
_IDENTIFIER_CHECKS: dict[str, Callable[[str], bool]] = {
    "MOBILE": lambda v: re.fullmatch(r"\+?\d{8,15}", v) is not None,
    "EMAIL": lambda v: re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", v) is not None,
    "USER_ID": lambda v: re.fullmatch(r"\d+", v) is not None,
    "EXTERNAL_ID": lambda v: bool(v),
}
IDENTIFIER_TYPES = frozenset({*_IDENTIFIER_CHECKS, "NOT_TAGGED"})


class UnparseableFile(Exception):
    """The file cannot be read as a UTF-8 CSV with a header row."""


class CsvWorker:
    """Validates jobs' files in a daemon thread and records counts and result files on the job."""

    def __init__(self, data_dir: Path, existing_codes: frozenset[str]) -> None:
        self._data_dir = data_dir
        self._existing = existing_codes
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._clear_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capillary-sandbox-csv", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def clear_codes(self) -> None:
        """Forget all accepted codes (applied before the next job is processed)."""
        self._clear_requested.set()

    def _run(self) -> None:
        db = sqlite3.connect(self._data_dir / "codes.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE IF NOT EXISTS codes (series INTEGER, code TEXT, PRIMARY KEY (series, code)) WITHOUT ROWID"
        )
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._clear_requested.is_set():
                self._clear_requested.clear()
                db.execute("DELETE FROM codes")
            if job.cancelled:
                continue
            try:
                self._process(db, job)
            except Exception:  # never let one bad file kill the worker
                log.exception("Sandbox failed to process job %s", job.job_id)
                job.parse_error = "internal sandbox error"
                job.parsed_at = time.time()

    def _process(self, db: sqlite3.Connection, job: Job) -> None:
        errors_path = self._data_dir / "errors" / f"{job.job_id}_errors.csv"
        success_path = self._data_dir / "success" / f"{job.job_id}_success.csv"
        errors_path.parent.mkdir(parents=True, exist_ok=True)
        success_path.parent.mkdir(parents=True, exist_ok=True)
        db.execute("BEGIN")
        committed = False
        try:
            actual, errors = self._validate(db, job, errors_path, success_path)
            if job.cancelled or job.force_errored:
                db.execute("ROLLBACK")
            else:
                db.execute("COMMIT")
            committed = True
        except UnparseableFile as exc:
            job.parse_error = str(exc)
            actual = errors = 0
        finally:
            if not committed:
                db.execute("ROLLBACK")
        if errors:
            job.error_file_url = f"sandbox/errors/{errors_path.name}"
        else:
            errors_path.unlink(missing_ok=True)
        if actual - errors > 0:
            job.success_file_url = f"sandbox/success/{success_path.name}"
        else:
            success_path.unlink(missing_ok=True)
        job.actual_rows, job.error_rows, job.accepted_rows = actual, errors, actual - errors
        job.parsed_at = time.time()

    def _validate(self, db: sqlite3.Connection, job: Job, errors_path: Path, success_path: Path) -> tuple[int, int]:
        tagged = job.identifier != "NOT_TAGGED"
        id_col = (job.identifier_column or 0) if tagged else None
        code_col = 1 if id_col == 0 else 0
        id_ok = _IDENTIFIER_CHECKS.get(job.identifier, lambda v: True)
        actual = errors = 0
        try:
            with ExitStack() as stack:
                source = stack.enter_context(job.disk_path.open(encoding="utf-8", newline=""))
                err_out = csv.writer(stack.enter_context(errors_path.open("w", encoding="utf-8", newline="")))
                ok_out = csv.writer(stack.enter_context(success_path.open("w", encoding="utf-8", newline="")))
                reader = csv.reader(source)
                header = next(reader, None)
                if not header or not any(cell.strip() for cell in header):
                    raise UnparseableFile("the file has no header row")
                err_out.writerow([*header, "error"])
                ok_out.writerow(header)
                for row in reader:
                    if not row:
                        continue
                    if actual % 10_000 == 0 and job.cancelled:
                        break
                    actual += 1
                    problem = self._row_problem(db, job.series_id, row, id_col, code_col, id_ok)
                    if problem:
                        errors += 1
                        err_out.writerow([*row, problem])
                    else:
                        ok_out.writerow(row)
        except UnicodeDecodeError as exc:
            raise UnparseableFile(f"the file is not UTF-8: {exc}") from exc
        except csv.Error as exc:
            raise UnparseableFile(f"the file is not a readable CSV: {exc}") from exc
        return actual, errors

    def _row_problem(
        self,
        db: sqlite3.Connection,
        series: int,
        row: list[str],
        id_col: int | None,
        code_col: int,
        id_ok: Callable[[str], bool],
    ) -> str | None:
        code = row[code_col].strip() if code_col < len(row) else ""
        if not code:
            return "coupon code is empty"
        if len(code) > MAX_CODE_LENGTH:
            return f"coupon code is longer than {MAX_CODE_LENGTH} characters"
        if id_col is not None:
            identifier = row[id_col].strip() if id_col < len(row) else ""
            if not id_ok(identifier):
                return f"invalid customer identifier {identifier!r}"
        if code in self._existing:
            return "coupon code already exists in the series"
        cursor = db.execute("INSERT OR IGNORE INTO codes (series, code) VALUES (?, ?)", (series, code))
        if cursor.rowcount == 0:
            return "coupon code already exists in the series"
        return None
