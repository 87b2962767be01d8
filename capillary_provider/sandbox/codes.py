"""The coupon codes the sandbox knows per series (SQLite), and per-series counters for the series read.

A code becomes known when a coupon upload accepts it, or when a test seeds it
(``POST /_sandbox/series/{id}/codes``). Each known code gets a sandbox coupon id (for redemptions by
``COUPON_ID``) and remembers the customer it was issued to, when the upload named one.

Only the CSV worker thread touches the SQLite connection; the counters are read from any thread.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class KnownCode:
    """A code of a series: its coupon id and, when known, the customer it was issued to."""

    code: str
    coupon_id: int
    customer_type: str | None
    customer: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "couponId": self.coupon_id,
            "customerIdentifier": self.customer_type,
            "customer": self.customer,
        }


_COLUMNS = "code, coupon_id, customer_type, customer"


class SeriesCounters:
    """Thread-safe per-series counts reported by ``GET /v2/coupon/series``."""

    FIELDS = ("numUploadedTotal", "numIssued", "numUploadedNonIssued", "numRedeemed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, dict[str, int]] = {}

    def add(self, series: int, **counts: int) -> None:
        with self._lock:
            current = self._counts.setdefault(series, dict.fromkeys(self.FIELDS, 0))
            for name, value in counts.items():
                current[name] += value

    def of(self, series: int) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.get(series) or dict.fromkeys(self.FIELDS, 0))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class CodeStore:
    """The ``coupons`` table. Create and use it in one thread only (the worker's)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS coupons (series INTEGER, code TEXT, coupon_id INTEGER, customer_type TEXT,"
            " customer TEXT, PRIMARY KEY (series, code)) WITHOUT ROWID"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS coupons_by_id ON coupons (series, coupon_id)")
        row = self.db.execute("SELECT COALESCE(MAX(coupon_id), 0) FROM coupons").fetchone()
        self._next_id = int(row[0]) + 1

    def _new_id(self) -> int:
        coupon_id = self._next_id
        self._next_id += 1
        return coupon_id

    def add(self, series: int, code: str, customer_type: str | None, customer: str | None) -> bool:
        """Insert a new code; False when the series already has it."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO coupons (series, code, coupon_id, customer_type, customer) VALUES (?, ?, ?, ?, ?)",
            (series, code, self._next_id, customer_type, customer),
        )
        if cursor.rowcount == 0:
            return False
        self._next_id += 1
        return True

    def seed(self, series: int, code: str, customer_type: str | None, customer: str | None) -> tuple[KnownCode, bool]:
        """Insert the code, or give an existing one this customer; ``(code, created)``."""
        existing = self.by_code(series, code)
        if existing is None:
            coupon_id = self._new_id()
            self.db.execute(
                "INSERT INTO coupons (series, code, coupon_id, customer_type, customer) VALUES (?, ?, ?, ?, ?)",
                (series, code, coupon_id, customer_type, customer),
            )
            return KnownCode(code, coupon_id, customer_type, customer), True
        self.db.execute(
            "UPDATE coupons SET customer_type = ?, customer = ? WHERE series = ? AND code = ?",
            (customer_type, customer, series, code),
        )
        return KnownCode(code, existing.coupon_id, customer_type, customer), False

    def by_code(self, series: int, code: str) -> KnownCode | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM coupons WHERE series = ? AND code = ?", (series, code)
        ).fetchone()
        return None if row is None else KnownCode(*row)

    def by_id(self, series: int, coupon_id: int) -> KnownCode | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM coupons WHERE series = ? AND coupon_id = ?", (series, coupon_id)
        ).fetchone()
        return None if row is None else KnownCode(*row)

    def of_series(self, series: int) -> list[KnownCode]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM coupons WHERE series = ? ORDER BY coupon_id", (series,))
        return [KnownCode(*row) for row in rows]

    def clear(self) -> None:
        self.db.execute("DELETE FROM coupons")

    def close(self) -> None:
        self.db.close()
