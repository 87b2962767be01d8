"""on_kill stops an upload blocked on Capillary's answer at once, not when the answer finally comes.

The sandbox stores the batch and holds its answer back for 30 s; the hook's read timeout is longer still,
so only the in-flight socket shutdown of ``on_kill`` can end the wait within the 2 s bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from capillary_provider.exceptions import CouponUploadAborted
from capillary_provider.sandbox.testing import SandboxClient
from tests.conftest import mobile_rows, wait_for
from tests.faultkit import make_operator, no_recheck_pause

pytestmark = pytest.mark.integration

SERIES = 6460
HELD_SECONDS = 30
STOP_BOUND = 2.0
BOUND = 20.0
"""Longest wait for the batch to reach the sandbox; a bound against hangs, not a timing assertion."""


def test_on_kill_stops_an_upload_waiting_for_a_held_answer_within_two_seconds(
    capillary_conn: SandboxClient,
    write_csv: Callable[..., Path],
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_recheck_pause(monkeypatch)
    capillary_conn.add_fault("upload", "delay", seconds=HELD_SECONDS)
    operator = make_operator(write_csv(mobile_rows(5)), SERIES, wait_for_completion=False)
    operator.__dict__["hook"].timeout = (10.0, 120.0)  # longer than the held answer
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            operator.execute(context)  # type: ignore[arg-type]
        except BaseException as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: len(capillary_conn.jobs(SERIES)) == 1, "the batch never reached the sandbox", BOUND)
    time.sleep(0.2)  # let the worker sit in its read of the held answer (not an assertion on timing)
    killed = time.monotonic()
    operator.on_kill()
    thread.join(STOP_BOUND)
    assert not thread.is_alive(), f"execute still blocked {STOP_BOUND} s after on_kill"
    assert outcome["ended"] - killed < STOP_BOUND
    assert isinstance(outcome.get("error"), CouponUploadAborted)
