"""The redeemed-coupon column contract: Capillary takes the columns ``uploadHeaders`` maps, and only those.

A map given as ``upload_headers`` is also the choice of columns: the operator uploads a copy holding
only them (as ``coupon_code_column`` does for coupons), and the map sent points into that copy. A map
read from the header row must name every column: a column it leaves out (a cell naming no key, or a
key a column before it already names) fails before sending, rather than going up unmapped.
"""

from __future__ import annotations

from collections.abc import Mapping

from capillary_provider.coupon_file.errors import fail
from capillary_provider.coupon_file.header import shown_cells


def mapped_columns(upload_headers: Mapping[str, int]) -> list[int]:
    """The source columns an ``upload_headers`` map names, in file order: all that goes up."""
    return sorted(set(upload_headers.values()))


def projected_map(name: str, given: Mapping[str, int], header: list[str], kept: list[int], hint: str) -> dict[str, int]:
    """``given`` pointed into the copy of file ``name`` holding only its ``kept`` columns (``header`` is its row 1).

    A source row 1 too short for the map leaves the copy's header short: the keys it cannot hold are
    named with the columns the user gave, not the copy's.
    """
    if len(header) < len(kept):
        missing = set(kept[len(header) :])
        bad = {key: column for key, column in given.items() if column in missing}
        raise fail(
            name,
            f"upload_headers points outside the file's columns: {bad} (row 1 has {len(header)} of the "
            f"{len(kept)} columns upload_headers names).{hint}",
        )
    return {key: kept.index(column) for key, column in given.items()}


def unmapped_columns(name: str, header: list[str], headers: Mapping[str, int], hint: str) -> None:
    """Fail when the map read from the header row leaves columns out: Capillary takes the mapped ones only."""
    unmapped = [index for index in range(len(header)) if index not in headers.values()]
    if not unmapped:
        return
    many = len(unmapped) > 1
    columns = f"column{'s' if many else ''} {', '.join(map(str, unmapped))}"
    cells = shown_cells([header[index] for index in unmapped])
    verb = "name no uploadHeaders key or repeat one" if many else "names no uploadHeaders key or repeats one"
    raise fail(
        name,
        f"has {len(header)} columns but the header row maps {len(header) - len(unmapped)} of them: {columns} "
        f"(0-based; {cells}) {verb}. Capillary takes only the mapped columns: pass upload_headers={{key: column}} "
        f"to upload only those, or name each column by its key.{hint}",
    )
