"""The whole-block fast checks of ``coupon_file.fast``: taken for valid variable-width files, never wrong.

``valid_block_lines`` may only say "certainly valid" (then no row is checked one by one) or "look row
by row". These tests pin both halves: valid blocks of every identifier type and column position
take the fast path, and no mutated block that a plain per-row reference check rejects is ever
accepted by it; end to end, ``scan_file`` with the coupon rules fails exactly when the reference finds a bad row.
"""

from __future__ import annotations

import csv
import io
import random
import re

import pytest

from capillary_provider.coupon_file import CouponRows, scan_file
from capillary_provider.coupon_file.fast import BlockSpec, suspect_lines, valid_block_lines
from capillary_provider.exceptions import CouponFileError
from capillary_provider.identifiers import IdentifierType

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERENCE = {
    "MOBILE": re.compile(r"\+?[0-9]{8,15}"),
    "EMAIL": re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+"),
    "USER_ID": re.compile(r"[0-9]+"),
    "EXTERNAL_ID": re.compile(r"(?s).*\S.*"),
}
# (identifier type, columns, identifier column); the code is the first other column.
LAYOUTS = [
    ("MOBILE", 2, 0),
    ("MOBILE", 2, 1),
    ("MOBILE", 3, 1),
    ("MOBILE", 3, 2),
    ("EMAIL", 2, 0),
    ("EMAIL", 2, 1),
    ("EMAIL", 3, 1),
    ("EMAIL", 3, 2),
    ("USER_ID", 2, 0),
    ("USER_ID", 2, 1),
    ("EXTERNAL_ID", 2, 0),
]
MUTATIONS = ["", "+", "@", ".", ",", " ", "\x1c", "\r", "0", "x", "++", "@@", "..", "\r\n", "\n", ".,", "@.", ",@"]


def identifier(kind: str, rng: random.Random) -> str:
    if kind == "MOBILE":
        return "+" * rng.randint(0, 1) + "".join(rng.choices("0123456789", k=rng.randint(8, 15)))
    if kind == "EMAIL":
        return f"{rng.choice(['a', 'first.last', 'x_1'])}@{rng.choice(['ex.com', 'a.b.c', 'm-x.co.in', '.a.b'])}"
    if kind == "USER_ID":
        return str(rng.randint(0, 10**12))
    return "".join(rng.choices(ALPHABET + "-_", k=rng.randint(1, 20)))


def make_block(kind: str, columns: int, id_column: int, rows: int, eol: str, rng: random.Random) -> str:
    lines = []
    for _ in range(rows):
        fields = ["".join(rng.choices(ALPHABET, k=rng.randint(1, 16))) for _ in range(columns)]
        fields[id_column] = identifier(kind, rng)
        lines.append(",".join(fields) + eol)
    return "".join(lines)


def spec_of(kind: str, columns: int, id_column: int) -> BlockSpec:
    return BlockSpec(columns, 1 if id_column == 0 else 0, id_column, kind)


def reference_valid(text: str, spec: BlockSpec) -> bool:
    """Row by row with the csv module: column count, non-empty code, identifier format (if any)."""
    if not text.endswith("\n") or "\r" in text.replace("\r\n", ""):
        return False
    for row in csv.reader(io.StringIO(text, newline="")):
        if len(row) != spec.columns or not row[spec.code_column].strip():
            return False
        if spec.id_column is not None and not REFERENCE[spec.id_type].fullmatch(row[spec.id_column]):
            return False
    return True


@pytest.mark.parametrize(("kind", "columns", "id_column"), LAYOUTS)
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_valid_variable_width_blocks_take_the_fast_path(kind: str, columns: int, id_column: int, eol: str) -> None:
    blk = make_block(kind, columns, id_column, 500, eol, random.Random(1)).encode()
    assert valid_block_lines(blk, spec_of(kind, columns, id_column)) == blk.count(b"\n")


@pytest.mark.parametrize(("kind", "columns", "id_column"), LAYOUTS)
def test_fast_path_never_accepts_a_block_with_a_bad_row(kind: str, columns: int, id_column: int) -> None:
    rng = random.Random(f"{kind}{columns}{id_column}")
    spec = spec_of(kind, columns, id_column)
    accepted_bad = []
    for _ in range(400):
        text = make_block(kind, columns, id_column, 6, rng.choice(["\n", "\r\n"]), rng)
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(MUTATIONS) + text[at + rng.randint(0, 2) :]
        if not text.endswith("\n"):
            continue  # blocks always end with a line ending
        blk = text.encode()
        if valid_block_lines(blk, spec) == blk.count(b"\n") and not reference_valid(text, spec):
            accepted_bad.append(text)
    assert accepted_bad == []


# A coupon scan sees two columns (identifier and code): a wider file is projected first (coupon_code_column)
# or refused whole (tests/test_first_row.py), so the row-by-row agreement is checked on the two-column layouts.
SCANNED_LAYOUTS = [layout for layout in LAYOUTS if layout[1] == 2]


@pytest.mark.parametrize(("eol", "seed"), [("\n", "scan"), ("\r\n", "crlf")])
@pytest.mark.parametrize(("kind", "columns", "id_column"), SCANNED_LAYOUTS)
def test_scan_fails_exactly_when_a_row_is_bad(kind: str, columns: int, id_column: int, eol: str, seed: str) -> None:
    rng = random.Random(f"{seed}{kind}{columns}{id_column}")
    spec = spec_of(kind, columns, id_column)
    header = ",".join(f"c{col}" for col in range(columns)) + eol
    disagreements = []
    for _ in range(150):
        text = make_block(kind, columns, id_column, 40, eol, rng)
        at = rng.randrange(len(text) - len(eol))
        text = text[:at] + rng.choice(MUTATIONS) + text[at + rng.randint(0, 2) :]
        if not text.endswith("\n") or text.endswith(("\n\n", "\n" + eol)) or '"' in text:
            continue
        try:
            scan_file(
                io.BytesIO((header + text).encode()), name="c.csv", rules=CouponRows(IdentifierType(kind), id_column)
            )
            scanned_valid = True
        except CouponFileError:
            scanned_valid = False
        if scanned_valid != reference_valid(text, spec):
            disagreements.append(text)
    assert disagreements == []


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_email_blocks_with_at_signs_in_codes_take_the_fast_path(eol: str) -> None:
    rng = random.Random(3)
    lines = [f"{identifier('EMAIL', rng)},{rng.choice(['AB@C', 'X1', '@@', 'Q.@'])}{eol}" for _ in range(300)]
    blk = "".join(lines).encode()
    assert valid_block_lines(blk, spec_of("EMAIL", 2, 0)) == blk.count(b"\n")


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_fixed_width_email_blocks_take_the_fast_path(eol: str) -> None:
    blk = "".join(f"user{i:04d}@shop.example.in,CODE{i:05d}{eol}" for i in range(300)).encode()
    assert valid_block_lines(blk, spec_of("EMAIL", 2, 0)) == blk.count(b"\n")


@pytest.mark.parametrize(("kind", "columns", "id_column"), LAYOUTS)
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("line", [0, 7, 49])
def test_fast_path_rejects_a_block_with_one_empty_code(
    kind: str, columns: int, id_column: int, eol: str, line: int
) -> None:
    spec = spec_of(kind, columns, id_column)
    lines = make_block(kind, columns, id_column, 50, eol, random.Random(5)).splitlines(keepends=True)
    fields = lines[line].removesuffix(eol).split(",")
    fields[spec.code_column] = ""
    lines[line] = ",".join(fields) + eol
    blk = "".join(lines).encode()
    assert valid_block_lines(blk, spec) != blk.count(b"\n")


# Blocks with exactly one kind of defect that one particular check of the fast path exists to see (found
# by mutation testing: each case fails when its check is loosened). spec: columns, code, identifier, type.
MOBILE_CODE_FIRST = BlockSpec(2, 0, 1, "MOBILE")
ONE_DEFECT = {
    "fixed: a letter in a mobile's second digit": (b"C000,9112345678\nC001,9a12345678\n", MOBILE_CODE_FIRST),
    "fixed: a letter where other rows have the '+'": (b"C0,+12345678\nC1,a12345678\n", MOBILE_CODE_FIRST),
    "fixed: 16 digits beside a signed 15": (b"C0,+123456789012345\nC1,1234567890123456\n", MOBILE_CODE_FIRST),
    "fixed: a bare CR inside a code": (b"C01,9112345678\r\nC\r1,9112345678\r\n", MOBILE_CODE_FIRST),
    "fixed: a comma one place off": (b"AB,91123456789\nA,B91123456789\n", MOBILE_CODE_FIRST),
    "fixed: no identifier at all": (b"ABCD,\nEFGH,\n", MOBILE_CODE_FIRST),
    "variable: the last row's last field": (b"C1,x,9112345678\nC223,y,12345678x\n", BlockSpec(3, 0, 2, "MOBILE")),
    "variable: a dotless domain, a dot in the code": (b"a@b,C.D,x\na@b.c,C1,x\n", BlockSpec(3, 1, 0, "EMAIL")),
    "variable: a last-column email ending in a dot": (
        b"x,C1,a@b.co\r\nx,C22,a@b.\r\n",
        BlockSpec(3, 1, 2, "EMAIL"),
    ),
    "variable: an empty code in the first row": (b",E1\nC22,E2\n", BlockSpec(2, 0, 1, "EXTERNAL_ID")),
    "variable: an empty code in a middle row": (b"C1,E1\n,E22\nC3,E3\n", BlockSpec(2, 0, 1, "EXTERNAL_ID")),
    "variable: an empty external id": (b"C1,E1\nC22,\n", BlockSpec(2, 0, 1, "EXTERNAL_ID")),
    "variable: an email ending in its dot, an @ in a code": (b"C@1,a@b.\nC22,a@b.co\n", BlockSpec(2, 0, 1, "EMAIL")),
    "fixed: an empty code in every row": (b",12345678\n,87654321\n", MOBILE_CODE_FIRST),
    "variable: an email without a local part, an @ in a code": (b"C@1,@b.c\nC22,a@b.co\n", BlockSpec(2, 0, 1, "EMAIL")),
}


@pytest.mark.parametrize(("blk", "spec"), ONE_DEFECT.values(), ids=ONE_DEFECT.keys())
def test_fast_path_sees_each_single_defect(blk: bytes, spec: BlockSpec) -> None:
    assert not reference_valid(blk.decode(), spec)
    assert valid_block_lines(blk, spec) is None


# Every ASCII byte but CR and LF that str.strip removes, as the row check does: taken from str, not from fast.py.
STRIPPED = [chr(b) for b in range(128) if chr(b).isspace() and chr(b) not in "\r\n"]


@pytest.mark.parametrize("space", STRIPPED, ids=lambda ch: f"0x{ord(ch):02x}")
def test_fast_path_never_accepts_a_code_of_only_whitespace(space: str) -> None:
    blk = f"{space},12345678\nC2,12345678\n".encode()
    assert not reference_valid(blk.decode(), MOBILE_CODE_FIRST)
    assert valid_block_lines(blk, MOBILE_CODE_FIRST) is None


def test_fast_path_leaves_a_nul_byte_to_the_row_check() -> None:
    # csv reads a NUL as any other character; the row check refuses it ("row 2 contains NUL bytes").
    assert valid_block_lines(b"C1,12345678\nC\x002,12345678\n", MOBILE_CODE_FIRST) is None


def test_suspect_lines_include_a_line_whose_code_is_only_a_space() -> None:
    blk = b"C1,12345678\n ,12345678\n"
    assert not reference_valid(blk.decode(), MOBILE_CODE_FIRST)
    assert (12, 23) in suspect_lines(blk, MOBILE_CODE_FIRST)


def test_suspect_lines_include_a_line_with_an_empty_user_id() -> None:
    spec = BlockSpec(2, 0, 1, "USER_ID")
    blk = b"C1,12\nC2,\n"
    assert not reference_valid(blk.decode(), spec)
    assert (6, 10) in suspect_lines(blk, spec)
