"""No guessing about the first row: a header row whose identifier cell is a valid customer identifier is data.

No header cell is a valid MOBILE, USER_ID or EMAIL value (nor epoch milliseconds), so a first row whose
identifier cell is one is a customer's row read as the header: uploading would silently drop it. The
messages name the column, never the value: phones and emails are personal data and never go to logs.
"""

from __future__ import annotations

from typing import Any

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.header import DATA_LIKE, looks_like_data, parse_header
from capillary_provider.coupon_file.rows import _MILLIS, DATE_KEY, CouponRows, RedeemedRows, RowRules


def data_like_column(rules: RowRules, header: list[str]) -> int | None:
    """The 0-based column of ``header`` whose cell looks like data for ``rules``; None if none does."""
    columns: list[tuple[int, bool]] = []
    if isinstance(rules, CouponRows) and rules.column is not None and rules.identifier in DATA_LIKE:
        columns.append((rules.column, False))
    elif isinstance(rules, RedeemedRows):
        for key, column in rules.headers.items():
            if key == DATE_KEY:
                columns.append((column, True))
            elif key in ("mobile", "email", "userId"):
                columns.append((column, False))
    for column, millis in columns:
        cell = header[column].strip() if column < len(header) else ""
        if (millis and _MILLIS.fullmatch(cell)) or (not millis and looks_like_data(cell)):
            return column
    return None


def check_first_row(name: str, header_line: bytes, rules: RowRules, has_header: bool | None, log: Any) -> None:
    """Fail (``has_header`` None) or warn (True) when the header row of file ``name`` looks like data.

    :param header_line: the header row as scanned (comma-separated).
    """
    if has_header is False:
        return
    header, _ = parse_header(name, header_line)
    column = data_like_column(rules, header)
    if column is None:
        return
    if has_header:
        log.warning(
            "%s: row 1 looks like data (column %d, 0-based, holds a customer identifier or a date) but is "
            "taken as the header row, since has_header=True: it is not uploaded.",
            name,
            column,
        )
        return
    raise fail(
        name,
        f"row 1 looks like data, not a header row: column {column} (0-based) holds a customer identifier or a "
        "date. "
        "If the file has no header row, set has_header=False; if row 1 is the header, set has_header=True.",
    )
