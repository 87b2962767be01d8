"""Redeemed-coupon uploads: the job, the form's fields (``uploadHeaders`` and friends) and the row checks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from capillary_provider.sandbox.identifiers import IDENTIFIER_CHECKS
from capillary_provider.sandbox.state import Job, JobKind

if TYPE_CHECKING:
    from capillary_provider.sandbox.codes import CodeStore, KnownCode

REDEEM_STAGES = ("QUEUED", "COMPLETED")
CUSTOMER_KEYS = {"MOBILE": "mobile", "EXTERNAL_ID": "externalId", "EMAIL": "email", "USER_ID": "userId"}
COUPON_KEYS = {"COUPON_CODE": "couponCode", "COUPON_ID": "couponId"}
REQUIRED_KEYS = ("redeemedDateInMillis", "redeemedAt")
OPTIONAL_KEYS = ("billId", "billNumber", "details")
KNOWN_KEYS = frozenset({*CUSTOMER_KEYS.values(), *COUPON_KEYS.values(), *REQUIRED_KEYS, *OPTIONAL_KEYS})
MIN_MILLIS = 10**12  # 2001-09-09: a 10-digit value is epoch seconds, not milliseconds
MAX_MILLIS = 10**13
INVALID_INPUT = "Incorrect or invalid input"


@dataclass
class RedeemJob(Job):
    """A redeemed-coupon upload job: ``QUEUED`` until validated and one step has passed, then ``COMPLETED``."""

    kind: ClassVar[JobKind] = "redeemed"
    jobs_key: ClassVar[str] = "redeemUploadJobStatuses"
    stages: ClassVar[tuple[str, ...]] = REDEEM_STAGES

    coupon_identifier: str = "COUPON_CODE"
    upload_headers: dict[str, int] = field(default_factory=dict)
    upload_headers_raw: str = ""
    details: str | None = None

    def view(self, now: float, step_seconds: float, *, as_created: bool = False) -> dict[str, Any]:
        """The job as Capillary shows it in ``redeemUploadJobStatuses``."""
        status, updated, done = self.progress(now, step_seconds, as_created=as_created)
        return {"jobId": self.job_id, "uploadRedeemedCouponStatus": status, **self._common_view(updated, done)}

    def control_view(self, now: float, step_seconds: float) -> dict[str, Any]:
        return {
            **self.view(now, step_seconds),
            **self._internals(),
            "couponIdentifier": self.coupon_identifier,
            "uploadHeaders": self.upload_headers,
            "uploadHeadersRaw": self.upload_headers_raw,
            "details": self.details,
        }


@dataclass(frozen=True)
class RedeemForm:
    customer_identifier: str
    coupon_identifier: str
    headers: dict[str, int]
    headers_raw: str
    details: str | None


def parse_redeem_form(fields: dict[str, str]) -> RedeemForm | str:
    """The validated fields, or the message of the 400 answer."""
    customer = fields.get("customerIdentifier", "").strip()
    if not customer:
        return f"{INVALID_INPUT}: customerIdentifier is required"
    if customer not in CUSTOMER_KEYS:
        allowed = ", ".join(sorted(CUSTOMER_KEYS))
        return f"{INVALID_INPUT}: customerIdentifier must be one of {allowed}, got {customer!r}"
    coupon = fields.get("couponIdentifier", "").strip()
    if not coupon:
        return f"{INVALID_INPUT}: couponIdentifier is required"
    if coupon not in COUPON_KEYS:
        return f"{INVALID_INPUT}: couponIdentifier must be one of {', '.join(sorted(COUPON_KEYS))}, got {coupon!r}"
    raw = fields.get("uploadHeaders")
    if raw is None or not raw.strip():
        return f"{INVALID_INPUT}: uploadHeaders is required"
    headers = _parse_headers(raw, CUSTOMER_KEYS[customer], COUPON_KEYS[coupon])
    if isinstance(headers, str):
        return f"{INVALID_INPUT}: uploadHeaders {headers}"
    return RedeemForm(customer, coupon, headers, raw, fields.get("Details"))


def _parse_headers(raw: str, customer_key: str, coupon_key: str) -> dict[str, int] | str:
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return f"is not JSON: {raw[:80]!r}"
    if not isinstance(value, dict):
        return "must be a JSON object of column key -> zero-based column index"
    unknown = sorted(set(value) - KNOWN_KEYS)
    if unknown:
        return f"has unknown keys {unknown}; known keys are {sorted(KNOWN_KEYS)}"
    for key, index in value.items():
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return f"{key!r} must be a zero-based column index (an integer), got {index!r}"
    missing = [key for key in (customer_key, coupon_key, *REQUIRED_KEYS) if key not in value]
    if missing:
        return f"lacks required keys {missing}"
    columns = list(value.values())
    if len(set(columns)) != len(columns):
        return "maps two keys to the same column"
    return dict(value)


_DIGITS = re.compile(r"[0-9]+")


def _normal_customer(customer_type: str, value: str) -> str:
    if customer_type == "MOBILE":
        return value.removeprefix("+")
    if customer_type == "EMAIL":
        return value.lower()
    return value


class RedeemRows:
    """Checks one redemption row against the form of its job and the codes the series knows."""

    def __init__(self, job: RedeemJob, store: CodeStore, existing: frozenset[str]) -> None:
        self._job = job
        self._store = store
        self._existing = existing
        self._customer_key = CUSTOMER_KEYS[job.identifier]
        self._coupon_key = COUPON_KEYS[job.coupon_identifier]
        self._customer_ok = IDENTIFIER_CHECKS[job.identifier]

    def _cell(self, row: list[str], key: str) -> str | None:
        index = self._job.upload_headers[key]
        return row[index].strip() if index < len(row) else None

    def problem(self, row: list[str]) -> str | None:
        for key in (self._customer_key, self._coupon_key, *REQUIRED_KEYS):
            if self._cell(row, key) is None:
                return f"row has no column {self._job.upload_headers[key]} ({key})"
        customer = self._cell(row, self._customer_key) or ""
        coupon = self._cell(row, self._coupon_key) or ""
        millis = self._cell(row, "redeemedDateInMillis") or ""
        if not coupon:
            return f"{self._coupon_key} is empty"
        if not self._customer_ok(customer):
            return f"invalid customer identifier {customer!r}"
        if not _DIGITS.fullmatch(millis):
            return f"redeemedDateInMillis is not a number: {millis!r}"
        if not MIN_MILLIS <= int(millis) < MAX_MILLIS:
            return f"redeemedDateInMillis is not epoch milliseconds: {millis!r}"
        if not self._cell(row, "redeemedAt"):
            return "redeemedAt is empty"
        known = self._lookup(coupon)
        if known is None:
            if self._coupon_key == "couponCode" and coupon in self._existing:
                return None  # --existing-codes: in every series, customer unknown
            what = "coupon code" if self._coupon_key == "couponCode" else "coupon id"
            return f"{what} {coupon!r} does not exist in the series"
        if (
            known.customer_type == self._job.identifier
            and known.customer is not None
            and _normal_customer(known.customer_type, known.customer) != _normal_customer(known.customer_type, customer)
        ):
            return f"coupon {coupon!r} was issued to another customer"
        return None

    def _lookup(self, coupon: str) -> KnownCode | None:
        series = self._job.series_id
        if self._coupon_key == "couponCode":
            return self._store.by_code(series, coupon)
        return self._store.by_id(series, int(coupon)) if _DIGITS.fullmatch(coupon) and len(coupon) <= 18 else None
