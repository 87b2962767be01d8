"""Property tests of ``valid_block_lines`` against the csv-module reference, over every fast path.

Generated blocks are fixed width (every line the same length: the strided-slice path) or variable width
(the translate/regex path), LF or CRLF, of each identifier type, with mobiles of the boundary lengths 5,
7, 8, 15 and 16 digits with and without ``+``; some have one byte replaced. The property: the fast check
never says "valid" when the reference finds a bad line; and valid well-formed blocks do take the fast
path, the fixed-width one included (its calls are counted). And ``suspect_lines``, which narrows a
failed block's row-by-row re-check, never leaves out a line the reference finds bad.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capillary_provider.coupon_file.fast as fast
from capillary_provider.coupon_file.fast import BlockSpec, suspect_lines, valid_block_lines
from tests.test_csv_fast import ALPHABET, MUTATIONS, reference_valid

KINDS = ["MOBILE", "EMAIL", "USER_ID", "EXTERNAL_ID", "NOT_TAGGED"]
MOBILE_DIGITS = [5, 7, 8, 15, 16]
EXAMPLES = 100 if os.environ.get("MUTANT_UNDER_TEST") else 400
"""Fewer examples for each of ``make mutation``'s many runs (the checks below still hold at 100, but for the share of
valid blocks on the fast path, a statistic that needs :data:`FAST_PATH_EXAMPLES`)."""
FAST_PATH_EXAMPLES = 400
"""At 100 examples only 61 of 82 valid variable-width blocks took the fast path (under 80 %) on unmutated code:
under mutmut that test then failed for every mutant and counted each as killed."""
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


@st.composite
def blocks(draw: Any, fixed: bool | None = None, kind: str | None = None) -> tuple[bytes, BlockSpec]:
    kind = draw(st.sampled_from(KINDS)) if kind is None else kind
    columns = draw(st.integers(1 if kind == "NOT_TAGGED" else 2, 3))
    id_column = None if kind == "NOT_TAGGED" else draw(st.integers(0, columns - 1))
    code_column = draw(st.sampled_from([c for c in range(columns) if c != id_column]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    rows = draw(st.integers(1, 12))
    fixed = draw(st.booleans()) if fixed is None else fixed
    text_chars, digits = ALPHABET + "-_", "0123456789"

    def word(size: int, chars: str = text_chars) -> str:
        # One string draw, not one draw per character: the same words, several times quicker to generate.
        return draw(st.text(chars, min_size=size, max_size=size))

    def width() -> int:
        return draw(st.integers(1, 8))

    # One length per column for fixed-width blocks, one per field otherwise.
    mobile_digits = draw(st.sampled_from(MOBILE_DIGITS))
    mobile_plus = draw(st.sampled_from([None, True, False]))  # None: some rows signed, the others not
    email_sizes = (width(), width(), width())
    sizes = [width() for _ in range(columns)]

    def identifier() -> str:
        if kind == "MOBILE":
            plus = draw(st.booleans()) if mobile_plus is None else mobile_plus
            n = mobile_digits if not fixed else mobile_digits - (1 if plus and mobile_plus is None else 0)
            return ("+" if plus else "") + word(n if fixed else draw(st.sampled_from([mobile_digits, 8, 15])), digits)
        if kind == "EMAIL":
            local, dom, tld = email_sizes if fixed else (width(), width(), width())
            return f"{word(local)}@{word(dom)}.{word(tld)}"
        if kind == "USER_ID":
            return word(sizes[id_column] if fixed else width(), digits)  # type: ignore[index]
        return word(sizes[id_column] if fixed else width())  # type: ignore[index]

    lines = []
    for _ in range(rows):
        fields = [word(sizes[c] if fixed else width()) for c in range(columns)]
        if id_column is not None:
            fields[id_column] = identifier()
        lines.append(",".join(fields) + eol)
    if draw(st.booleans()):  # one byte of one line replaced: the width stays, the line may turn bad
        at = draw(st.integers(0, rows - 1))
        line = lines[at]
        pos = draw(st.integers(0, len(line) - len(eol) - 1)) if len(line) > len(eol) else 0
        new = draw(st.sampled_from([m for m in MUTATIONS if len(m) == 1] + ["5", "a"]))
        lines[at] = line[:pos] + new + line[pos + 1 :]
    return "".join(lines).encode(), BlockSpec(columns, code_column, id_column, kind)


@pytest.fixture
def fast_path_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the calls of the fixed-width check and of its True answers."""
    calls: Counter[str] = Counter()
    fixed = fast._fixed_width_valid

    def counting(*args: Any) -> bool:
        calls["fixed"] += 1
        answer = fixed(*args)
        calls["fixed-valid"] += answer
        return answer

    monkeypatch.setattr(fast, "_fixed_width_valid", counting)
    return calls


@pytest.mark.slow
def test_fast_check_never_says_valid_when_the_reference_finds_a_bad_line(fast_path_calls: Counter[str]) -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(blocks())
    def check(example: tuple[bytes, BlockSpec]) -> None:
        blk, spec = example
        answer = valid_block_lines(blk, spec)
        valid = reference_valid(blk.decode(), spec)
        seen["valid" if valid else "bad"] += 1
        if answer is not None:
            assert valid, (blk, spec)
            assert answer == blk.count(b"\n")

    check()
    assert seen["bad"] > EXAMPLES // 20, seen  # the property is tested on bad blocks too
    assert fast_path_calls["fixed"] > EXAMPLES // 20, fast_path_calls


@pytest.mark.slow
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-width", "variable-width"])
def test_valid_blocks_usually_take_the_fast_path(fixed: bool, fast_path_calls: Counter[str]) -> None:
    taken: Counter[bool] = Counter()
    kinds: Counter[str] = Counter()

    @settings(SETTINGS, max_examples=FAST_PATH_EXAMPLES)
    @given(blocks(fixed=fixed))
    def check(example: tuple[bytes, BlockSpec]) -> None:
        blk, spec = example
        if not reference_valid(blk.decode(), spec):
            return
        answer = valid_block_lines(blk, spec)
        taken[answer is not None] += 1
        if answer is not None:
            kinds[spec.id_type] += 1

    check()
    assert taken[True] >= 0.8 * (taken[True] + taken[False]), taken
    assert set(kinds) == set(KINDS), kinds  # every identifier type took the fast path
    if fixed:
        assert fast_path_calls["fixed-valid"] > FAST_PATH_EXAMPLES // 8, fast_path_calls


@pytest.mark.parametrize("digits", MOBILE_DIGITS)
@pytest.mark.parametrize("plus", ["", "+"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_fixed_width_mobiles_of_boundary_lengths(
    digits: int, plus: str, eol: str, fast_path_calls: Counter[str]
) -> None:
    blk = "".join(f"C{n:04d},{plus}{str(n).zfill(digits)[-digits:]}{eol}" for n in range(20)).encode()
    spec = BlockSpec(2, 0, 1, "MOBILE")
    answer = valid_block_lines(blk, spec)
    assert fast_path_calls["fixed"] == 1
    assert (answer == 20) == (8 <= digits <= 15)
    assert answer is None or reference_valid(blk.decode(), spec)


def lines_of(blk: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of every LF-terminated line."""
    spans, start = [], 0
    while start < len(blk):
        end = blk.index(b"\n", start) + 1
        spans.append((start, end))
        start = end
    return spans


@pytest.mark.slow
def test_suspect_lines_include_every_line_the_reference_finds_bad() -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(blocks())
    def check(example: tuple[bytes, BlockSpec]) -> None:
        blk, spec = example
        if not blk.endswith(b"\n"):
            return
        suspects = suspect_lines(blk, spec)
        for start, end in lines_of(blk):
            if not reference_valid(blk[start:end].decode(), spec):
                assert (start, end) in suspects, (blk, spec, start)
                seen["bad line"] += 1

    check()
    assert seen["bad line"] > EXAMPLES // 20, seen


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_suspect_lines_of_a_valid_block_are_none_of_its_lines(kind: str) -> None:
    checked: list[bytes] = []

    @SETTINGS
    @given(blocks(kind=kind))
    def check(example: tuple[bytes, BlockSpec]) -> None:
        blk, spec = example
        # Spaces and control bytes (which some replaced bytes are) may be left to the row check: a valid
        # block of printable ASCII has no suspect.
        printable = all(33 <= byte <= 126 or byte in b",\r\n" for byte in blk)
        if printable and reference_valid(blk.decode(), spec):
            assert suspect_lines(blk, spec) == [], (blk, spec)
            checked.append(blk)

    check()
    assert len(checked) > EXAMPLES // 10, len(checked)
