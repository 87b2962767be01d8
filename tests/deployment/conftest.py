"""The deployment: started once for the module, stopped whatever happens; timings and log tails in the report."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.deployment.cluster import Deployment, ServiceMissing
from tests.deployment.processes import set_budget

BUDGET_SECONDS = 540
"""Every wait of the whole test ends by then (stopping takes a little more): at most ~10 minutes in all."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "deployment"
_current: list[Deployment] = []
_timings: dict[str, float] = {}
_observations: list[str] = []


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Not under pytest's tmp_path: its parents are private to root, and PostgreSQL runs as another user.
    root = Path(tempfile.mkdtemp(prefix="capillary-deploy-"))
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    deployment = Deployment(root, logs=ARTIFACTS / "logs")
    _current.append(deployment)
    set_budget(BUDGET_SECONDS)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout still stops every process
    try:
        try:
            deployment.start()
        except ServiceMissing as exc:
            pytest.fail(str(exc))  # never a skip: a missing service is a broken CI machine
        yield deployment
    finally:
        leftovers = deployment.stop()
        _timings.update(deployment.timings)
        _observations.extend(deployment.observations)
        _current.remove(deployment)
        shutil.rmtree(root, ignore_errors=True)
        set_budget(None)
        signal.signal(signal.SIGTERM, previous)
    assert not leftovers, f"processes still running after stop, killed now: {leftovers}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _current:
        deployment = _current[-1]
        report.sections.append((f"component logs (last lines; whole logs in {deployment.logs})", deployment.tails(40)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _timings:
        return
    terminalreporter.section("deployment test: time per phase")
    for name, seconds in _timings.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(_timings.values()):7.1f} s  total")
    for line in _observations:
        terminalreporter.write_line(f"- {line}")
