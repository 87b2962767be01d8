"""Fixtures of the sandbox's own tests. Each module starts the sandbox it needs as ``server`` (its own
existing codes, series states); these hand it to each test emptied and back at the module's pace."""

from __future__ import annotations

import pytest

from capillary_provider.sandbox.testing import SandboxClient


@pytest.fixture(scope="module")
def step_seconds() -> float:
    """How long a job of the module's sandbox stays in each state; a module overrides it for another pace."""
    return 0.05


@pytest.fixture
def sbx(server: SandboxClient, step_seconds: float) -> SandboxClient:
    """The module's sandbox with no jobs, tokens, faults or log left by an earlier test, at ``step_seconds``."""
    server.reset()
    server.set_step_seconds(step_seconds)
    return server


@pytest.fixture
def token(sbx: SandboxClient) -> str:
    """A token the sandbox issued for this test."""
    return sbx.token()
