"""Long uploads log progress (bytes sent, percent, rate) at a steady pace, over real HTTP to the sandbox.

No test waits for wall-clock time: the hook's clock is replaced by one that the source file drives,
advancing in proportion to the bytes read, so an 8 MiB upload "takes" as long as the test says.
"""

from __future__ import annotations

import io
import re

import pytest

import capillary_provider.hooks._upload_body as upload_body_module
from capillary_provider.hooks.capillary import CapillaryHook
from capillary_provider.jobs import UploadJob
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import FakeClock

pytestmark = pytest.mark.integration

SERIES = 4242
MIB = 1024 * 1024
HEADER = b"mob,cod\n"
ROW_BYTES = 24
DATA = HEADER + b"".join(b"9198%08d,C%09d\n" % (n, n) for n in range((8 * MIB - len(HEADER)) // ROW_BYTES))
"""A valid coupon CSV of exactly 8 MiB (an 8-byte header and 349,525 rows of 24 bytes)."""
PROGRESS = re.compile(
    r"Upload progress: (?P<sent>[\d.]+ \w+) of (?P<total>[\d.]+ \w+) \((?P<pct>[\d.]+)%\) at (?P<rate>.+)/s"
)


class TimedSource(io.BytesIO):
    """A file whose reads take ``seconds_per_mib`` of fake time per MiB returned."""

    def __init__(self, data: bytes, clock: FakeClock, seconds_per_mib: float) -> None:
        super().__init__(data)
        self.clock = clock
        self.seconds_per_mib = seconds_per_mib

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.clock.now += len(data) / MIB * self.seconds_per_mib
        return data


def upload(source: io.BytesIO, capfd: pytest.CaptureFixture[str]) -> tuple[UploadJob, list[re.Match[str]]]:
    """Upload ``source``; return the job and the progress lines of the task log (Airflow logs to stdout)."""
    capfd.readouterr()
    job = CapillaryHook().upload_coupon_file(
        SERIES, source, file_name="progress.csv", customer_identifier="MOBILE", customer_identifier_column=0
    )
    lines = [PROGRESS.search(line) for line in capfd.readouterr().out.splitlines()]
    return job, [line for line in lines if line is not None]


def test_slow_upload_logs_bytes_sent_total_percent_and_rate(
    capillary_conn: SandboxClient, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    _, lines = upload(TimedSource(DATA, clock, seconds_per_mib=4.0), capfd)  # 8 MiB in 32 s
    assert lines
    for line in lines:
        sent = float(line["sent"].split()[0]) * (MIB if line["sent"].endswith("MiB") else 1)
        assert line["total"] == "8.0 MiB"
        assert float(line["pct"]) == pytest.approx(100 * sent / len(DATA), abs=0.1)
        assert line["rate"] == "256.0 KiB"  # 1 MiB every 4 s


def test_progress_is_logged_about_every_ten_seconds_not_every_block(
    capillary_conn: SandboxClient, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    _, lines = upload(TimedSource(DATA, clock, seconds_per_mib=4.0), capfd)
    # 32 s of upload; the clock is checked once per block of at most 1 MiB (4 s).
    percents = [float(line["pct"]) for line in lines]
    assert len(percents) == 2  # after about 12 s and 24 s; the last 8 s end the upload before the next line
    steps = [later - earlier for earlier, later in zip([0.0, *percents], percents, strict=False)]
    assert all(10 / 32 * 100 <= step < 14 / 32 * 100 for step in steps)  # 10 s to 10 s + one block


def test_quick_upload_logs_no_progress(
    capillary_conn: SandboxClient, clock: FakeClock, capfd: pytest.CaptureFixture[str]
) -> None:
    _, lines = upload(TimedSource(DATA, clock, seconds_per_mib=1.0), capfd)  # 8 MiB in 8 s
    assert lines == []


def test_with_no_interval_every_block_is_reported_up_to_one_hundred_percent(
    capillary_conn: SandboxClient, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_body_module, "PROGRESS_INTERVAL_SECONDS", 0)
    _, lines = upload(io.BytesIO(DATA), capfd)
    percents = [float(line["pct"]) for line in lines]
    assert len(percents) >= 8  # 8 MiB in blocks of at most 1 MiB
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert all(re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", line["rate"]) for line in lines)


def test_progress_lines_never_carry_the_token(
    capillary_conn: SandboxClient, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_body_module, "PROGRESS_INTERVAL_SECONDS", 0)
    hook = CapillaryHook()
    token = hook.get_token()
    capfd.readouterr()
    hook.upload_coupon_file(
        SERIES, io.BytesIO(DATA), file_name="progress.csv", customer_identifier="MOBILE", customer_identifier_column=0
    )
    log = capfd.readouterr().out
    assert PROGRESS.search(log)
    assert token not in log
