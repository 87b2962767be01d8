"""The scan reads in chunks and keeps flat memory: a file 100x the chunk size never sits in memory whole.

``chunk_size`` is small here (16 KiB) so a 100x file stays quick to scan; the bounds are in chunks: the
largest read is one chunk, the peak of new allocations (``tracemalloc``) a few chunks, far below the file.
"""

from __future__ import annotations

import tracemalloc

import pytest

from capillary_provider.coupon_file import CouponRows, scan_file
from capillary_provider.exceptions import CouponFileError
from capillary_provider.identifiers import IdentifierType
from tests.conftest import RecordingFile

CHUNK = 16 * 1024
FILE_CHUNKS = 100


def coupon_bytes(bad_every: int = 0) -> bytes:
    lines = [b"mobile,code\n"]
    size, n = len(lines[0]), 0
    while size < FILE_CHUNKS * CHUNK:
        mobile = b"98" if bad_every and n % bad_every == bad_every - 1 else b"9198%08d" % n
        line = b"%s,C%09d\n" % (mobile, n)
        lines.append(line)
        size += len(line)
        n += 1
    return b"".join(lines)


def scan_measured(data: bytes) -> tuple[RecordingFile, int, object]:
    source = RecordingFile(data)
    tracemalloc.start()
    try:
        try:
            result: object = scan_file(
                source,  # type: ignore[arg-type]
                name="big.csv",
                rules=CouponRows(IdentifierType.MOBILE, 0),
                batch_size=5000,
                chunk_size=CHUNK,
            )
        except CouponFileError as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return source, peak, result


@pytest.mark.parametrize("bad_every", [0, 97], ids=["valid", "a-bad-row-in-every-97"])
def test_scan_of_a_file_100x_the_chunk_reads_one_chunk_at_a_time_with_flat_memory(bad_every: int) -> None:
    data = coupon_bytes(bad_every)
    assert len(data) >= FILE_CHUNKS * CHUNK
    source, peak, result = scan_measured(data)
    sizes = [size for size in source.read_sizes if size is not None]
    assert len(sizes) == len(source.read_sizes), "the scan asked for the whole rest of the file"
    assert all(0 < size <= CHUNK for size in sizes), max(sizes)
    assert len(sizes) >= FILE_CHUNKS  # every byte was read, one chunk at a time
    assert peak < 12 * CHUNK, f"peak {peak} bytes for a {len(data)}-byte file and {CHUNK}-byte chunks"
    if bad_every:
        assert isinstance(result, CouponFileError)
    else:
        assert not isinstance(result, Exception)
        assert sum(batch.rows for batch in result.batches) == data.count(b"\n") - 1  # type: ignore[attr-defined]
