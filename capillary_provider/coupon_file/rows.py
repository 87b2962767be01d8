"""Row checks: what a valid header and a valid row of each upload kind's CSV hold, with the fix for each problem.

The scan (:mod:`capillary_provider.coupon_file.scan`) is the same for every kind; it asks a
:class:`RowRules` what the header must hold, which rows the whole-block fast checks may prove
(:attr:`RowRules.spec`), and what is wrong with a row it looks at one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from capillary_provider.coupon_file.columns import mapped_columns, projected_map, unmapped_columns
from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.fast import BlockSpec
from capillary_provider.coupon_file.header import shown_cells
from capillary_provider.exceptions import CouponFileError
from capillary_provider.identifiers import ID_FIXES, ID_PATTERNS, CouponIdentifier, IdentifierType

EXAMPLES = 10
"""Row numbers quoted per kind of problem; the rest are counted."""


class Problems:
    """Collects row-level problems of each kind over the whole file (count + first examples)."""

    def __init__(self, name: str, keep_rows: bool = False, row_offset: int = 0) -> None:
        self.name, self.row_offset = name, row_offset
        self.kinds: dict[str, tuple[str, str, list[int], list[str]]] = {}
        self.keep_rows = keep_rows
        self.bad_rows: dict[int, str] = {}
        """With ``keep_rows``: every bad row's number and its first problem (for skipping them)."""

    def add(self, key: str, what: str, fix: str, row: int, example: str | None = None) -> None:
        """Count one row with problem ``key``: ``what`` is wrong, ``fix`` says what to do."""
        if self.keep_rows:
            self.bad_rows.setdefault(row, what)
        entry = self.kinds.setdefault(key, (what, fix, [0], []))
        entry[2][0] += 1
        if len(entry[3]) < EXAMPLES:
            entry[3].append(example or str(row - self.row_offset))

    def raise_if_any(self) -> None:
        messages = []
        for what, fix, count, examples in self.kinds.values():
            n = count[0]
            more = f" and {n - len(examples):,} more" if n > len(examples) else ""
            rows = f"{'rows' if n > 1 else 'row'} {', '.join(examples)}{more}"
            verb = f"{n:,} rows have" if n > 1 else "1 row has"
            messages.append(f"{self.name}: {verb} {what}: {rows}. {fix}")
        if messages:
            raise CouponFileError("\n".join(messages))


Describe = Callable[[int], str]
"""Names a 0-based column for a message: ``column 2 ("mobile")``."""


class RowRules(Protocol):
    """What one upload kind requires of its CSV."""

    def bind(self, name: str, header: list[str], hint: str) -> BlockSpec | None:
        """Check the header; return the shape the fast checks may prove (None: every row one by one)."""
        ...

    def check(self, fields: list[str], row: int, problems: Problems, column: Describe) -> None:
        """Add the problems of one row that has the header's number of fields."""
        ...


@dataclass(frozen=True)
class CouponRows:
    """A coupon upload: one coupon code per row, and the customer identifier in ``column`` (if tagged).

    :param identifier: the customer identifier type.
    :param column: 0-based identifier column; ``None`` for ``NOT_TAGGED``. The code is the other column
        (the first one that is not the identifier's).
    """

    identifier: IdentifierType
    column: int | None

    @property
    def code_column(self) -> int:
        return 1 if self.column == 0 else 0

    def check_arguments(self, name: str) -> None:
        if self.identifier == IdentifierType.NOT_TAGGED and self.column is not None:
            raise fail(name, "customer_identifier_column must be None for NOT_TAGGED (the file holds only codes).")
        if self.identifier != IdentifierType.NOT_TAGGED and self.column is None:
            raise fail(
                name, f"pass customer_identifier_column (0-based) to say which column holds the {self.identifier}."
            )
        if self.column is not None and self.column < 0:
            raise fail(name, f"customer_identifier_column must be 0 or more, not {self.column}.")

    def bind(self, name: str, header: list[str], hint: str) -> BlockSpec:
        self.check_arguments(name)
        if self.column is not None and self.column >= len(header):
            raise fail(
                name,
                f"customer_identifier_column {self.column} is out of range: the header has {len(header)} "
                f"column(s) (0-based indexes 0 to {len(header) - 1}).{hint}",
            )
        if self.identifier != IdentifierType.NOT_TAGGED and len(header) < 2:
            raise fail(name, f"needs 2 columns (a {self.identifier} and a coupon code) but has 1.{hint}")
        self.check_width(name, header)
        return BlockSpec(len(header), self.code_column, self.column, self.identifier)

    def check_width(self, name: str, header: list[str]) -> None:
        """Capillary takes the identifier and code columns only (the code alone for NOT_TAGGED): fail for more."""
        wanted = 1 if self.column is None else 2
        if len(header) <= wanted:
            return
        takes = "a coupon code column only" if wanted == 1 else f"a {self.identifier} column and a coupon code column"
        raise fail(
            name,
            f"has {len(header)} columns ({shown_cells(header, 'header: ')}) but Capillary takes {takes}. "
            "Set coupon_code_column=N (0-based) to upload only those columns.",
        )

    def check(self, fields: list[str], row: int, problems: Problems, column: Describe) -> None:
        code = fields[self.code_column]
        if not code.strip():
            problems.add(
                "code",
                f"an empty coupon code in {column(self.code_column)}",
                "Remove those rows or fill in a code.",
                row,
            )
        if "\n" in code or "\r" in code:
            problems.add(
                "line_break",
                f"a coupon code containing a line break in {column(self.code_column)}",
                "A coupon code is one line: remove the line breaks inside the quoted codes.",
                row,
            )
        if self.column is not None and not ID_PATTERNS[self.identifier].fullmatch(fields[self.column]):
            problems.add(
                "id",
                f"an invalid {self.identifier} identifier in {column(self.column)}",
                f"{ID_FIXES[self.identifier]}: fix or remove those rows, or check customer_identifier_column "
                "and customer_identifier.",
                row,
            )


CUSTOMER_KEYS: dict[IdentifierType, str] = {
    IdentifierType.MOBILE: "mobile",
    IdentifierType.EMAIL: "email",
    IdentifierType.EXTERNAL_ID: "externalId",
    IdentifierType.USER_ID: "userId",
}
"""The ``uploadHeaders`` key of each customer identifier of a redemption file."""
COUPON_KEYS: dict[CouponIdentifier, str] = {
    CouponIdentifier.COUPON_CODE: "couponCode",
    CouponIdentifier.COUPON_ID: "couponId",
}
DATE_KEY = "redeemedDateInMillis"
TILL_KEY = "redeemedAt"
OPTIONAL_KEYS = ("billId", "billNumber", "details")
REDEMPTION_KEYS = (*CUSTOMER_KEYS.values(), *COUPON_KEYS.values(), DATE_KEY, TILL_KEY, *OPTIONAL_KEYS)
"""Every column key Capillary's ``uploadHeaders`` knows."""
_MILLIS = re.compile(r"[0-9]{11,13}")


def header_key(cell: str) -> str | None:
    """The ``uploadHeaders`` key a header cell names: ``couponCode``, ``coupon_code``, ``Coupon Code`` and the
    docs' labels (``redeemed date in millis``) all name theirs; None for a cell that names no key."""
    wanted = re.sub(r"[\s_\-]+", "", cell).lower()
    return next((key for key in REDEMPTION_KEYS if key.lower() == wanted), None)


class RedeemedRows:
    """A redeemed-coupon upload: the columns named by ``uploadHeaders``, from the header row or given.

    :param identifier: the customer identifier type (not ``NOT_TAGGED``).
    :param coupon: whether rows name coupons by code or by id.
    :param upload_headers: column key to 0-based column; None to read the map from the header row, which
        must then map every column. After :meth:`bind`, :attr:`headers` holds the map to send.
    :param projected: whether the file bound is the source cut down to :func:`mapped_columns` of
        ``upload_headers`` (what the operator uploads): the map sent then points into that copy.
    """

    def __init__(
        self,
        identifier: IdentifierType,
        coupon: CouponIdentifier,
        upload_headers: Mapping[str, int] | None,
        projected: bool = False,
    ) -> None:
        self.identifier, self.coupon = identifier, coupon
        self.given = dict(upload_headers) if upload_headers is not None else None
        self.kept = mapped_columns(self.given) if projected and self.given else None
        self.headers: dict[str, int] = {}

    @property
    def required(self) -> tuple[str, ...]:
        return CUSTOMER_KEYS[self.identifier], COUPON_KEYS[self.coupon], DATE_KEY, TILL_KEY

    def bind(self, name: str, header: list[str], hint: str) -> None:
        if self.given is None:
            headers: dict[str, int] = {}
            for index, cell in enumerate(header):
                key = header_key(cell)
                if key is not None and key not in headers:
                    headers[key] = index
            source = f"the header row ({shown_cells(header)})"
        else:
            headers = self.given
            unknown = sorted(set(headers) - set(REDEMPTION_KEYS))
            if unknown:
                raise fail(
                    name, f"upload_headers has unknown keys {unknown}: the keys are {', '.join(REDEMPTION_KEYS)}."
                )
            if self.kept is not None:
                headers = projected_map(name, headers, header, self.kept, hint)
            bad = {key: col for key, col in headers.items() if not isinstance(col, int) or not 0 <= col < len(header)}
            if bad:
                raise fail(
                    name,
                    f"upload_headers points outside the file's {len(header)} columns: {bad} (0-based indexes "
                    f"0 to {len(header) - 1}).{hint}",
                )
            source = "upload_headers"
        missing = [key for key in self.required if key not in headers]
        if missing:
            expected = "; ".join(f"{key} (or '{_label(key)}')" for key in missing)
            raise fail(
                name,
                f"no column for {', '.join(missing)} in {source}. Name the columns {expected} in the header "
                f"row, or pass upload_headers={{key: column}}.{hint}",
            )
        if self.given is None:
            unmapped_columns(name, header, headers, hint)
        self.headers = dict(headers)

    def check(self, fields: list[str], row: int, problems: Problems, column: Describe) -> None:
        date_col = self.headers[DATE_KEY]
        date = fields[date_col].strip()
        if date.isdigit() and len(date) <= 10:
            problems.add(
                "seconds",
                f"a redemption date that looks like seconds, not milliseconds, in {column(date_col)}",
                "Multiply epoch seconds by 1000: redeemedDateInMillis is in milliseconds.",
                row,
            )
        elif not _MILLIS.fullmatch(date):  # matches digits only: also the check for text that is not a number
            problems.add(
                "date",
                f"a redemption date that is not epoch milliseconds in {column(date_col)}",
                "Give redeemedDateInMillis as epoch milliseconds, e.g. 1764547200000.",
                row,
            )
        till_col = self.headers[TILL_KEY]
        if not fields[till_col].strip():
            problems.add("till", f"an empty redeemedAt (till) in {column(till_col)}", "Fill in the till id.", row)
        for kind, key in ((self.identifier, CUSTOMER_KEYS[self.identifier]), (self.coupon, COUPON_KEYS[self.coupon])):
            col = self.headers[key]
            if not ID_PATTERNS[kind].fullmatch(fields[col].strip()):
                problems.add(
                    f"id:{key}",
                    f"an invalid {kind} in {column(col)}",
                    f"{ID_FIXES[kind]}: fix or remove those rows.",
                    row,
                )


def _label(key: str) -> str:
    """``redeemedDateInMillis`` -> ``redeemed date in millis``, the docs' label of a key."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", key).lower()
