"""The header row: its cells, the delimiter hint, and what no header cell can be (a customer's identifier).

No header cell is a valid MOBILE, USER_ID or EMAIL value, so a row 1 holding one is data: the checks
that refuse to guess (:mod:`capillary_provider.coupon_file.first_row`, the column contract of
:class:`~capillary_provider.coupon_file.rows.CouponRows`) ask :func:`looks_like_data`.
"""

from __future__ import annotations

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.records import split_records, unquote
from capillary_provider.identifiers import ID_PATTERNS, IdentifierType

DATA_LIKE = (IdentifierType.MOBILE, IdentifierType.USER_ID, IdentifierType.EMAIL)
"""The identifier types whose valid values no header cell is."""


def looks_like_data(cell: str) -> bool:
    """Whether ``cell`` is a valid MOBILE, USER_ID or EMAIL value: a customer's, not a column name."""
    return any(ID_PATTERNS[kind].fullmatch(cell.strip()) for kind in DATA_LIKE)


def shown_cells(cells: list[str], prefix: str = "") -> str:
    """``cells`` of row 1 joined (after ``prefix``) for an error message, unless one is a customer's value.

    Errors reach the task log, and a row 1 that is data holds a phone number or an email address:
    personal data never goes to logs, so such a row is described, never quoted.
    """
    if any(looks_like_data(cell) for cell in cells):
        return "row 1 looks like data: if the file has no header row, also set has_header=False"
    return prefix + ", ".join(cells)


def parse_header(name: str, line: bytes) -> tuple[list[str], str]:
    """The header row's cells, and a hint when its delimiter looks wrong (empty if not)."""
    if b"\x00" in line:
        raise fail(name, "row 1 contains NUL bytes: is this a CSV of coupon codes?")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(name, "row 1 is not valid UTF-8 text. Save the file as UTF-8.") from exc
    ((_, raw),) = list(split_records(line, 1, name, final=True))
    header = [unquote(f).decode("utf-8") for f in raw]
    return header, delimiter_hint(header, text)


_NAMED = ((";", ";"), ("\t", "tab"), ("|", "|"))


def delimiter_hint(header: list[str], text: str) -> str:
    """The fix when row 1 is one column holding another delimiter (naming ``has_header=False`` too when the
    cells it splits into look like data: a header-less export read with the wrong delimiter)."""
    if len(header) != 1:
        return ""
    for char, named in _NAMED:
        if char in text:
            cells = text.rstrip("\r\n").split(char)
            data = any(looks_like_data(cell.strip().strip('"')) for cell in cells)
            extra = " and has_header=False (row 1 looks like data)" if data else ""
            seen = "a tab" if named == "tab" else repr(char)
            return (
                f' The delimiter looks wrong: row 1 has 1 column but contains {seen}; set delimiter="{named}"{extra}.'
            )
    return ""
