"""Background validation of uploaded CSV files: one worker thread, one job at a time, in upload order.

Codes known per series live in a SQLite file in the data dir (see codes.py), so memory stays flat
however many rows are uploaded.
"""

from __future__ import annotations

import concurrent.futures
import csv
import logging
import queue
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from capillary_provider.sandbox.codes import CodeStore, KnownCode, SeriesCounters
from capillary_provider.sandbox.identifiers import IDENTIFIER_CHECKS, IDENTIFIER_TYPES
from capillary_provider.sandbox.redeem import RedeemJob, RedeemRows

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from capillary_provider.sandbox.state import Job

__all__ = ["IDENTIFIER_TYPES", "CsvWorker", "UnparseableFile"]

log = logging.getLogger(__name__)

MAX_CODE_LENGTH = 20
_Task = tuple["Callable[[CodeStore], Any]", "concurrent.futures.Future[Any]"]


class UnparseableFile(Exception):
    """The file cannot be read as a UTF-8 CSV with a header row."""


class CsvWorker:
    """Validates jobs' files in a daemon thread and records counts and result files on the job.

    Seeding and listing a series' codes run in the same thread, in queue order (:meth:`run_task`).
    """

    def __init__(self, data_dir: Path, existing_codes: frozenset[str]) -> None:
        self._data_dir = data_dir
        self._existing = existing_codes
        self.counters = SeriesCounters()
        self._queue: queue.Queue[Job | _Task | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="capillary-sandbox-csv", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def run_task(self, task: Callable[[CodeStore], Any]) -> concurrent.futures.Future[Any]:
        """Run ``task(store)`` in the worker thread after the jobs already queued; its result as a future."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((task, future))
        return future

    def seed(
        self, series: int, seeds: list[tuple[str, str | None]], customer_type: str | None
    ) -> concurrent.futures.Future[list[KnownCode]]:
        """Make ``(code, customer or None)`` known in the series (after the jobs already queued)."""

        def seed(store: CodeStore) -> list[KnownCode]:
            known: list[tuple[KnownCode, bool]] = []
            store.db.execute("BEGIN")
            try:
                for code, customer in seeds:
                    known.append(store.seed(series, code, customer_type if customer else None, customer))
            except BaseException:
                store.db.execute("ROLLBACK")
                raise
            store.db.execute("COMMIT")
            for (_, customer), (_, created) in zip(seeds, known, strict=True):
                if created:
                    issued = {"numIssued" if customer else "numUploadedNonIssued": 1}
                    self.counters.add(series, numUploadedTotal=1, **issued)
            return [added for added, _ in known]

        return self.run_task(seed)

    def clear_codes(self) -> None:
        """Forget all known codes and counters (the store is cleared before the next job is processed)."""
        self.counters.clear()

        def clear(store: CodeStore) -> None:
            store.clear()
            self.counters.clear()

        self.run_task(clear)

    def _run(self) -> None:
        store = CodeStore(self._data_dir / "coupons.sqlite3")
        while True:
            item = self._queue.get()
            if item is None:
                store.close()
                return
            if isinstance(item, tuple):
                task, future = item
                try:
                    future.set_result(task(store))
                except Exception as exc:
                    future.set_exception(exc)
                continue
            if item.cancelled:
                continue
            try:
                self._process(store, item)
            except Exception:  # never let one bad file kill the worker
                log.exception("Sandbox failed to process job %s", item.job_id)
                item.parse_error = "internal sandbox error"
                item.parsed_at = time.time()

    def _process(self, store: CodeStore, job: Job) -> None:
        errors_path = self._data_dir / "errors" / f"{job.job_id}_errors.csv"
        success_path = self._data_dir / "success" / f"{job.job_id}_success.csv"
        errors_path.parent.mkdir(parents=True, exist_ok=True)
        success_path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(job, RedeemJob):
            check: Callable[[list[str]], str | None] = RedeemRows(job, store, self._existing).problem
        else:
            check = _CouponRows(job, store, self._existing).problem
        store.db.execute("BEGIN")
        committed = False
        try:
            actual, errors = _validate(job, errors_path, success_path, check)
            keep = not (job.cancelled or job.force_errored)
            store.db.execute("COMMIT" if keep else "ROLLBACK")
            committed = True
            if keep:
                self._count(job, actual - errors)
        except UnparseableFile as exc:
            job.parse_error = str(exc)
            actual = errors = 0
        finally:
            if not committed:
                store.db.execute("ROLLBACK")
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

    def _count(self, job: Job, accepted: int) -> None:
        if isinstance(job, RedeemJob):
            self.counters.add(job.series_id, numRedeemed=accepted)
        elif job.identifier == "NOT_TAGGED":
            self.counters.add(job.series_id, numUploadedTotal=accepted, numUploadedNonIssued=accepted)
        else:
            self.counters.add(job.series_id, numUploadedTotal=accepted, numIssued=accepted)


def _validate(
    job: Job, errors_path: Path, success_path: Path, check: Callable[[list[str]], str | None]
) -> tuple[int, int]:
    """Check every row after the header; write the error and success files; ``(rows, errors)``."""
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
                problem = check(row)
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


def _anything(value: str) -> bool:
    return True


class _CouponRows:
    """Checks one row of a coupon upload; accepted codes are added to the series (in the job's transaction)."""

    def __init__(self, job: Job, store: CodeStore, existing: frozenset[str]) -> None:
        self._series = job.series_id
        self._store = store
        self._existing = existing
        tagged = job.identifier != "NOT_TAGGED"
        self._id_type = job.identifier if tagged else None
        self._id_col = (job.identifier_column or 0) if tagged else None
        self._code_col = 1 if self._id_col == 0 else 0
        self._id_ok = IDENTIFIER_CHECKS.get(job.identifier, _anything)

    def problem(self, row: list[str]) -> str | None:
        code = row[self._code_col].strip() if self._code_col < len(row) else ""
        if not code:
            return "coupon code is empty"
        if len(code) > MAX_CODE_LENGTH:
            return f"coupon code is longer than {MAX_CODE_LENGTH} characters"
        identifier: str | None = None
        if self._id_col is not None:
            identifier = row[self._id_col].strip() if self._id_col < len(row) else ""
            if not self._id_ok(identifier):
                return f"invalid customer identifier {identifier!r}"
        if code in self._existing:
            return "coupon code already exists in the series"
        if not self._store.add(self._series, code, self._id_type, identifier):
            return "coupon code already exists in the series"
        return None
