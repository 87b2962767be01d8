"""Whole-block fast checks: is this block of rows *certainly* valid?

A per-row Python loop costs more than :mod:`csv` itself, so the common case (no quotes, ASCII,
one line ending, every row well formed) is proven valid with whole-chunk operations that run in C:
``bytes.count``, ``bytes.translate``, strided slices, literal searches, and for identifiers of
variable width one regex search per block that can only stop at a bad line. Each function here only
answers *"is this whole block certainly valid?"*. When the answer is "no" the caller re-scans
the block row by row (:mod:`capillary_provider.coupon_file.rows`) to find and name the offending
rows, so a false negative costs time, never correctness. :func:`suspect_lines` narrows that re-scan
to the lines that are not certainly valid, so a few bad rows do not send a whole block row by row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BlockSpec", "suspect_lines", "valid_block_lines"]

_WHITESPACE = (b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
"""ASCII bytes that ``str.strip`` and ``\\s`` treat as whitespace (besides line endings)."""
#: Deleting everything but commas and line endings leaves the "shape" of a block: ``,\n,\n...``.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b",\r\n")
#: The same with ``@`` kept: for EMAIL blocks the shape also proves one ``@`` per line, in the identifier column.
_NOT_STRUCTURE_AT = bytes(b for b in range(256) if b not in b",\r\n@")
#: One identifier field, for blocks already proven to be ASCII without quotes or whitespace (so a field
#: can hold anything but ``,``, CR and LF): the language of :data:`~capillary_provider.identifiers.ID_PATTERNS`
#: on such fields. Plain character sets and possessive quantifiers keep the regex engine on its fastest paths.
_ID_FIELDS = {
    # Possessive: a "+" can only be the sign, and neither field end is a digit (about 10% faster).
    "MOBILE": rb"\+?+[0-9]{8,15}+",
    "USER_ID": rb"[0-9]++",
    # [^@\s,]+ @ [^@\s,]+ \. [^@\s,]+ without backtracking: a domain of 3+ characters with a dot that is
    # neither its first nor its last character.
    "EMAIL": rb"[^@,\r\n]++@[^@,\r\n][^@,.\r\n]*+\.[^@,\r\n]++",
}


@dataclass(frozen=True)
class BlockSpec:
    """What a valid row looks like.

    :param columns: number of fields in every record (the header's).
    :param code_column: 0-based index of the coupon code column.
    :param id_column: 0-based index of the identifier column, ``None`` for ``NOT_TAGGED``.
    :param id_type: one of ``MOBILE``, ``EMAIL``, ``EXTERNAL_ID``, ``USER_ID``, ``NOT_TAGGED``.
    """

    columns: int
    code_column: int
    id_column: int | None
    id_type: str


def valid_block_lines(blk: bytes, spec: BlockSpec) -> int | None:
    """Prove, without a per-row loop, that every line of ``blk`` is a valid record; return how many.

    :param blk: complete lines without any ``"``; it must end with ``\\n``.
    :param spec: the expected shape of a row.
    :return: the number of lines if every one is valid; ``None`` means "re-scan row by row". The
        count comes from the checks themselves, so valid blocks need no separate counting pass.
    """
    if not blk.isascii() or b"\x00" in blk:
        return None
    # Whitespace-only fields count as empty; rather than find them here, send such blocks to the
    # precise path (coupon files rarely contain spaces at all).
    if any(ws in blk for ws in _WHITESPACE):
        return None
    crlf = b"\r" in blk
    width = blk.index(b"\n") + 1
    lines = len(blk) // width
    if width * lines == len(blk) and blk[width - 1 :: width] == b"\n" * lines and blk.count(b"\n") == lines:
        # CR only as the byte before every LF (mixed or bare CRs go to the row-by-row path).
        if crlf and (blk[width - 2 :: width] != b"\r" * lines or blk.count(b"\r") != lines):
            return None
        return lines if _fixed_width_valid(blk, lines, width, crlf, spec) else None
    return _variable_width_lines(blk, crlf, spec)


def _fixed_width_valid(blk: bytes, lines: int, width: int, crlf: bool, spec: BlockSpec) -> bool:
    """Every line has the same length: generated files usually do. Then a column is a strided slice.

    ``blk[p::width]`` holds byte ``p`` of every line, so one comparison proves that every line has a
    comma at ``p``, and ``isdigit`` over the slices of a field proves its characters for all rows.
    """
    first = blk[: width - (2 if crlf else 1)]
    commas = [i for i, ch in enumerate(first) if ch == 44]
    if len(commas) != spec.columns - 1 or blk.count(b",") != lines * len(commas):
        return False
    if any(blk[p::width] != b"," * lines for p in commas):
        return False
    bounds = list(zip([-1, *commas], [*commas, len(first)], strict=True))
    start, end = bounds[spec.code_column]
    if end - start - 1 < 1:
        return False
    if spec.id_column is None:
        return True
    start, end = bounds[spec.id_column]
    start += 1
    size = end - start
    if size < 1:
        return False
    cols = [blk[j::width] for j in range(start, end)]
    if spec.id_type == "USER_ID":
        return all(col.isdigit() for col in cols)
    if spec.id_type == "MOBILE":
        if not all(col.isdigit() for col in cols[1:]):
            return False
        lead = cols[0]
        if b"+" not in lead:
            return lead.isdigit() and 8 <= size <= 15
        unsigned = lead.replace(b"+", b"")
        if not 9 <= size <= 16:
            return False
        return unsigned == b"" or (unsigned.isdigit() and size <= 15)
    if spec.id_type == "EMAIL":
        return _variable_width_lines(blk, crlf, spec) == lines
    return spec.id_type == "EXTERNAL_ID"


_LITERAL_CACHE: dict[bytes, re.Pattern[bytes]] = {}


def _contains(haystack: bytes, needle: bytes) -> bool:
    """``needle in haystack``; a compiled literal regex searches about twice as fast as ``in``."""
    pattern = _LITERAL_CACHE.get(needle)
    if pattern is None:
        pattern = _LITERAL_CACHE[needle] = re.compile(re.escape(needle))
    return pattern.search(haystack) is not None


def _variable_width_lines(blk: bytes, crlf: bool, spec: BlockSpec) -> int | None:
    """Lines of different lengths: check the shape with ``translate``, then the fields.

    Identifiers with a format (MOBILE, USER_ID, EMAIL) are checked with one regex search over the
    block (:func:`_lines_valid`). Otherwise only emptiness matters: prefixing ``\\n`` makes every line
    start after a newline, so "an empty first field" is ``\\n,``, "an empty last field" is ``,\\n``
    (``,\\r\\n``) and so on, found with literal searches.
    """
    eol = b"\r\n" if crlf else b"\n"
    k = spec.columns
    line_shape = b"," * (k - 1) + eol
    # The shape proves the column count of every line (and gives the number of lines). It alone would
    # accept "a,b\rc\n": the regex of _lines_valid proves on the way that every CR is followed by LF,
    # the literal checks below compare the CRLF count with the line count instead.
    if spec.id_type == "EMAIL":
        # Keeping "@" in the same translate also proves "exactly one @ per line, in the identifier
        # column", which lets the regex find the @ and the dots with plain skip loops.
        assert spec.id_column is not None
        shape = blk.translate(None, _NOT_STRUCTURE_AT)
        at_shape = line_shape[: spec.id_column] + b"@" + line_shape[spec.id_column :]
        lines = len(shape) // len(at_shape)
        if shape == at_shape * lines:
            return lines if _lines_valid(blk, crlf, spec, one_at=True) else None
        shape = shape.replace(b"@", b"")
    else:
        shape = blk.translate(None, _NOT_STRUCTURE)
    lines = len(shape) // len(line_shape)
    if shape != line_shape * lines:
        return None
    if spec.id_type in _ID_FIELDS:
        return lines if _lines_valid(blk, crlf, spec, one_at=False) else None
    if crlf and blk.count(b"\r\n") != lines:
        return None
    text = b"\n" + blk
    required = [spec.code_column] + ([spec.id_column] if spec.id_column is not None else [])
    for col in required:
        left, right = (b"\n" if col == 0 else b","), (b"," if col < k - 1 else eol)
        if _contains(text, left + right):
            return None
    return lines


_LINE_CHECKS: dict[tuple[BlockSpec, bool, bool], tuple[re.Pattern[bytes], bytes, int]] = {}


def _lines_valid(blk: bytes, crlf: bool, spec: BlockSpec, one_at: bool) -> bool:
    """One regex search over the whole block for a line whose identifier, code or line ending is wrong.

    The pattern is ``anchor(?!a valid line)``: it stops only where a line does *not* hold valid fields,
    so a valid block costs one search without any match. It relies on what the caller proved: ASCII,
    no quotes, no whitespace, the right number of commas on every line, CR only before LF in the shape
    (and with ``one_at``, exactly one ``@`` per line, in the identifier column).
    """
    key = (spec, crlf, one_at)
    found = _LINE_CHECKS.get(key)
    if found is None:
        pattern, prefix, trim = _line_check(spec, crlf, one_at)
        found = _LINE_CHECKS[key] = (re.compile(pattern), prefix, trim)
    check, prefix, trim = found
    # The prefix puts the first line after a line ending too; the trim drops the block's final "\n".
    return check.search(prefix + blk, 0, len(prefix) + len(blk) - trim) is None


def _line_check(spec: BlockSpec, crlf: bool, one_at: bool) -> tuple[bytes, bytes, int]:
    """The pattern of :func:`_lines_valid`, the prefix for the block and how many bytes to leave off its end.

    Anchors: in a 2-column ``code,identifier`` file every comma starts an identifier (a lookbehind
    catches an empty code); in CRLF blocks every CR must be followed by LF and a valid line, which
    proves "each CR ends a line" on the way; otherwise every LF starts a line. Given the shape,
    ``[^,]*+,`` skips a field: single-byte negated classes run in the engine's tight skip loop, several
    times faster than a class such as ``[^,\\r\\n]``.
    """
    assert spec.id_column is not None
    last = spec.columns - 1
    by_comma = spec.columns == 2 and spec.id_column == 1
    # What ends the last field. by_comma searches the whole block, so every identifier is followed by a
    # line ending; the CR-anchored pattern checks the CR's LF from the CR's own anchor.
    line_end = (rb"\r\n" if crlf else rb"\n") if by_comma else (rb"\r" if crlf else rb"(?:\n|\Z)")
    to_line_end = rb"[^\r]*+\r\n" if by_comma and crlf else b""
    fields = [rb"(?<!\n,)"] if by_comma else []
    for col in range(spec.id_column if by_comma else 0, max(spec.id_column, spec.code_column) + 1):
        field_end = b"," if col < last else line_end
        if col == spec.id_column and spec.id_type == "EMAIL" and one_at:
            # The only @ of the line is in this field: a non-empty local part, then a domain whose
            # first character is not the end of the field, with a dot followed by a non-end character
            # (the greedy skip backtracks to the last dot with one character-comparison loop).
            stop = b"," if col < last else (rb"\r" if crlf else rb"\n")
            domain = b"[^" + stop + b"][^" + stop + rb"]*\.[^" + stop + b"]"
            fields.append(rb"[^@]++@" + domain + (rb"[^,]*+," if col < last else to_line_end))
        elif col == spec.id_column:
            fields.append(_ID_FIELDS[spec.id_type] + field_end)
        elif col == spec.code_column:
            # Non-empty: the shape bounds the field, its first character proves it is not empty.
            # (No LF without CR in CRLF blocks, no CR at all in LF blocks: one byte to exclude.)
            fields.append(rb"[^,]++," if col < last else (rb"[^\r]" if crlf else rb"[^\n]"))
        else:
            fields.append(rb"[^,]*+,")
    body = b"".join(fields)
    if by_comma:
        return rb",(?!" + body + b")", b"\n", 0
    if crlf:
        return rb"\r(?!\n(?:\Z|" + body + b"))", b"\r\n", 0
    return rb"\n(?!" + body + b")", b"\n", 1


_SAFE = rb"[!#-+\--~]"
"""A byte no rule can object to: printable ASCII except space, ``"`` and ``,``."""
_SAFE_NO_AT = rb"[!#-+\--?A-~]"
_LINE_IDS = {
    "MOBILE": rb"\+?[0-9]{8,15}",
    "USER_ID": rb"[0-9]+",
    "EMAIL": _SAFE_NO_AT + rb"+@" + _SAFE_NO_AT + rb"+\." + _SAFE_NO_AT + b"+",
    "EXTERNAL_ID": _SAFE + b"+",
}
"""Each identifier's ``ID_PATTERNS`` language restricted to safe bytes: a subset, never more."""
_SUSPECT_CHECKS: dict[tuple[BlockSpec, bool], re.Pattern[bytes]] = {}


def suspect_lines(blk: bytes, spec: BlockSpec) -> list[tuple[int, int]]:
    """The lines of ``blk`` that are not certainly valid, as ``(start, end)`` offsets (end past the LF).

    One regex search over the block stops only at a line that is not made of exactly the expected
    fields of safe bytes; every other line is valid by every rule, so only the lines returned need the
    row-by-row check. Used on blocks that failed :func:`valid_block_lines` (this search is slower,
    but it turns a block with a few bad rows into a few row checks instead of a whole block of them).

    :param blk: complete lines without any ``"``; it must end with ``\\n``.
    :param spec: the expected shape of a row.
    :return: the suspect lines in order. (In a block without quotes every line is one record: a CR that
        does not end a line is an error of the row check, which names its row.)
    """
    crlf = b"\r" in blk
    check = _SUSPECT_CHECKS.get((spec, crlf))
    if check is None:
        fields = [
            (
                _SAFE + b"+"
                if col == spec.code_column
                else _LINE_IDS[spec.id_type]
                if col == spec.id_column
                else _SAFE + b"*"
            )
            for col in range(spec.columns)
        ]
        line = b",".join(fields) + (rb"\r\n" if crlf else rb"\n")
        check = _SUSPECT_CHECKS[(spec, crlf)] = re.compile(rb"\n(?!" + line + b")")
    text = b"\n" + blk
    spans = []
    for match in check.finditer(text):
        # Offset p of an LF in ``text`` is where the line after it starts in ``blk``; the block's last LF
        # starts no line.
        start = match.start()
        if start == len(blk):
            break
        spans.append((start, blk.index(b"\n", start) + 1))
    return spans
